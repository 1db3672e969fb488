#!/usr/bin/env bash
# Builds the PgProxy image with nothing pulled from a registry: publishes on this machine (Native AOT,
# scripts/publish.sh) to artifacts/publish, then builds the Dockerfile's `prebuilt` target on the debootstrap'ed Debian
# base that scripts/ensure-docker.sh makes (pgproxy-debian:bookworm). Usage: scripts/build-image.sh [TAG] (default
# pgproxy:local). PGPROXY_PUBLISHED=1 takes the executable already in artifacts/publish (the test command publishes
# it once for its native pass and the image).
set -euo pipefail
cd "$(dirname "$0")/.."
export DOCKER_API_VERSION="${DOCKER_API_VERSION:-1.41}"
tag="${1:-pgproxy:local}"
base="${PGPROXY_RUNTIME_IMAGE:-pgproxy-debian:bookworm}"
if [ "${PGPROXY_PUBLISHED:-0}" != 1 ] || [ ! -x artifacts/publish/pgproxy ]; then
  scripts/publish.sh artifacts/publish >/dev/null
fi
docker build --target prebuilt --build-arg "RUNTIME_IMAGE=$base" -t "$tag" . >/tmp/pgproxy-image.log 2>&1 \
  || { echo "build-image: docker build failed; last lines of /tmp/pgproxy-image.log:" >&2; tail -n 30 /tmp/pgproxy-image.log >&2; exit 1; }
echo "$tag"
