#!/usr/bin/env bash
# `nslab check` (the whole matrix) on a star of N nodes against a sequential
# `ip netns exec SRC ping -c1 -W1 DST` loop over the same pairs (node to node).
# Usage: bench/check.sh [N=100] [NSLAB=target/release/nslab]. Run as root.
# Everything is named bchk-*; the lab is sandboxed and taken down on exit.
set -euo pipefail
n=${1:-100}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
nslab=${2:-${NSLAB:-$here/../target/release/nslab}}
tmp=$(mktemp -d)
lab=bchk-star$n
trap '"$nslab" down --lab "$lab" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
python3 "$here/star.py" "$n" "star$n" >"$tmp/star.yaml"
"$nslab" up --sandbox --prefix bchk- "$tmp/star.yaml" >/dev/null
t0=$(date +%s.%N)
"$nslab" check --lab "$lab" --json >"$tmp/check.json" || true
t1=$(date +%s.%N)
# NO among node pairs (the sandbox's internet is not routed to: its NOs are right).
read -r cells no err < <(python3 -c '
import json,sys; d=json.load(open(sys.argv[1])); m=d["matrix"]
node=lambda p: p not in ("host", "internet")
print(len(m), sum(1 for c in m if c["reach"] is False and node(c["src"]) and node(c["dst"])),
      sum(1 for c in m if c.get("error")))' "$tmp/check.json")
fails=0
t2=$(date +%s.%N)
for s in $(seq 0 $((n - 1))); do
  for d in $(seq 0 $((n - 1))); do
    [ "$s" = "$d" ] && continue
    ip netns exec "bchk-i$s" ping -c1 -W1 -q "10.0.$((d / 250)).$((d % 250 + 1))" >/dev/null 2>&1 || fails=$((fails + 1))
  done
done
t3=$(date +%s.%N)
python3 - "$n" "$cells" "$no" "$err" "$t0" "$t1" "$t2" "$t3" "$fails" <<'PY'
import sys
n, cells, no, err = map(int, sys.argv[1:5])
t0, t1, t2, t3 = map(float, sys.argv[5:9])
fails = int(sys.argv[9])
c, l = t1 - t0, t3 - t2
print(f"star of {n}: nslab check {c:.1f} s ({cells} cells incl. host/internet, {no} NO between nodes, {err} ERR); "
      f"ping loop {l:.1f} s ({n*(n-1)} pairs, {fails} failed); {l/c:.1f}x")
PY
