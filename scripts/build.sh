#!/bin/sh
# Configure (once) and build chatd in the source tree.  Extra arguments go
# to configure, e.g. scripts/build.sh --enable-sanitizers.
set -eu
cd "$(dirname "$0")/.."
[ -x configure ] || autoreconf -fi
if [ ! -f Makefile ] || [ $# -gt 0 ]; then
	./configure -q "$@"
fi
make -j"$(nproc)"
