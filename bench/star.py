#!/usr/bin/env python3
"""Print a star lab of N nodes on one bridge (for check benchmarks and tests).

Usage: bench/star.py N [NAME]
Node iK has 10.0.(K//250).(K%250+1)/16 on veth e0, a default route on it; the
bridge br0 has 10.0.255.254/16.
"""
import sys

n = int(sys.argv[1])
name = sys.argv[2] if len(sys.argv) > 2 else f"star{n}"
print(f"name: {name}")
print("bridges:\n  br0: { address: 10.0.255.254/16 }")
print("nodes:")
for k in range(n):
    print(f"  i{k}:")
    print(f"    interfaces: {{ e0: {{ address: 10.0.{k // 250}.{k % 250 + 1}/16 }} }}")
    print('    routes: [ "default dev e0" ]')
print("links:")
for k in range(n):
    print(f"  - [ i{k}:e0, br0:p{k} ]")
