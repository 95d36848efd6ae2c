#!/bin/sh
# cli_oneshot.sh - the non-interactive uses of chat(1) against a running
# chatd: -r, -u with -c and -w, passwords from -P, CHAT_PASSWORD and
# stdin, plain-stdin menu sessions, exit statuses and error messages.
#
# tests/it_cli starts MariaDB, Redis and chatd and runs this script with
# CHAT_BIN (the chat program), CHAT_HOST and CHAT_PORT set; run alone it
# has no server and exits 77 (skipped).  Names are made unique with the
# pid, since the database is shared with the other tests.  Prints one
# line per check and exits 1 if any failed.

if [ -z "${CHAT_BIN:-}" ] || [ -z "${CHAT_PORT:-}" ]; then
	echo "cli_oneshot.sh: CHAT_BIN and CHAT_PORT are not set; run it" \
	    "through tests/it_cli, which starts the servers"
	exit 77
fi
CHAT_HOST=${CHAT_HOST:-127.0.0.1}
unset CHAT_PASSWORD

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cli_oneshot.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
failed=0
tab=$(printf '\t')

ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; failed=1; }

# run STATUS CMD...: run chat with the common options, stdout in
# $tmp/out, stderr in $tmp/err; report when the exit status differs.
run() {
	want=$1
	shift
	"$CHAT_BIN" -h "$CHAT_HOST" -p "$CHAT_PORT" -t 10 "$@" \
	    >"$tmp/out" 2>"$tmp/err" </dev/null
	got=$?
	if [ "$got" -ne "$want" ]; then
		bad "chat $* exited $got, not $want"
		sed 's/^/  stdout: /' "$tmp/out"
		sed 's/^/  stderr: /' "$tmp/err"
		return 1
	fi
	return 0
}

# has FILE TEXT WHAT: FILE contains the line fragment TEXT.
has() {
	if grep -F -q -- "$2" "$1"; then
		ok "$3"
	else
		bad "$3: \"$2\" not in:"
		sed 's/^/  | /' "$1"
	fi
}

umask 077
printf 'pw-a-%s\n' $$ >"$tmp/pwa"
pwb="pw-b-$$"
na="sh_a_$$"
nb="sh_b_$$"

# --- registration ------------------------------------------------------------
run 0 -r "$na" -P "$tmp/pwa" && a=$(cat "$tmp/out")
CHAT_PASSWORD=$pwb run 0 -r "$nb" && b=$(cat "$tmp/out")
case "${a:-}${b:-}" in
*[!0-9]* | "")
	bad "-r printed ids \"${a:-}\" and \"${b:-}\""
	exit 1
	;;
esac
ok "-r registered $na as $a and $nb as $b"

run 1 -r "$na" -P "$tmp/pwa" && has "$tmp/err" "chat: register: name taken" \
    "a taken name is refused with exit 1"

# --- chat, offline delivery, lists -----------------------------------------
run 0 -u "$a" -P "$tmp/pwa" -c "chat:$b:hello 你好: from a" &&
    has "$tmp/out" "stored" "chat to an offline user says stored"

CHAT_PASSWORD=$pwb run 0 -u "$b" -c friends &&
    has "$tmp/out" "$na [$a]: hello 你好: from a" \
    "the offline message is printed at login, colons and Chinese intact"

run 0 -u "$a" -P "$tmp/pwa" -c "addfriend:$b" -c friends &&
    has "$tmp/out" "$b$tab$nb${tab}offline" \
    "friends prints tab-separated id, name, state"

gname="shg_$$"
run 0 -u "$a" -P "$tmp/pwa" -c "creategroup:$gname:made by a script" &&
    g=$(cat "$tmp/out")
case "${g:-x}" in
*[!0-9]*)
	bad "creategroup printed \"${g:-}\", not a group id"
	g=0
	;;
*)
	ok "creategroup printed the group id $g"
	;;
esac

CHAT_PASSWORD=$pwb run 0 -u "$b" -c "addgroup:$g" -c "members:$g" -c groups &&
    has "$tmp/out" "$a$tab$na${tab}creator${tab}offline" \
    "members lists the creator" &&
    has "$tmp/out" "$b$tab$nb${tab}normal${tab}online" \
    "members lists the new member, online" &&
    has "$tmp/out" "$g$tab$gname${tab}normal${tab}made by a script" \
    "groups lists the group with role and description"

run 0 -u "$a" -P "$tmp/pwa" -c "groupchat:$g:to the group" &&
    has "$tmp/out" "stored" "groupchat to offline members says stored"

# --- live delivery with -w, and a second login refused ---------------------
CHAT_PASSWORD=$pwb "$CHAT_BIN" -h "$CHAT_HOST" -p "$CHAT_PORT" -u "$b" -w 6 \
    >"$tmp/listen" 2>"$tmp/listen.err" </dev/null &
listener=$!
# Wait (bounded) until b shows as online to its friend a.
i=0
while [ $i -lt 50 ]; do
	run 0 -u "$a" -P "$tmp/pwa" -c friends >/dev/null &&
	    grep -q "^$b$tab$nb${tab}online" "$tmp/out" && break
	sleep 0.1
	i=$((i + 1))
done
run 0 -u "$a" -P "$tmp/pwa" -c "chat:$b:live one" &&
    has "$tmp/out" "delivered" "chat to a listening user says delivered"
CHAT_PASSWORD=$pwb run 1 -u "$b" -c friends &&
    has "$tmp/err" "already online" \
    "a second login of a listening user fails with exit 1"
wait "$listener"
st=$?
if [ "$st" -eq 0 ]; then
	ok "-w exits 0 after its wait"
else
	bad "-w exited $st"
	sed 's/^/  | /' "$tmp/listen.err"
fi
has "$tmp/listen" "[group $g $gname] $na [$a]: to the group" \
    "-w prints the stored group message at login"
has "$tmp/listen" "$na [$a]: live one" "-w prints a live message"

# --- errors and exit statuses ----------------------------------------------
echo wrong >"$tmp/wrong"
run 1 -u "$a" -P "$tmp/wrong" -c friends &&
    has "$tmp/err" "chat: login as $a: wrong id or password" \
    "a wrong password exits 1 with a readable error"
run 1 -u "$a" -P "$tmp/pwa" -c "chat:4294967294:x" &&
    has "$tmp/err" "no such user" "chat to a missing user exits 1"
run 1 -u "$a" -P "$tmp/pwa" -c "addgroup:4294967294" &&
    has "$tmp/err" "no such group" "addgroup of a missing group exits 1"
run 1 -u "$a" -P "$tmp/pwa" -c "chat:4294967294:x" -c friends &&
    has "$tmp/out" "$b$tab$nb" "commands after a failed one still run"
run 2 -u "$a" -P "$tmp/pwa" -c "chat:$b" &&
    has "$tmp/err" "usage: chat:friendid:message" \
    "a command without its message exits 2 with the usage"
run 2 -u "$a" -P "$tmp/pwa" -c "nosuch" &&
    has "$tmp/err" "unknown command" "an unknown command exits 2"
run 2 -u "$a" -c friends &&
    has "$tmp/err" "no password" "no password at all exits 2"
run 2 -c friends && has "$tmp/err" "need -u" "-c without -u exits 2"
# Port 1 on the loopback: nothing listens there.
"$CHAT_BIN" -h 127.0.0.1 -p 1 -u "$a" -P "$tmp/pwa" -c friends \
    >"$tmp/out" 2>"$tmp/err" </dev/null
st=$?
if [ "$st" -eq 3 ]; then
	has "$tmp/err" "cannot connect" "an unreachable server exits 3"
else
	bad "an unreachable server exited $st, not 3"
fi

# --- passwords and sessions on stdin ---------------------------------------
if printf '%s\n' "$pwb" | "$CHAT_BIN" -h "$CHAT_HOST" -p "$CHAT_PORT" \
    -u "$b" -c friends >"$tmp/out" 2>"$tmp/err"; then
	has "$tmp/out" "$a$tab$na" "the password can come on stdin"
else
	bad "password on stdin: exit $?"
	sed 's/^/  | /' "$tmp/err"
fi

printf '1\n%s\n%s\nchat:%s:piped 中文\nfriends\nquit\n' "$b" "$pwb" "$a" |
    "$CHAT_BIN" -h "$CHAT_HOST" -p "$CHAT_PORT" >"$tmp/out" 2>"$tmp/err"
st=$?
if [ "$st" -eq 0 ]; then
	has "$tmp/out" "logged in as $nb [$b]" \
	    "a menu session read from a pipe logs in"
	has "$tmp/out" "  $a  $na  offline" "and runs its commands"
else
	bad "menu session on a pipe exited $st"
	sed 's/^/  | /' "$tmp/out" "$tmp/err"
fi
run 0 -u "$a" -P "$tmp/pwa" -c friends &&
    has "$tmp/out" "$nb [$b]: piped 中文" \
    "the piped session's message arrived"

exit $failed
