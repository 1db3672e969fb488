#!/usr/bin/env bash
# Builds the PgProxy image with nothing pulled from a registry: publishes on this machine (self-contained,
# ReadyToRun) to artifacts/publish, then builds the Dockerfile's `prebuilt` target on the debootstrap'ed Debian base
# that scripts/ensure-docker.sh makes (pgproxy-debian:bookworm). Usage: scripts/build-image.sh [TAG] (default pgproxy:local).
set -euo pipefail
cd "$(dirname "$0")/.."
export DOCKER_API_VERSION="${DOCKER_API_VERSION:-1.41}"
tag="${1:-pgproxy:local}"
base="${PGPROXY_RUNTIME_IMAGE:-pgproxy-debian:bookworm}"
rm -rf artifacts/publish
dotnet publish src/PgProxy -c Release -r linux-x64 --self-contained -p:PublishReadyToRun=true -o artifacts/publish --nologo -v quiet
docker build --target prebuilt --build-arg "RUNTIME_IMAGE=$base" -t "$tag" . >/tmp/pgproxy-image.log 2>&1 \
  || { echo "build-image: docker build failed; last lines of /tmp/pgproxy-image.log:" >&2; tail -n 30 /tmp/pgproxy-image.log >&2; exit 1; }
echo "$tag"
