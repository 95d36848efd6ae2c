#!/bin/sh
# Install the Debian packages chatd needs to build, test and run.
# Sourced by scripts/run.sh and scripts/test.sh; safe to run again.
set -eu
CHATD_PACKAGES="build-essential autoconf automake libtool pkg-config
 libcjson-dev default-libmysqlclient-dev libhiredis-dev check libsystemd-dev
 libsodium-dev libinih-dev libedit-dev
 mariadb-server mariadb-client redis-server nginx libnginx-mod-stream
 mandoc systemd clang procps"

missing=""
for p in $CHATD_PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "deps: installing:$missing" >&2
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	# Package scripts must not start system services: chatd's tests and
	# quickstart run their own servers on private ports.
	export DEBIAN_FRONTEND=noninteractive
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
		$SUDO chmod +x /usr/sbin/policy-rc.d
		trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
