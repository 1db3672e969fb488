# PgProxy's image. Two ways to build it:
#  - from registries: `docker build -t pgproxy .` (SDK_IMAGE publishes, RUNTIME_IMAGE runs);
#  - from a publish done on the host, with no SDK image: scripts/build-image.sh publishes to artifacts/publish and
#    builds `--target prebuilt` on a runtime base built locally (this is how the tests build it: nothing is pulled).
# The app is published as one Native AOT executable (see the README for why), so the runtime base needs only the
# native libraries it loads (libc, libssl for TLS and SCRAM, ca-certificates); globalization is invariant, so no ICU.
# Runs as UID 10001, works with a read-only root filesystem (only /tmp needs to be writable), config at
# /etc/pgproxy/proxy.toml, HEALTHCHECK on /healthz through `pgproxy health`; SIGTERM drains (shutdown_delay, then
# shutdown_timeout).
ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0
ARG RUNTIME_IMAGE=mcr.microsoft.com/dotnet/runtime-deps:10.0

FROM ${RUNTIME_IMAGE} AS runtime
# A Debian base without them (a debootstrap minbase) gets the few native libraries .NET needs; a runtime-deps base
# has them already.
RUN if [ -x /usr/bin/apt-get ] && ! ls /usr/lib/x86_64-linux-gnu/libssl.so.3 >/dev/null 2>&1; then \
      apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libssl3 ca-certificates \
      && apt-get clean && rm -rf /var/lib/apt/lists/*; \
    fi \
 && mkdir -p /etc/pgproxy
ENV DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 \
    DOTNET_EnableDiagnostics=0
WORKDIR /app
USER 10001:10001
EXPOSE 6432 9127
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 CMD ["/app/pgproxy", "health"]
ENTRYPOINT ["/app/pgproxy"]
CMD ["run", "--config", "/etc/pgproxy/proxy.toml"]

# The host's publish (scripts/build-image.sh): no SDK image needed.
FROM runtime AS prebuilt
COPY --chown=0:0 artifacts/publish/ /app/

# The default target: published in the SDK stage. (After `prebuilt`, so that a classic builder asked for
# `--target prebuilt` stops before it and never needs the SDK image.)
FROM ${SDK_IMAGE} AS build
# Native AOT links with clang and needs zlib's headers (scripts/publish.sh installs the same on a host).
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang zlib1g-dev binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/publish.sh /app

FROM runtime AS final
COPY --from=build --chown=0:0 /app/ /app/
