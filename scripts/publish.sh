#!/usr/bin/env bash
# Publishes PgProxy as the image ships it: one Native AOT executable for linux-x64 (no .NET runtime needed beside it),
# to artifacts/publish/pgproxy (or the directory given). Installs the native toolchain Native AOT links with (clang,
# zlib1g-dev) from Debian packages when it is missing. Takes 2-3 minutes on 2 cores.
#   scripts/publish.sh                 # artifacts/publish/pgproxy
#   scripts/publish.sh /tmp/out        # another directory
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-artifacts/publish}"

# The linker driver: clang, or Debian's versioned clang-N when only that is installed.
compiler=$(command -v clang || ls /usr/bin/clang-[0-9]* 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$compiler" ] || [ ! -e /usr/include/zlib.h ] || ! command -v objcopy >/dev/null; then
  echo "Installing the Native AOT toolchain from Debian packages (clang, zlib1g-dev, binutils)..."
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO="sudo"; else echo "clang is missing and neither root nor sudo is available to install it" >&2; exit 1; fi
  fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang zlib1g-dev binutils >/dev/null
  compiler=$(command -v clang)
fi

rm -rf "$out"
dotnet publish src/PgProxy/PgProxy.csproj -c Release -r linux-x64 -p:PublishAot=true \
  -p:CppCompilerAndLinker="$(basename "$compiler")" -o "$out" --nologo -v quiet
# The debugger's symbols (pgproxy.dbg) and the libraries' .pdb/.xml stay out of the image.
rm -f "$out"/*.dbg "$out"/*.pdb "$out"/*.xml
echo "$out/pgproxy"
