#!/usr/bin/env bash
# Capture benchmark (issue #23): a UDP flood (iperf3 -u -b 0 -l 64) and a TCP bulk
# transfer over sandboxed veths, each with no capture, `tcpdump -w` and
# `nslab capture -w -q`, on one interface (tutorial objective 1) and on four at once.
# Reports the sender's packet rate, packets captured (files read back), kernel drops
# and the capture process's CPU time per packet; see bench/capture.py.
#
# Usage: bench/capture.sh [--quick] [--reps R] [--secs T] [--json FILE] [--nslab PATH]
#        [--protos udp,tcp] [--ifaces 1,4] [--base PATH]
#   --base: another nslab binary, run as a fourth mode in the same alternation (A/B).
#   --quick: one 1 s UDP run per mode on one interface (the smoke run).
# The nslab binary: --nslab PATH or NSLAB=PATH, else a release build made here.
# Needs root, iperf3, tcpdump. Names start with capb<pid>-; removed at exit.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
args=()
nslab_bin="${NSLAB:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --nslab) nslab_bin="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
if [ -z "$nslab_bin" ]; then
    (cd "$repo" && cargo build --release -q)
    nslab_bin="$repo/target/release/nslab"
fi
exec python3 "$here/capture.py" --nslab "$nslab_bin" "${args[@]}"
