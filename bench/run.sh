#!/usr/bin/env bash
# Star-lab benchmark (issue #8): nslab against two iproute2 baselines doing the same work.
#
# For each N, builds a star of N nodes on one bridge (each node: a network namespace,
# a veth to the bridge, an IPv4 address, a default route via the bridge, lo up; no IPv6
# link-local addresses anywhere) three ways, checks each build (ping, `ip -j` dumps
# compared with nslab's), tears it down, and prints medians:
#   nslab      `nslab up FILE --prefix P` / `nslab down --lab NAME`
#   batch      one `ip -batch` for the host side, one `ip -n NS -batch` per namespace;
#              down: one `ip -batch` of `netns del` lines and `link del br0`
#   percmd     a shell script with one `ip` command per step (the tutorial's way);
#              down: one `ip netns del` per node, then `ip link del br0`
#   floor      not a star: the namespace floor (issue 23, item 4). N bare named
#              namespaces made as `ip netns add` does (unshare + bind mount on
#              /run/netns/NAME) plus `lo` up in each (one RTM_NEWLINK, acked), in one
#              process (examples/ns_floor.rs); down: umount + unlink each. The table
#              shows nslab's up / the floor's (target <= 1.2x). Checked: lo up in
#              nodes 1 and N; no ping, no star comparison.
# "down" always lasts until the kernel has removed the host-side veth ends.
# Each build runs inside a fresh namespace made by the benchmark, which plays the
# host (`nsenter --net=/run/netns/bench-ID-h-METHOD`); the real host network is never
# touched. Everything is named bench-ID-*, and is removed on exit, even on error or ^C.
#
# Usage: bench/run.sh [--quick] [--sizes 10,100,500,1000] [--reps R] [--methods LIST]
#                     [--nslab PATH] [--json FILE] [--csv FILE] [--table FILE]
#                     [--percmd-style n|exec] [--keep-tmp] [--phases] [--floor PATH]
# Run as root. See bench/README.md.
set -euo pipefail
shopt -s nullglob

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
py=(python3 "$here/bench.py")

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

sizes="10,100,500,1000"
reps=""                     # default: see reps_for
methods="nslab,floor,batch,percmd"
methods_given=0
floor_bin="${NS_FLOOR:-}"     # examples/ns_floor, built next to nslab if not given
nslab_bin="${NSLAB:-}"
json_out="" csv_out="" table_out=""
percmd_style="n"            # n: `ip -n NS ...`; exec: `ip netns exec NS ip ...` (literally the tutorial)
keep_tmp=0
phases=0
settle_max="${BENCH_SETTLE_MAX:-60}"

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) sizes=10; reps=1; settle_max="${BENCH_SETTLE_MAX:-5}" ;;
    --sizes) sizes="$2"; shift ;;
    --reps) reps="$2"; shift ;;
    --methods) methods="$2"; methods_given=1; shift ;;
    --nslab) nslab_bin="$2"; shift ;;
    --floor) floor_bin="$2"; shift ;;
    --json) json_out="$2"; shift ;;
    --csv) csv_out="$2"; shift ;;
    --table) table_out="$2"; shift ;;
    --percmd-style) percmd_style="$2"; shift ;;
    --keep-tmp) keep_tmp=1 ;;
    --phases) phases=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "run.sh: $*" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "needs root (it creates network namespaces)"
for c in ip nsenter ping python3; do
  command -v "$c" >/dev/null || die "missing $c (packages: iproute2 util-linux iputils-ping python3)"
done
[[ "$sizes" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--sizes wants a comma-separated list of numbers"
IFS=, read -r -a size_list <<<"$sizes"
for n in "${size_list[@]}"; do
  if [ "$n" -lt 1 ] || [ "$n" -gt 1000 ]; then die "N=$n: want 1..1000 (a bridge holds at most 1024 ports)"; fi
done
[ -z "$reps" ] || [[ "$reps" =~ ^[1-9][0-9]*$ ]] || die "--reps wants a positive number"
[[ "$percmd_style" == n || "$percmd_style" == exec ]] || die "--percmd-style is n or exec"
IFS=, read -r -a method_list <<<"$methods"
for m in "${method_list[@]}"; do
  [[ "$m" == nslab || "$m" == floor || "$m" == batch || "$m" == percmd ]] || die "unknown method $m"
done
# Peak RSS: GNU time's %M (see bench.py run). Install it if missing (Debian: time).
gnu_time=/usr/bin/time
if ! "$gnu_time" -f %M true >/dev/null 2>&1 && command -v apt-get >/dev/null; then
  echo "run.sh: installing GNU time (package time) for peak-RSS measurement" >&2
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time || {
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time; }; } >/dev/null 2>&1 || true
fi
if "$gnu_time" -f %M true >/dev/null 2>&1; then rss_how="GNU time %M"
else gnu_time=""; rss_how="wait4 rusage (upper bound: includes ~16 MiB inherited from the python launcher)"
  echo "run.sh: no GNU time; $rss_how" >&2
fi
time_opt=()
[ -z "$gnu_time" ] || time_opt=(--gnu-time "$gnu_time")

if [ -z "$nslab_bin" ]; then
  if [ -x "$repo/target/release/nslab" ]; then nslab_bin="$repo/target/release/nslab"
  else nslab_bin="$repo/target/debug/nslab"; fi
fi
[ -x "$nslab_bin" ] || die "no nslab binary at $nslab_bin (build it, or give --nslab PATH / NSLAB=PATH)"
nslab_bin=$(realpath "$nslab_bin")
# The floor program: --floor PATH, $NS_FLOOR, else examples/ns_floor of nslab's profile
# (target/release or target/debug), built with cargo if it is missing or older than
# its source.
if [[ ",$methods," == *,floor,* ]]; then
  if [ -z "$floor_bin" ]; then
    prof_dir=$(dirname "$nslab_bin")
    floor_bin="$prof_dir/examples/ns_floor"
    if [ ! -x "$floor_bin" ] || [ "$repo/examples/ns_floor.rs" -nt "$floor_bin" ]; then
      rel=(); [ "$(basename "$prof_dir")" = release ] && rel=(--release)
      echo "run.sh: building examples/ns_floor (cargo build ${rel[*]} --example ns_floor)" >&2
      (cd "$repo" && CARGO_TARGET_DIR="$(dirname "$prof_dir")" cargo build -q "${rel[@]}" --example ns_floor) >&2 \
        || echo "run.sh: cannot build examples/ns_floor" >&2
    fi
  fi
  if [ -x "$floor_bin" ]; then floor_bin=$(realpath "$floor_bin")
  elif [ "$methods_given" = 1 ]; then die "no ns_floor binary at $floor_bin (give --floor PATH, or leave floor out of --methods)"
  else   # default methods: go on without the floor rather than fail (smoke test)
    echo "run.sh: WARNING: no ns_floor binary at $floor_bin; the floor is left out of this run" >&2
    methods=${methods/floor,/}; IFS=, read -r -a method_list <<<"$methods"
  fi
fi
for f in json_out csv_out table_out; do   # absolute paths: we cd nowhere, but be safe
  if [ -n "${!f}" ]; then printf -v "$f" '%s' "$(realpath -m "${!f}")"; fi
done

# A run id no existing namespace uses.
while :; do
  run_id="bench-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
  ip netns list | awk '{print $1}' | grep -q "^$run_id-" || break
done
# nslab's state directory (records, locks), as nslab finds it.
state_dir=${NSLAB_STATE_DIR:-/run/nslab}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/$run_id.XXXXXX")

root_links() { ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort; }
root_links_before=$(root_links)
failed=0

# Everything this run made carries $run_id: namespaces (/run/netns), nslab's records
# and per-node /etc/netns/NAME dirs, its lock files. Remove them all, then check.
# shellcheck disable=SC2317  # (run by the EXIT trap)
cleanup() {
  local rc=$? left
  trap '' INT TERM
  trap - EXIT
  set +e
  for rec in "$state_dir"/labs/"$run_id"-*.json; do
    lab=$(basename "$rec" .json)                    # bench-ID-nslab-star
    echo "cleanup: nslab down --lab $lab" >&2
    timeout 120 nsenter --net="/run/netns/$run_id-h-nslab" "$nslab_bin" down --lab "$lab" --kill >&2
  done
  mapfile -t left < <(ip netns list | awk '{print $1}' | grep "^$run_id-")
  if [ "${#left[@]}" -gt 0 ]; then
    echo "cleanup: deleting ${#left[@]} namespaces $run_id-*" >&2
    printf 'netns del %s\n' "${left[@]}" | ip -force -batch - >/dev/null 2>&1
  fi
  rm -rf -- /etc/netns/"$run_id"-* "$state_dir"/labs/"$run_id"-*.json "$state_dir"/locks/"$run_id"-*.lock
  if [ "$keep_tmp" = 1 ]; then echo "kept $tmp" >&2; else rm -rf -- "$tmp"; fi
  # Nothing may be left behind.
  left=()
  mapfile -t -O 0 left < <(ip netns list | awk '{print $1}' | grep "^$run_id-")
  left+=(/etc/netns/"$run_id"-* "$state_dir"/labs/"$run_id"-* "$state_dir"/locks/"$run_id"-*)
  if [ "${#left[@]}" -gt 0 ]; then
    echo "run.sh: LEFT BEHIND: ${left[*]}" >&2; rc=1
  fi
  if [ "$(root_links)" != "$root_links_before" ]; then
    echo "run.sh: the root namespace's links changed during the run:" >&2
    diff <(echo "$root_links_before") <(root_links) >&2; rc=1
  fi
  [ "$rc" -eq 0 ] && [ "$failed" -ne 0 ] && rc=1
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

fail() { echo "run.sh: FAILED: $*" >&2; failed=1; exit 1; }

kernel=$(uname -r)
meta="$tmp/meta.json"
python3 - "$meta" "$kernel" "$(nproc)" "$(ip -V)" "$("$nslab_bin" --version 2>&1)" "$nslab_bin" \
  "$(git -C "$(dirname "$nslab_bin")" rev-parse --short HEAD 2>/dev/null || true)" "$percmd_style" "$rss_how" <<'EOF'
import json, sys, datetime
out, kernel, cpus, ipv, nv, nb, rev, style, rss_how = sys.argv[1:]
json.dump({"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "kernel": kernel, "cpus": int(cpus), "iproute2": ipv.split(",")[1].strip(), "nslab_version": nv.split()[-1],
           "nslab_bin": nb, "nslab_git": rev, "percmd_style": style, "peak_rss": rss_how,
           "topology": "star: N nodes on one bridge br0 10.0.0.1/16; node k: eth0 10.0.x.y/16, default via 10.0.0.1, lo up; no IPv6 link-local"},
          open(out, "w"), indent=1)
EOF
samples="$tmp/samples.jsonl"
: >"$samples"
echo "run $run_id: kernel $kernel, $(nproc) CPUs, nslab $nslab_bin, sizes $sizes, methods $methods" >&2

# Repetitions of method $2 at size $1: --reps R for all, else 5 for nslab and ip -batch
# (their differences are a few percent and run-to-run noise is ~15%), and 3 (N <= 100)
# or 2 for the per-step script, which takes minutes and is never close.
reps_for() {
  if [ -n "$reps" ]; then echo "$reps"
  elif [ "$2" != percmd ]; then echo 5
  elif [ "$1" -le 100 ]; then echo 3
  else echo 2; fi
}

# Node k's address, as bench.py's node_addr() gives it.
node_addr() { echo "10.0.$(( $1 / 250 )).$(( $1 % 250 + 2 ))"; }

# ping -c 2: success if any reply. Both ends are namespaces this run made.
check_ping() {  # NS ADDR
  nsenter --net="/run/netns/$1" ping -n -q -c 2 -i 0.2 -W 3 "$2" >/dev/null 2>&1
}

# One build, measured: up, check, down, check. Appends a sample line.
build() {  # METHOD N REP
  local m=$1 n=$2 rep=$3
  local d="$tmp/n$n-r$rep-$m" host="$run_id-h-$m" prefix="$run_id-$m-"
  local stamps="$d/stamps" log="$d/log" busy waited busy_down waited_down rss_up rss_down
  mkdir -p "$d"
  "${py[@]}" gen --n "$n" --method "$m" --prefix "$prefix" --dir "$d" --percmd-style "$percmd_style"
  read -r busy waited < <("${py[@]}" settle --max "$settle_max")
  ip netns add "$host"
  export BENCH_STAMPS="$stamps" BENCH_NSLAB="$nslab_bin" BENCH_LAB="${prefix}star" BENCH_LOG="$log" BENCH_FLOOR="$floor_bin"

  # up
  if [ "$m" = nslab ]; then
    "${py[@]}" run "${time_opt[@]}" --stamps "$stamps" --label up --rss "$d/rss_up" --log "$log" -- \
      nsenter --net="/run/netns/$host" "$nslab_bin" up "$d/star.yaml" --prefix "$prefix" \
      || { cat "$log" >&2; fail "nslab up (N=$n)"; }
  else
    "${py[@]}" run "${time_opt[@]}" --stamps "$stamps" --label up --rss "$d/rss_up" --log "$log" -- \
      nsenter --net="/run/netns/$host" bash "$d/up.sh" \
      || { tail -5 "$log" >&2; fail "$m up (N=$n)"; }
  fi

  if [ "$m" = floor ]; then
    # bare namespaces: are they there, with lo up?
    local k
    for k in 1 "$n"; do
      ip -n "${prefix}n$k" -o link show lo | grep -q '[<,]UP[,>]' || fail "floor N=$n: lo not up in node $k"
    done
  else
  # does it work? first and last node ping each other and the bridge
  local first="${prefix}n1" last="${prefix}n$n" a_last a_first
  a_first=$(node_addr 1); a_last=$(node_addr "$n")
  check_ping "$first" 10.0.0.1 || fail "$m N=$n: node 1 cannot ping the bridge 10.0.0.1"
  check_ping "$last" 10.0.0.1 || fail "$m N=$n: node $n cannot ping the bridge 10.0.0.1"
  if [ "$n" -gt 1 ]; then
    check_ping "$first" "$a_last" || fail "$m N=$n: node 1 cannot ping node $n ($a_last)"
    check_ping "$last" "$a_first" || fail "$m N=$n: node $n cannot ping node 1 ($a_first)"
  fi
  # is it the star we want (and the same as the others')?
  "${py[@]}" verify --n "$n" --method "$m" --host-ns "$host" --prefix "$prefix" --out "$d/canon.json" \
    || fail "$m N=$n: the build is not the expected star (see above)"
  fi

  read -r busy_down waited_down < <("${py[@]}" settle --max "$settle_max")
  # down: until the kernel has removed the host-side veth ends
  "${py[@]}" run "${time_opt[@]}" --stamps "$stamps" --label down --rss "$d/rss_down" --log "$log" -- \
    nsenter --net="/run/netns/$host" bash "$d/down.sh" \
    || { tail -5 "$log" >&2; fail "$m down (N=$n)"; }
  local rest
  rest=$(ip -n "$host" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -vx lo || true)
  [ -z "$rest" ] || fail "$m N=$n: down left links in the host namespace: $rest"
  rest=$(ip netns list | awk '{print $1}' | grep "^$prefix" || true)
  [ -z "$rest" ] || fail "$m N=$n: down left namespaces: $(echo "$rest" | head -3 | tr '\n' ' ')"
  if [ "$m" = nslab ]; then
    [ ! -e "$state_dir/labs/${prefix}star.json" ] || fail "nslab down left its record"
    rm -f -- "$state_dir/locks/${prefix}star.lock"   # nslab keeps lock files; ours go
  fi
  ip netns del "$host"

  rss_up=$(cat "$d/rss_up"); rss_down=$(cat "$d/rss_down")
  printf '{"n":%d,"method":"%s","rep":%d,"stamps":"%s","rss_up_kib":%d,"rss_down_kib":%d,"busy_before":%s,"settle_s":%s,"busy_before_down":%s,"settle_down_s":%s}\n' \
    "$n" "$m" "$rep" "$stamps" "$rss_up" "$rss_down" "$busy" "$waited" "$busy_down" "$waited_down" >>"$samples"
  awk -v m="$m" -v n="$n" -v r="$rep" '
    { t[$1] = $2 }
    END { printf "  N=%-4d rep %d  %-7s up %8.3f s   down %7.3f s\n", n, r, m,
          t["up_end"] - t["up_start"], t["down_end"] - t["down_start"] }' "$stamps" >&2
}

for n in "${size_list[@]}"; do
  r_n=0
  for m in "${method_list[@]}"; do r=$(reps_for "$n" "$m"); [ "$r" -le "$r_n" ] || r_n=$r; done
  for ((rep = 1; rep <= r_n; rep++)); do
    # Rotate the order from one rep to the next, so no method always goes first.
    order=("${method_list[@]:$(( (rep - 1) % ${#method_list[@]} ))}" "${method_list[@]:0:$(( (rep - 1) % ${#method_list[@]} ))}")
    for m in "${order[@]}"; do
      if [ "$rep" -le "$(reps_for "$n" "$m")" ]; then build "$m" "$n" "$rep"; fi
    done
    # Same interfaces, addresses, routes, flags, addrgenmode for all three builds?
    for m in "${method_list[@]}"; do
      [ "$m" = nslab ] || [ "$m" = floor ] || [ ! -e "$tmp/n$n-r$rep-nslab/canon.json" ] || [ ! -e "$tmp/n$n-r$rep-$m/canon.json" ] || {
        diff -u "$tmp/n$n-r$rep-nslab/canon.json" "$tmp/n$n-r$rep-$m/canon.json" >&2 \
          || fail "N=$n: the $m build differs from nslab's (diff above: - nslab, + $m)"
      }
    done
  done
done

report_args=(--samples "$samples" --meta "$meta")
[ -n "$json_out" ] && report_args+=(--json "$json_out")
[ -n "$csv_out" ] && report_args+=(--csv "$csv_out")
[ -n "$table_out" ] && report_args+=(--table "$table_out")
[ "$phases" = 1 ] && report_args+=(--phases)
echo >&2
"${py[@]}" report "${report_args[@]}"
[ -n "$json_out" ] && echo "results: $json_out" >&2
[ -n "$csv_out" ] && echo "results: $csv_out" >&2
exit 0
