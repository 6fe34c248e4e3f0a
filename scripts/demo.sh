#!/usr/bin/env bash
# The main job: build nslab and run the tutorial end to end, sandboxed
# (nothing of the real host network is touched, nothing is left behind).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
if [ "$(id -u)" -ne 0 ]; then
  exec sudo ./target/release/nslab demo "$@"
fi
exec ./target/release/nslab demo "$@"
