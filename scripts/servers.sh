# scripts/servers.sh - the private MariaDB and Redis that scripts/run.sh
# (the quickstart) and scripts/bench.sh keep under a state directory.
# Sourced, not run: the caller sets `state` (an existing directory) and
# `who` (the prefix of its messages) and runs under set -eu.
#
#   servers_start [mariadbd option...]
#       Initialise MariaDB in $state/mysql on first use; start MariaDB
#       (local socket only) and Redis (unix socket only), each in a
#       session of its own so Ctrl-C reaches only the caller's process;
#       wait until both answer; create the chat database and its user
#       once (the password is kept in $state/db-password); apply the
#       migrations (each can be applied again).  Extra arguments go to
#       mariadbd.
#   servers_stop
#       Stop both and wait for MariaDB to exit.
#
# Sets mysock (MariaDB's socket) and db_password.

mysock="$state/mysql.sock"

servers_start() {
	_user=$(id -un)
	if [ ! -d "$state/mysql/mysql" ]; then
		echo "$who: initialising MariaDB in $state/mysql" >&2
		mariadb-install-db --no-defaults --datadir="$state/mysql" \
		    --user="$_user" --auth-root-authentication-method=normal \
		    --skip-test-db >"$state/mariadb-install.log" 2>&1
	fi
	setsid mariadbd --no-defaults --datadir="$state/mysql" \
	    --socket="$mysock" --skip-networking \
	    --pid-file="$state/mariadb.pid" --log-error="$state/mariadb.err" \
	    --user="$_user" --innodb-buffer-pool-size=64M "$@" \
	    </dev/null >/dev/null 2>&1 &
	setsid redis-server --port 0 --unixsocket "$state/redis.sock" \
	    --unixsocketperm 700 --dir "$state" --save "" --appendonly no \
	    --maxclients 10000 --logfile "$state/redis.log" \
	    --client-output-buffer-limit "pubsub 0 0 0" \
	    --notify-keyspace-events Ex \
	    </dev/null >/dev/null 2>&1 &
	_i=0
	until redis-cli -s "$state/redis.sock" ping >/dev/null 2>&1; do
		_i=$((_i + 1))
		[ $_i -lt 60 ] || { echo "$who: Redis did not start, see $state/redis.log" >&2; exit 1; }
		sleep 0.5
	done
	_i=0
	until mariadb --no-defaults -uroot --socket="$mysock" -e 'SELECT 1' \
	    >/dev/null 2>&1; do
		_i=$((_i + 1))
		[ $_i -lt 120 ] || { echo "$who: MariaDB did not start, see $state/mariadb.err" >&2; exit 1; }
		sleep 0.5
	done
	if [ ! -f "$state/db-password" ]; then
		head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$state/db-password"
		chmod 600 "$state/db-password"
		mariadb --no-defaults -uroot --socket="$mysock" <<SQL
CREATE DATABASE IF NOT EXISTS chat CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'chatd'@'localhost' IDENTIFIED BY '$(cat "$state/db-password")';
GRANT ALL ON chat.* TO 'chatd'@'localhost';
SQL
	fi
	db_password=$(cat "$state/db-password")
	for _f in sql/migrations/*.sql; do
		mariadb --no-defaults -uroot --socket="$mysock" chat <"$_f"
	done
}

servers_stop() {
	[ -f "$state/mariadb.pid" ] && kill "$(cat "$state/mariadb.pid")" 2>/dev/null || true
	redis-cli -s "$state/redis.sock" shutdown nosave >/dev/null 2>&1 || true
	_i=0
	while [ -f "$state/mariadb.pid" ] && [ $_i -lt 60 ]; do
		sleep 0.5; _i=$((_i + 1))
	done
}
