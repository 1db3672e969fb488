#!/usr/bin/env bash
# Installs what PgProxy's tests and local stack need on Debian: the PostgreSQL server binaries (initdb, pg_ctl,
# postgres, pgbench) and psql. Does nothing when they are already there. Needs root or sudo for apt-get.
set -euo pipefail

have_pg() {
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && compgen -G "/usr/lib/postgresql/*/bin/pgbench" >/dev/null && command -v psql >/dev/null
}

if ! command -v dotnet >/dev/null; then
  echo "The .NET SDK (dotnet) is required: https://learn.microsoft.com/dotnet/core/install/linux-debian" >&2
  exit 1
fi

if have_pg; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else echo "PostgreSQL is missing and neither root nor sudo is available to install it" >&2; exit 1; fi
fi

echo "Installing PostgreSQL from Debian packages..."
# Our tests and the dev stack start their own throwaway clusters: do not create and start Debian's default one.
$SUDO mkdir -p /etc/postgresql-common
if ! grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
  echo "create_main_cluster = false" | $SUDO tee -a /etc/postgresql-common/createcluster.conf >/dev/null
fi
$SUDO apt-get update -qq
if apt-cache show postgresql-15 >/dev/null 2>&1; then
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 postgresql-client-15 >/dev/null
else
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null
fi
have_pg || { echo "PostgreSQL install did not provide initdb/pgbench/psql" >&2; exit 1; }
