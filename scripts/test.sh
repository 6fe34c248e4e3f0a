#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the system packages the tests use,
# checks formatting and lints, runs unit and root integration tests, and finally
# checks that nothing was left behind in the kernel.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  # Tests create namespaces, veths and nftables tables: they need root.
  exec sudo -E env "PATH=$PATH" "$0" "$@"
fi

# Independent tools the tests cross-check with (never used by nslab itself).
want="iproute2:ip iproute2:bridge iputils-ping:ping nftables:nft tcpdump:tcpdump curl:curl python3:python3 util-linux:nsenter procps:sysctl time:/usr/bin/time iperf3:iperf3 chromium:chromium chromium-driver:chromedriver"
missing=""
for pair in $want; do
  pkg=${pair%%:*}; cmd=${pair##*:}
  command -v "$cmd" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "== installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The suite runs against a state directory of its own (records, hosts files, logs,
# locks), created here and removed at the end: a fresh machine (no /run/nslab yet)
# and one with labs of its own behave alike.
NSLAB_STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/nslab-test-state.XXXXXX")
export NSLAB_STATE_DIR
# Kept when something was left behind: its records are what `nslab clean` and
# `nslab down` need to remove it.
keep_state=0
trap '[ "$keep_state" = 1 ] || rm -rf -- "$NSLAB_STATE_DIR"' EXIT

# What the tests could leave behind, by content: namespaces, interfaces, nft tables,
# files under /etc/netns and /run/netns, nslab's cgroups, and the files in the state
# directory (lock files and logs excepted: nslab keeps locks on purpose, logs are
# the programs' output). Directories that
# exist but hold nothing do not count.
snapshot() {
  { ip netns list; ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1; nft list tables 2>/dev/null;
    find /etc/netns /run/netns -mindepth 1 ! -type d 2>/dev/null;
    find /sys/fs/cgroup -maxdepth 4 -path '*/nslab/*' -type d 2>/dev/null;
    (cd "$NSLAB_STATE_DIR" && find . -mindepth 1 ! -type d ! -path './locks/*' ! -path './logs/*' -printf 'state:%p\n');
    (cd "$NSLAB_STATE_DIR" && cat host-forwarding.json 2>/dev/null); true; } | sort
}
before=$(snapshot)

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --all-targets --quiet -- --test-threads "${NSLAB_TEST_THREADS:-4}"
echo "== cargo test --doc"
# --all-targets leaves out the doctests.
cargo test --doc --quiet
echo "== examples"
# The library's examples, as a user runs them (root; each cleans up after itself,
# which the leak check below verifies).
for example in client_server capture check; do
  echo "== example $example"
  cargo run --quiet --example "$example"
done
echo "== fuzzing (${NSLAB_FUZZ_SECONDS:-60} s per target)"
# cargo-fuzz needs nightly flags (-Z sanitizer=address); RUSTC_BOOTSTRAP=1 lets the
# stable toolchain take them. The corpus in the repo is only read: what libFuzzer
# adds goes to a scratch directory. A crash, a panic or an input slower than 10 s
# stops the run with its input under fuzz/artifacts/TARGET/ and fails the script.
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install --locked --quiet cargo-fuzz
fi
fuzz_scratch=$(mktemp -d)
for target in $(cargo fuzz list); do
  mkdir -p "$fuzz_scratch/$target" "fuzz/corpus/$target"
  echo "== fuzz $target"
  log="$fuzz_scratch/$target.log"
  if ! RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$fuzz_scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="${NSLAB_FUZZ_SECONDS:-60}" -timeout=10 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "== fuzz $target found a failing input (above; saved under fuzz/artifacts/$target/)"
    exit 1
  fi
  grep -E '^Done [0-9]+ runs' "$log" || { tail -n 20 "$log"; exit 1; }
done
rm -rf "$fuzz_scratch"
echo "== benchmark smoke run (N=10, nslab against iproute2)"
NSLAB="$PWD/target/debug/nslab" bench/smoke.sh

after=$(snapshot)
if [ "$before" != "$after" ]; then
  echo "== the tests left something behind in the kernel or in /run, /etc:"
  diff <(echo "$before") <(echo "$after") || true
  keep_state=1
  echo "== (lines with < were there before and are gone: another run on this machine)"
  echo "== state directory kept: NSLAB_STATE_DIR=$NSLAB_STATE_DIR nslab clean removes what the suite left"
  exit 1
fi
echo "== all tests passed; nothing left behind"
