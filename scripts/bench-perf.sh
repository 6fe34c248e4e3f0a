#!/usr/bin/env bash
# nslab perf against iperf3 on one unshaped veth of a sandboxed two-node lab:
# RUNS runs of each (alternating), SECONDS each, TCP goodput at the receiver;
# prints every run and the medians, and their ratio. Needs root, iperf3, and a
# built nslab (NSLAB, default target/release/nslab).
#   sudo scripts/bench-perf.sh [RUNS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
SECS=${2:-5}
NSLAB=${NSLAB:-target/release/nslab}
P=${BENCH_PREFIX:-tbperf$$-}
command -v iperf3 >/dev/null || { echo "iperf3 is needed" >&2; exit 2; }
command -v jq >/dev/null || { echo "jq is needed" >&2; exit 2; }
[ -x "$NSLAB" ] || { echo "build nslab first: cargo build --release" >&2; exit 2; }

dir=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  "$NSLAB" down --lab "${P}perf" --kill >/dev/null 2>&1 || true
  rm -rf -- "$dir"
}
trap cleanup EXIT
cat >"$dir/perf.yaml" <<'YAML'
name: perf
nodes:
  a: { interfaces: { ea: { address: 10.20.0.1/24 } } }
  b: { interfaces: { eb: { address: 10.20.0.2/24 } } }
links: [[a:ea, b:eb]]
YAML
"$NSLAB" up "$dir/perf.yaml" --sandbox --prefix "$P" >/dev/null

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ours=() theirs=()
echo "# $(date -Is)  kernel $(uname -r)  $(nproc) CPUs  $(iperf3 --version | head -1)"
echo "# $RUNS runs of $SECS s each, alternating; TCP, one stream, receiver-side goodput"
for i in $(seq "$RUNS"); do
  n=$("$NSLAB" perf --lab "${P}perf" a b -t "$SECS" --json | jq .bits_per_second)
  ip netns exec "${P}b" iperf3 -s -1 -p 5301 >/dev/null 2>&1 &
  server=$!
  t=""
  for _ in $(seq 50); do
    t=$(ip netns exec "${P}a" iperf3 -c 10.20.0.2 -p 5301 -t "$SECS" -J 2>/dev/null \
      | jq -e .end.sum_received.bits_per_second 2>/dev/null) && break
    sleep 0.1
  done
  wait "$server" 2>/dev/null || true
  server=""
  [ -n "$t" ] || { echo "iperf3 did not run" >&2; exit 1; }
  ours+=("$n"); theirs+=("$t")
  awk -v i="$i" -v n="$n" -v t="$t" \
    'BEGIN { printf "run %d  nslab perf %8.2f Gbit/s  iperf3 %8.2f Gbit/s\n", i, n / 1e9, t / 1e9 }'
done
mo=$(printf '%s\n' "${ours[@]}" | median)
mt=$(printf '%s\n' "${theirs[@]}" | median)
awk -v n="$mo" -v t="$mt" \
  'BEGIN { printf "median      nslab perf %8.2f Gbit/s  iperf3 %8.2f Gbit/s  ratio %.3f\n", n / 1e9, t / 1e9, n / t }'
