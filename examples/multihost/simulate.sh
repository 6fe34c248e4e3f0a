#!/bin/sh
# Play the three machines of lab.yaml on this computer: a namespace per
# machine on an underlay bridge in a fourth namespace; each machine runs its
# own `nslab up --machine` (inside its namespace, with its own state
# directory), then `nslab check --machine`. Exits 0 only if every expectation
# of the file holds on every machine; leaves nothing behind. Run as root.
# NSLAB=path/to/nslab to use another binary; PREFIX to rename what it makes.
set -eu
NSLAB=${NSLAB:-nslab}
P=${PREFIX:-mhsim-}
FILE=$(cd "$(dirname "$0")" && pwd)/lab.yaml
STATE=$(mktemp -d)
U=${P}u

on() { # on MACHINE nslab-args...: nslab on that "machine"
    m=$1; shift
    NSLAB_STATE_DIR="$STATE/$m" nsenter --net="/run/netns/$P$m" "$NSLAB" "$@"
}

cleanup() {
    for m in m1 m2 m3; do
        [ -e "/run/netns/$P$m" ] && on "$m" down "$FILE" --machine "$m" --prefix "$P" --kill >/dev/null 2>&1 || true
        ip netns del "$P$m" 2>/dev/null || true
    done
    ip netns del "$U" 2>/dev/null || true
    rm -rf "$STATE"
}
trap cleanup EXIT INT TERM

ip netns add "$U"
ip -n "$U" link set lo up
ip -n "$U" link add u0 type bridge
ip -n "$U" link set u0 up
for i in 1 2 3; do
    M=${P}m$i
    ip netns add "$M"
    ip -n "$M" link set lo up
    ip link add ul netns "$M" type veth peer name p$i netns "$U"
    ip -n "$U" link set p$i master u0 up
    ip -n "$M" addr add 10.9.0.$i/24 dev ul
    ip -n "$M" link set ul up
done

# Any order works: each machine's part waits for nothing on the others.
for m in m3 m1 m2; do
    on "$m" up "$FILE" --machine "$m" --prefix "$P"
done

status=0
for m in m1 m2 m3; do
    echo "== machine $m"
    on "$m" status "$FILE" --machine "$m" --prefix "$P" >/dev/null || { echo "status of $m: not as the file says"; status=1; }
    on "$m" check "$FILE" --machine "$m" --prefix "$P" || status=1
done
for m in m1 m2 m3; do
    on "$m" down "$FILE" --machine "$m" --prefix "$P" --kill
done
exit $status
