#!/usr/bin/env bash
# The main job: build nslab and run the tutorial end to end, sandboxed
# (nothing of the real host network is touched, nothing is left behind).
set -euo pipefail
cd "$(dirname "$0")/.."
# The first release build takes a few minutes: say so, and show cargo's progress.
if [ ! -x target/release/nslab ]; then
  echo "== building nslab (release; the first build takes a few minutes)..." >&2
else
  echo "== building nslab (release)..." >&2
fi
cargo build --release
if [ "$(id -u)" -ne 0 ]; then
  exec sudo ./target/release/nslab demo "$@"
fi
exec ./target/release/nslab demo "$@"
