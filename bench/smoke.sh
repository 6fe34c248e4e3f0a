#!/usr/bin/env bash
# Smoke test of the benchmarks (issue #8, and #23's capture benchmark): N=10, one repetition of each build (nslab,
# ip -batch, one ip command per step). Exits non-zero if a build does not work (ping,
# `ip -j` checks, the three builds differ) or anything is left behind.
# The nslab binary: --nslab PATH or NSLAB=PATH, else target/release/nslab, else
# target/debug/nslab. Other arguments go to run.sh (e.g. --json FILE). Needs root.
set -euo pipefail
"$(dirname "${BASH_SOURCE[0]}")/run.sh" --quick "$@"
# The capture benchmark, briefly (issue #23): a 1 s UDP flood per capture mode on one
# veth; fails if a file does not hold what the capture reported, or nslab missed packets.
nslab_arg=()
prev=""
for a in "$@"; do [ "$prev" = "--nslab" ] && nslab_arg=(--nslab "$a"); prev="$a"; done
"$(dirname "${BASH_SOURCE[0]}")/capture.sh" --quick "${nslab_arg[@]}"
