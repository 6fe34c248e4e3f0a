#!/usr/bin/env bash
# Smoke test of the benchmark (issue #8): N=10, one repetition of each build (nslab,
# ip -batch, one ip command per step). Exits non-zero if a build does not work (ping,
# `ip -j` checks, the three builds differ) or anything is left behind.
# The nslab binary: --nslab PATH or NSLAB=PATH, else target/release/nslab, else
# target/debug/nslab. Other arguments go to run.sh (e.g. --json FILE). Needs root.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/run.sh" --quick "$@"
