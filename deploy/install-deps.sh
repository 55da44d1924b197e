#!/bin/sh
# Installs every Debian package sn-broker needs to build, test and run.
# Idempotent and non-interactive; a quick no-op when everything is present.
# Usage: deploy/install-deps.sh [--check] [--fuzz]
#   --check: exit 1 if something is missing, install nothing
#   --fuzz:  also clang, for the libFuzzer targets (make fuzz)
set -eu

PACKAGES="
build-essential
pkg-config
libevent-dev
librdkafka-dev
libjansson-dev
libssl-dev
libpq-dev
libcurl4-openssl-dev
check
libsubunit-dev
postgresql
postgresql-client
kcat
curl
wrk
valgrind
libxml2-utils
procps
python3
python3-prometheus-client
python3-aiosmtpd
python3-yaml
systemd
chromium
"

# Node.js runs test tools from the npm registry; a machine that has a node of
# its own keeps it
command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES nodejs npm"
check_only=
for arg in "$@"; do
    case "$arg" in
        --check) check_only=1 ;;
        --fuzz) PACKAGES="$PACKAGES clang" ;;
        *) echo "install-deps: unknown argument $arg" >&2; exit 2 ;;
    esac
done

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        "install ok installed") ;;
        *) missing="$missing $p" ;;
    esac
done

if [ -z "$missing" ]; then
    [ -n "$check_only" ] || echo "install-deps: all packages present"
    exit 0
fi
if [ -n "$check_only" ]; then
    echo "install-deps: missing:$missing" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages:$missing" >&2
    echo "install-deps: run as root: sudo $0" >&2
    exit 1
fi

echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# The broker runs its own private clusters; do not let the package create and
# start a system-wide one on port 5432 as a side effect.
case "$missing" in
    *" postgresql"*)
        mkdir -p /etc/postgresql-common/createcluster.d
        printf 'create_main_cluster = false\n' > /etc/postgresql-common/createcluster.d/sn-broker.conf
        ;;
esac
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
echo "install-deps: done"
