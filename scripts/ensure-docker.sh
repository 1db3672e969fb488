#!/usr/bin/env bash
# Makes a Docker engine answer and builds the PostgreSQL image the Testcontainers fixture uses
# (pgproxy-test-postgres:15), from Debian packages only: nothing is pulled from a registry.
#  - engine: uses the one that answers `docker info`; otherwise installs Debian's docker.io (root or sudo) and
#    starts dockerd in the background, writing its PID to $PGPROXY_DOCKERD_PIDFILE so the caller can stop it;
#  - base image pgproxy-debian:bookworm: `debootstrap --variant=minbase bookworm`, then `docker import`;
#  - pgproxy-test-postgres:15: docker/test-postgres/Dockerfile on that base, rebuilt when the recipe changes.
# Exits non-zero with the reason when any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's engine is 20.10 (API 1.41); a newer client must not ask for more.
export DOCKER_API_VERSION="${DOCKER_API_VERSION:-1.41}"
image=pgproxy-test-postgres:15
base=pgproxy-debian:bookworm
mirror="${PGPROXY_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
pidfile="${PGPROXY_DOCKERD_PIDFILE:-/tmp/pgproxy-dockerd.pid}"

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need=()
command -v docker >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
if ! docker info >/dev/null 2>&1 && [ ! -x /usr/sbin/dockerd ]; then need+=(docker.io); fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then echo "ensure-docker: ${need[*]} missing and neither root nor sudo to install them" >&2; exit 1; fi
  echo "Installing ${need[*]} from Debian packages..."
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" iptables >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then echo "ensure-docker: no Docker engine answers and starting dockerd needs root" >&2; exit 1; fi
  log=/tmp/pgproxy-dockerd.log
  echo "Starting dockerd (log: $log)..."
  /usr/sbin/dockerd >"$log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "ensure-docker: dockerd exited; last lines of $log:" >&2; tail -n 20 "$log" >&2; exit 1
    fi
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "ensure-docker: dockerd did not answer within 30 s; see $log" >&2; exit 1; }
fi

recipe=$(cat docker/test-postgres/* | sha256sum | cut -c1-16)
if [ "$(docker image inspect -f '{{index .Config.Labels "pgproxy.recipe"}}' "$image" 2>/dev/null || true)" = "$recipe" ]; then
  exit 0
fi

if ! docker image inspect "$base" >/dev/null 2>&1; then
  echo "Building $base with debootstrap from $mirror (about a minute)..."
  root=$(mktemp -d /tmp/pgproxy-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  $SUDO debootstrap --variant=minbase bookworm "$root" "$mirror" >/tmp/pgproxy-debootstrap.log 2>&1 \
    || { echo "ensure-docker: debootstrap failed; see /tmp/pgproxy-debootstrap.log" >&2; exit 1; }
  $SUDO tar -C "$root" -c . | docker import - "$base" >/dev/null
fi

echo "Building $image from Debian's postgresql-15..."
docker build --label "pgproxy.recipe=$recipe" --build-arg "BASE=$base" -t "$image" docker/test-postgres >/tmp/pgproxy-image-build.log 2>&1 \
  || { echo "ensure-docker: docker build failed; last lines of /tmp/pgproxy-image-build.log:" >&2; tail -n 20 /tmp/pgproxy-image-build.log >&2; exit 1; }
