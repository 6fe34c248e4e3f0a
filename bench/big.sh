#!/usr/bin/env bash
# Big labs (issue 23): B bridges x N nodes, `nslab up --sandbox` and `nslab down`
# under a soft open-file limit of 1,024 (Debian's default; the hard limit is left
# as it is unless --hard), the sizes in turn within each repetition.
# Reports wall time per node, peak RSS (GNU time %M) and the ratio of time per
# node against the first size.
#
# Usage: bench/big.sh [--sizes 1x1000,10x1000] [--reps R] [--hard] [--nslab PATH]
#   --hard       the hard limit is 1,024 too (nslab cannot raise the soft one)
#   --reps R     repetitions per size (medians), default 1
# Run as root. Targets (issue 23, at 10x1000 against 1x1000): time per node at
# most 1.5x, peak RSS under 64 MiB. Every lab is taken down; a namespace of
# the run left behind (named bgPID-*) makes it exit 1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
sizes="1x1000,10x1000"
reps=1
hard=0
nslab="${NSLAB:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) sizes="$2"; shift ;;
    --reps) reps="$2"; shift ;;
    --hard) hard=1 ;;
    --nslab) nslab="$2"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "big.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$nslab" ]; then
  for c in "$repo/target/release/nslab" "$repo/target/debug/nslab"; do
    [ -x "$c" ] && { nslab="$c"; break; }
  done
fi
[ -x "$nslab" ] || { echo "big.sh: no nslab binary (cargo build --release)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "big.sh: needs GNU time (apt-get install time)" >&2; exit 2; }

tmp=$(mktemp -d)
prefix="bg$$-"
ours() { ip netns list | grep -c "^$prefix" || true; }
labs=()
cleanup() {
  for l in "${labs[@]}"; do
    "$nslab" down --lab "$l" >/dev/null 2>&1 || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

if [ "$hard" = 1 ]; then limits="ulimit -Hn 1024 -Sn 1024"; else limits="ulimit -Sn 1024"; fi

# Before each command: the CPUs quiet (< 10% busy over 0.5 s, at most 60 s);
# before an `up` (`settle up`) first the kernel done freeing the last run's
# namespaces: cleanup_net runs for minutes after a 10,000-node `down` returns,
# with idle gaps, so wait until the count of live `struct net` in
# /proc/slabinfo is back to what it was when this script started (at most
# 300 s). Without that, a 1 x 1,000 `up` right after a 10 x 1,000 run took
# 2.9 s instead of 2.0 s.
nets() { awk '$1 == "net_namespace" {print $2}' /proc/slabinfo 2>/dev/null || true; }
nets0=$(nets)
settle() {
  NETS0="${1:+$nets0}" python3 - <<'PY'
import os, time
def nets():
    try:
        for line in open('/proc/slabinfo'):
            if line.startswith('net_namespace '):
                return int(line.split()[1])
    except OSError:
        pass
    return None
base = os.environ.get('NETS0')
t0 = time.time()
while base and (nets() or 0) > int(base) + 16 and time.time() - t0 < 300:
    time.sleep(0.5)
def busy():
    a = [int(x) for x in open('/proc/stat').readline().split()[1:]]
    time.sleep(0.5)
    b = [int(x) for x in open('/proc/stat').readline().split()[1:]]
    d = [y - x for x, y in zip(a, b)]
    return 1 - (d[3] + d[4]) / max(sum(d), 1)
t0 = time.time()
while busy() > 0.10 and time.time() - t0 < 60:
    pass
PY
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "# $(date -u +%FT%TZ)  kernel $(uname -r)  $(nproc) CPUs  nslab $("$nslab" --version 2>/dev/null | head -1)"
echo "# limits: $limits (hard before: $(ulimit -Hn)); load average: $(cut -d' ' -f1-3 /proc/loadavg); live namespaces (slabinfo): ${nets0:-unknown}"
printf '%-8s %6s %4s %9s %12s %10s %11s %10s\n' size nodes rep "up s" "up/node ms" "up RSS MiB" "down s" "down RSS"
declare -A per_node rss_of
IFS=, read -r -a list <<<"$sizes"
first=${list[0]}
declare -A ups_of rsss_of
for size in "${list[@]}"; do
  b=${size%x*}; n=${size#*x}
  python3 "$here/multistar.py" "$b" "$n" > "$tmp/ms${b}x${n}.yaml"
done
# Sizes alternate within each repetition: the machine's speed drifts over
# minutes (a 1 x 1,000 `up` took 2.0 s at one time and 2.9 s half an hour later),
# so a size's reps are spread over the run, not bunched at one end.
for r in $(seq 1 "$reps"); do
  for size in "${list[@]}"; do
    b=${size%x*}; n=${size#*x}
    nodes=$((b * n))
    file="$tmp/ms${b}x${n}.yaml"
    lab="${prefix}ms${b}x${n}"
    settle up
    labs+=("$lab")
    out=$(bash -c "$limits; exec /usr/bin/time -f '%e %M' -o $tmp/up.time $nslab up $file --sandbox --prefix $prefix" 2>&1) \
      || { echo "big.sh: up of $size failed: $out" | cut -c1-2000 >&2; exit 1; }
    read -r up_s up_kib < "$tmp/up.time"
    settle
    out=$(bash -c "$limits; exec /usr/bin/time -f '%e %M' -o $tmp/down.time $nslab down --lab $lab" 2>&1) \
      || { echo "big.sh: down of $size failed: $out" >&2; exit 1; }
    read -r down_s down_kib < "$tmp/down.time"
    printf '%-8s %6d %4d %9.2f %12.3f %10.1f %11.2f %10.1f\n' "$size" "$nodes" "$r" "$up_s" \
      "$(echo "$up_s * 1000 / $nodes" | bc -l)" "$(echo "$up_kib / 1024" | bc -l)" "$down_s" "$(echo "$down_kib / 1024" | bc -l)"
    ups_of[$size]+="$(echo "$up_s * 1000 / $nodes" | bc -l) "
    rsss_of[$size]+="$up_kib "
  done
done
for size in "${list[@]}"; do
  per_node[$size]=$(printf '%s\n' ${ups_of[$size]} | median)
  rss_of[$size]=$(printf '%s\n' ${rsss_of[$size]} | median)
done
left=$(ours)
echo
for size in "${list[@]}"; do
  ratio=$(echo "${per_node[$size]} / ${per_node[$first]}" | bc -l)
  printf '%-8s median up/node %.3f ms (%.2fx of %s), peak RSS %.1f MiB\n' "$size" "${per_node[$size]}" "$ratio" "$first" \
    "$(echo "${rss_of[$size]} / 1024" | bc -l)"
done
last=${list[${#list[@]}-1]}
ratio=$(echo "${per_node[$last]} / ${per_node[$first]}" | bc -l)
rss=$(echo "${rss_of[$last]} / 1024" | bc -l)
verdict() { if [ "$1" = 1 ]; then echo PASS; else echo FAIL; fi; }
echo "Targets ($last against $first):"
echo "  $(verdict "$(echo "$ratio <= 1.5" | bc -l)")  time per node at most 1.5x: $(printf %.2f "$ratio")x"
echo "  $(verdict "$(echo "$rss < 64" | bc -l)")  peak RSS under 64 MiB: $(printf %.1f "$rss") MiB"
if [ "$left" != 0 ]; then
  echo "big.sh: $left namespaces of the run left (${prefix}*)" >&2
  exit 1
fi
