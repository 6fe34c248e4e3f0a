#!/usr/bin/env python3
"""Print a lab of B bridges with N nodes each (issue 23: 10 x 1,000 nodes).

Usage: bench/multistar.py B N [NAME]
Node bJnK (J < B, K < N) has 10.J.(K//250).(K%250+1)/16 on veth e0, a default
route on it, and is a port of bridge brJ (10.J.255.254/16). One bridge holds
at most 1,024 ports, hence N <= 1000 per bridge.
"""
import sys

b, n = int(sys.argv[1]), int(sys.argv[2])
name = sys.argv[3] if len(sys.argv) > 3 else f"ms{b}x{n}"
if not (1 <= b <= 250 and 1 <= n <= 1000):
    sys.exit("multistar.py: B in 1..250, N in 1..1000")
out = [f"name: {name}", "bridges:"]
out += [f"  br{j}: {{ address: 10.{j}.255.254/16 }}" for j in range(b)]
out.append("nodes:")
for j in range(b):
    for k in range(n):
        out.append(f"  b{j}n{k}:")
        out.append(f"    interfaces: {{ e0: {{ address: 10.{j}.{k // 250}.{k % 250 + 1}/16 }} }}")
        out.append('    routes: [ "default dev e0" ]')
out.append("links:")
for j in range(b):
    for k in range(n):
        out.append(f"  - [ b{j}n{k}:e0, br{j}:p{j}x{k} ]")
print("\n".join(out))
