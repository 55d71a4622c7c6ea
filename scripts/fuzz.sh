#!/usr/bin/env bash
# Builds every libFuzzer target (Wzp.Quic/native/fuzz/fuzz_*.c) with clang under AddressSanitizer,
# LeakSanitizer and UBSan and runs each for a bounded time. Exits non-zero when a target crashes,
# leaks, hangs or trips a sanitizer (the input that did it is kept next to the corpus as crash-*,
# leak-* or timeout-*), and with 3 when clang or its libFuzzer runtime is missing.
# Usage: scripts/fuzz.sh [seconds per target, default 30] [extra libFuzzer flags...]
# Corpora grow across runs in Wzp.Quic/obj/fuzz/<target>/corpus, next to seeds/ (fuzz/make_seeds.c).
set -euo pipefail
seconds=${1:-30}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
native=$root/Wzp.Quic/native
work=${WZP_FUZZ_DIR:-$root/Wzp.Quic/obj/fuzz}
mkdir -p "$work"

cc=$(command -v clang || command -v clang-14 || true)
probe=$work/probe
if [ -z "$cc" ] || ! echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' |
    "$cc" -x c -fsanitize=fuzzer,address,undefined -o "$probe" - 2>/dev/null; then
  echo "fuzz.sh: clang with libFuzzer is needed: run scripts/install-deps.sh as root" >&2
  echo "         (on Debian 12: apt-get install clang libclang-rt-14-dev)" >&2
  exit 3
fi
libs=$(pkg-config --cflags --libs libngtcp2 libngtcp2_crypto_gnutls gnutls)

# A throwaway certificate: the listener under test needs one, its strength is irrelevant.
if [ ! -s "$work/cert.pem" ]; then
  certtool --generate-privkey --key-type=ecdsa --outfile "$work/key.pem" 2>/dev/null
  printf 'cn = localhost\nexpiration_days = 3650\n' > "$work/cert.tmpl"
  certtool --generate-self-signed --load-privkey "$work/key.pem" --template "$work/cert.tmpl" \
    --outfile "$work/cert.pem" 2>/dev/null
fi
export WZP_FUZZ_CERT=$work/cert.pem WZP_FUZZ_KEY=$work/key.pem
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# shellcheck disable=SC2086 # $libs is a list of flags
gcc -std=c11 -O1 -I"$native" -o "$work/make_seeds" "$native/fuzz/make_seeds.c" "$native/wzpquic.c" $libs

status=0
for src in "$native"/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  dir=$work/$name
  mkdir -p "$dir/corpus" "$dir/seeds"
  # shellcheck disable=SC2086
  "$cc" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -DWZP_FUZZ \
    -fno-omit-frame-pointer -Wall -Wextra -Werror -I"$native" -o "$dir/$name" "$src" "$native/wzpquic.c" $libs
  # Fresh seeds every run (new ones reach the grown corpus too); libFuzzer adds its finds to corpus/.
  rm -f "$dir/seeds/"*
  "$work/make_seeds" "$dir/seeds"
  # Inputs that once crashed a target run first, each once (native/fuzz/regressions/<target>/).
  regressions=$native/fuzz/regressions/$name
  if [ -d "$regressions" ] && ! "$dir/$name" -runs=1 "$regressions"/* > "$dir/regressions.log" 2>&1; then
    echo "fuzz.sh: $name FAILED on a regression input, log:" >&2
    tail -60 "$dir/regressions.log" >&2
    status=1
    continue
  fi
  echo "fuzz.sh: $name for ${seconds}s" >&2
  if ! "$dir/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$dir/" "$@" "$dir/corpus" "$dir/seeds" > "$dir/last.log" 2>&1; then
    echo "fuzz.sh: $name FAILED; artifacts in $dir, log:" >&2
    tail -60 "$dir/last.log" >&2
    status=1
    continue
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/last.log")
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$dir/last.log" | tail -1)
  echo "fuzz.sh: $name OK, $runs inputs, $cov, corpus $(ls "$dir/corpus" | wc -l) files" >&2
done
exit $status
