#!/usr/bin/env bash
# Install the services the deployment suite (tests/deployment) runs on, unless they are there:
# PostgreSQL (the metadata DB) and Redis (the Celery broker), Debian's packages.
# The suite starts its own server of each in a temporary folder on a free port and stops it;
# it never uses the packages' own system services (which apt starts where systemd runs).
set -euo pipefail

pg_bin() {
    # Debian keeps initdb/pg_ctl out of PATH, under /usr/lib/postgresql/<version>/bin.
    command -v initdb 2>/dev/null && return 0
    ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1
}

have_all() {
    [ -n "$(pg_bin)" ] && command -v redis-server >/dev/null 2>&1
}

if ! have_all; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "services: PostgreSQL or Redis missing and no apt-get; install them yourself" \
            "(the deployment tests skip without them, or fail with CI_REQUIRE_SERVICES=1)" >&2
        exit 1
    fi
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    # Only the binaries are used: the suite runs its own servers, never the packages' services.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        postgresql redis-server >/dev/null
fi
echo "services: $("$(pg_bin)" --version), $(redis-server --version | cut -d' ' -f1-3)"
