#!/usr/bin/env bash
# Coverage-guided fuzzing of the managed parsers of untrusted bytes: AFL++ over a copy of Wzp.Protocol.dll
# instrumented by SharpFuzz, driving the targets of Wzp.Protocol.Tests/Fuzzing (the assembly's own entry point).
#
#   scripts/fuzz-managed.sh [SECONDS per target, default 30] [TARGET ...]
#
# Targets: media-datagram link-datagram control-frames control-messages credentials link-negotiation (all by
# default). Corpora grow across runs in obj/fuzz-managed/corpus/TARGET; a crash or hang is kept in
# obj/fuzz-managed/findings/TARGET and makes the script exit 1. Exit 3: afl-fuzz or the build is missing.
# Replay a finding: dotnet Wzp.Protocol.Tests/bin/Release/net10.0/Wzp.Protocol.Tests.dll fuzz TARGET < FILE
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-30}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(media-datagram link-datagram control-frames control-messages credentials link-negotiation)

command -v afl-fuzz >/dev/null || { echo "afl-fuzz is not installed: scripts/install-deps.sh (Debian: apt-get install afl++)" >&2; exit 3; }
bin=$root/Wzp.Protocol.Tests/bin/Release/net10.0
[ -f "$bin/Wzp.Protocol.Tests.dll" ] || { echo "build first: dotnet build Wzp.Protocol.Tests -c Release" >&2; exit 3; }

work=$root/obj/fuzz-managed
rm -rf "$work/bin" "$work/out"
mkdir -p "$work/corpus" "$work/findings" "$work/out"
cp -r "$bin" "$work/bin"
(cd "$root" && dotnet tool restore >/dev/null && dotnet sharpfuzz "$work/bin/Wzp.Protocol.dll" >/dev/null)

export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1
stat() { grep -E "^$1 " "$2" | sed 's/.*: //'; }
failed=0
for target in "${targets[@]}"; do
  corpus=$work/corpus/$target
  # Fresh seeds from the uninstrumented build, beside what earlier runs found.
  dotnet "$bin/Wzp.Protocol.Tests.dll" fuzz-seeds "$target" "$corpus" >/dev/null
  out=$work/out/$target
  if ! afl-fuzz -V "$seconds" -i "$corpus" -o "$out" -t 5000 -m none -- dotnet "$work/bin/Wzp.Protocol.Tests.dll" fuzz "$target" >"$work/$target.log" 2>&1; then
    echo "$target: afl-fuzz failed (log: $work/$target.log)" >&2
    tail -20 "$work/$target.log" >&2
    failed=1
    continue
  fi
  stats=$out/default/fuzzer_stats
  cp -n "$out"/default/queue/id:* "$corpus"/ 2>/dev/null || true
  crashes=$(stat saved_crashes "$stats"); hangs=$(stat saved_hangs "$stats")
  echo "$target: $(stat execs_done "$stats") inputs ($(stat execs_per_sec "$stats")/s), corpus $(stat corpus_count "$stats"), edges $(stat edges_found "$stats"), stability $(stat stability "$stats"), crashes $crashes, hangs $hangs"
  if [ "$crashes" != 0 ] || [ "$hangs" != 0 ]; then
    mkdir -p "$work/findings/$target"
    cp "$out"/default/crashes/id:* "$out"/default/hangs/id:* "$work/findings/$target"/ 2>/dev/null || true
    echo "$target: FINDINGS kept in $work/findings/$target" >&2
    failed=1
  else
    echo "$target OK"
  fi
done
exit $failed
