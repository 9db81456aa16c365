#!/usr/bin/env bash
# Installs versitygw (the S3-compatible server the blob tests run against) into
# a cache directory kept between runs, and prints the binary's path.
#
#   bash .ci/install-versitygw.sh            # installs if missing, prints path
#   VERSITYGW_VERSION=v1.8.0 bash .ci/install-versitygw.sh
#
# The tests look for the binary in $TENANTRY_VERSITYGW, then $PATH, then
# $(go env GOPATH)/bin, then ${XDG_CACHE_HOME:-~/.cache}/tenantry/bin.
# A cold build takes a few minutes on two cores; later runs return at once.
set -euo pipefail

version="${VERSITYGW_VERSION:-v1.8.0}"
bindir="${TENANTRY_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tenantry/bin}"
stamp="$bindir/versitygw.version"

mkdir -p "$bindir"
if [[ -x "$bindir/versitygw" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
	echo "$bindir/versitygw"
	exit 0
fi

echo "installing versitygw $version into $bindir" >&2
# GOFLAGS may carry -mod=... from the caller's module; go install pkg@version ignores the current module.
GOBIN="$bindir" GOFLAGS= go install "github.com/versity/versitygw/cmd/versitygw@$version" >&2
echo "$version" >"$stamp"
echo "$bindir/versitygw"
