#!/usr/bin/env bash
# Installs what building, running and testing Wzp needs on Debian 12 (run as root).
# Idempotent: packages already present are skipped quickly.
set -euo pipefail
packages=(
  gcc pkg-config                                                  # the native QUIC shim
  libngtcp2-dev libngtcp2-crypto-gnutls-dev libgnutls28-dev       # ngtcp2 0.12 + GnuTLS headers and libraries
  ngtcp2-client ngtcp2-server gnutls-bin                          # independent QUIC peers for tests
  clang libclang-rt-14-dev                                        # libFuzzer targets (scripts/fuzz.sh)
  afl++                                                           # managed fuzz targets (scripts/fuzz-managed.sh)
  redis-server                                                    # scale-out clustering and its tests
  nats-server                                                     # scale-out room events (JetStream) and their tests
  espeak-ng sox                                                   # speech audio for end-to-end tests
)
# Node.js 18 or later and npm run ts-mls, the independent MLS peer of Wzp.Mls.Tests/Interop. A node already on
# PATH (nodesource's, say, which bundles npm) is used as it is; otherwise Debian's nodejs (18.x) and npm.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v dotnet >/dev/null || { echo "dotnet SDK 10 is required on PATH (https://dot.net)" >&2; exit 1; }
# SharpFuzz's instrumenter for the managed fuzz targets, pinned in dotnet-tools.json.
(cd "$(dirname "$0")/.." && dotnet tool restore >/dev/null)
# ts-mls and its dependencies, exactly as Wzp.Mls.Tests/Interop/package-lock.json pins them.
(cd "$(dirname "$0")/../Wzp.Mls.Tests/Interop" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
