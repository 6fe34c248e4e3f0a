#!/usr/bin/env python3
"""Capture benchmark (issue #23 item 2), driven by bench/capture.sh.

A sender floods a veth (iperf3 UDP `-u -b 0 -l 64`, or TCP bulk) while the
interface is captured to a file: no capture, `tcpdump -w`, `nslab capture -w -q`;
on one interface (tutorial objective 1, sandboxed) and on four at once (a
lab of four cables between two nodes, four floods; tcpdump needs one process
per interface, their CPU is added up). Per run it measures:

- the sender's packet rate: packets the interface sent (its tx counter) per second,
- packets captured: records in the file (read back here), next to what the
  interfaces sent plus received in the same time (the kernel's own count),
- kernel drops: as each tool reports them at exit,
- the capture process's CPU time (user + system, wait4 rusage, every
  thread, to the end of its final flush) per packet captured.

Runs alternate between the modes; the report gives medians. Everything is
named capb<pid>-*, in a state dir of its own, removed at exit.
"""

import argparse
import json
import os
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

FOUR = """name: capfour
nodes:
  red:
    interfaces:
{red}
  green:
    interfaces:
{green}
links:
{links}
"""


def sh(*args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def link_counts(ns, dev):
    v = json.loads(sh("ip", "-n", ns, "-s", "-j", "link", "show", dev))[0]["stats64"]
    return v["tx"]["packets"], v["rx"]["packets"]


def count_records(path):
    """Packets in a pcap or pcapng file (headers only, data skipped)."""
    n = 0
    with open(path, "rb") as f:
        magic = f.read(4)
        if magic == b"\x0a\x0d\x0d\x0a":
            f.seek(0)
            while True:
                h = f.read(8)
                if len(h) < 8:
                    return n
                btype, blen = struct.unpack("<II", h)
                if btype == 6:
                    n += 1
                f.seek(blen - 8, 1)
        f.seek(24)
        while True:
            h = f.read(16)
            if len(h) < 16:
                return n
            n += 1
            f.seek(struct.unpack("<IIII", h)[2], 1)


def wait_for(path, text, proc, what, limit=15):
    t0 = time.time()
    while True:
        try:
            with open(path) as f:
                if text in f.read():
                    return
        except FileNotFoundError:
            pass
        if proc.poll() is not None or time.time() - t0 > limit:
            with open(path) as f:
                raise SystemExit(f"{what} did not start: {f.read()}")
        time.sleep(0.02)


class Bench:
    def __init__(self, a):
        self.a = a
        self.tmp = tempfile.mkdtemp(prefix="capb-")
        self.prefix = f"capb{os.getpid() % 100000}-"
        self.env = dict(os.environ, NSLAB_STATE_DIR=os.path.join(self.tmp, "state"))
        self.labs = []
        self.procs = []

    def nslab(self, *args):
        return sh(self.a.nslab, *args, env=self.env)

    def up(self, file, name, prefix):
        """Brings a lab up under `prefix`; returns (lab name, prefix)."""
        self.labs.append(prefix + name)
        self.nslab("up", file, "--sandbox", "--prefix", prefix)
        return prefix + name, prefix

    def spawn(self, args, **kw):
        p = subprocess.Popen(args, **kw)
        self.procs.append(p)
        return p

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for lab in self.labs:
            subprocess.run([self.a.nslab, "down", "--lab", lab], env=self.env,
                           capture_output=True)
        subprocess.run(["rm", "-rf", self.tmp])

    def one(self, lab, pairs, proto, mode, secs, tag):
        """One run; lab: (name, prefix); pairs: [(red if, green if, green address)]."""
        lab, prefix = lab
        red, green = prefix + "red", prefix + "green"
        servers = []
        for k, (_, _, _) in enumerate(pairs):
            servers.append(self.spawn(["ip", "netns", "exec", green, "iperf3", "-s", "-1",
                                       "-p", str(5201 + k)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        for k in range(len(pairs)):
            t0 = time.time()
            while f":{5201 + k} " not in sh("ip", "netns", "exec", green, "ss", "-Hltn"):
                if time.time() - t0 > 10:
                    raise SystemExit("iperf3 server did not start")
                time.sleep(0.02)
        caps, files, errs = [], [], []
        if mode == "tcpdump":
            for k, (rif, _, _) in enumerate(pairs):
                f = os.path.join(self.tmp, f"{tag}-{k}.pcap")
                e = os.path.join(self.tmp, f"{tag}-{k}.err")
                p = self.spawn(["ip", "netns", "exec", red, "tcpdump", "-i", rif, "-n", "-w", f],
                               stdout=subprocess.DEVNULL, stderr=open(e, "w"))
                wait_for(e, "listening on", p, "tcpdump")
                caps.append(p), files.append(f), errs.append(e)
        elif mode in ("nslab", "base"):
            f = os.path.join(self.tmp, f"{tag}.pcap" if len(pairs) == 1 else f"{tag}.pcapng")
            e = os.path.join(self.tmp, f"{tag}.err")
            targets = [f"red:{rif}" for rif, _, _ in pairs]
            binary = self.a.nslab if mode == "nslab" else self.a.base
            p = self.spawn([binary, "capture", "--lab", lab, *targets, "-w", f, "-q"],
                           env=self.env, stdout=subprocess.DEVNULL, stderr=open(e, "w"))
            wait_for(e, "listening on", p, "nslab capture")
            caps.append(p), files.append(f), errs.append(e)
        before = [link_counts(red, rif) for rif, _, _ in pairs]
        extra = ["-u", "-b", "0", "-l", "64"] if proto == "udp" else []
        clients = [self.spawn(["ip", "netns", "exec", red, "iperf3", "-c", addr, "-p",
                               str(5201 + k), "-t", str(secs), "--json", *extra],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                   for k, (_, _, addr) in enumerate(pairs)]
        for c in clients:
            c.communicate()
        # tcpdump hands over a ring block up to 1 s (libpcap's timeout) after its
        # first packet; both tools get that long before they are stopped.
        time.sleep(1.2)
        after = [link_counts(red, rif) for rif, _, _ in pairs]
        sent = sum(a[0] - b[0] for a, b in zip(after, before))
        total = sum(a[0] + a[1] - b[0] - b[1] for a, b in zip(after, before))
        cpu, drops, reported = 0.0, 0, 0
        for p in caps:
            p.send_signal(signal.SIGINT)
        for p, e in zip(caps, errs):
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = status
            cpu += ru.ru_utime + ru.ru_stime
        for e in errs:
            text = open(e).read()
            for line in text.splitlines():
                w = line.split()
                if mode == "tcpdump" and line.endswith("packets dropped by kernel"):
                    drops += int(w[0])
                if mode == "tcpdump" and line.endswith("packets captured"):
                    reported += int(w[0])
                if mode in ("nslab", "base") and "dropped by the kernel" in line:
                    drops += int(w[-5])
                    reported += int(w[1])
        captured = sum(count_records(f) for f in files)
        for s in servers:
            s.wait(timeout=10)
        for f in files:
            os.unlink(f)
        if mode != "none" and captured != reported:
            raise SystemExit(f"{tag}: {captured} packets in the files, {mode} reported {reported}")
        return {
            "mode": mode, "proto": proto, "ifaces": len(pairs), "secs": secs,
            "sender_pps": sent / secs, "captured": captured, "link_packets": total,
            "drops": drops, "cpu_s": cpu,
            "cpu_ns_per_pkt": cpu / captured * 1e9 if captured else None,
        }


def median(rows, key):
    v = [r[key] for r in rows if r[key] is not None]
    return statistics.median(v) if v else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nslab", required=True)
    ap.add_argument("--quick", action="store_true", help="1 s runs, one interface, UDP")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--json", help="write every run here")
    ap.add_argument("--protos", default="udp,tcp", help="udp, tcp or both")
    ap.add_argument("--ifaces", default="1,4", help="1, 4 or both")
    ap.add_argument("--base", help="another nslab binary, run as one more mode (A/B)")
    a = ap.parse_args()
    if a.quick:
        a.reps, a.secs = 1, 1
    b = Bench(a)
    rows = []
    load0 = os.getloadavg()
    try:
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        one = b.up(os.path.join(repo, "examples", "objective1-veth.yaml"), "objective1",
                   b.prefix)
        ifaces = [int(n) for n in a.ifaces.split(",")]
        configs = [(one, [("veth-red", "veth-green", "192.168.1.2")])] if 1 in ifaces else []
        if not a.quick and 4 in ifaces:
            four = os.path.join(b.tmp, "four.yaml")
            with open(four, "w") as f:
                f.write(FOUR.format(
                    red="\n".join(f"      cr{k}: {{ address: 10.71.{k}.1/24 }}" for k in range(1, 5)),
                    green="\n".join(f"      cg{k}: {{ address: 10.71.{k}.2/24 }}" for k in range(1, 5)),
                    links="\n".join(f"  - [ red:cr{k}, green:cg{k} ]" for k in range(1, 5))))
            lab4 = b.up(four, "capfour", b.prefix + "4-")
            configs.append((lab4, [(f"cr{k}", f"cg{k}", f"10.71.{k}.2") for k in range(1, 5)]))
        protos = ["udp"] if a.quick else a.protos.split(",")
        modes = ["none", "tcpdump", "nslab"] + (["base"] if a.base else [])
        n = 0
        for lab, pairs in configs:
            for proto in protos:
                for rep in range(a.reps):
                    order = modes[rep % len(modes):] + modes[:rep % len(modes)]
                    for mode in order:
                        n += 1
                        r = b.one(lab, pairs, proto, mode, a.secs, f"r{n}")
                        r["rep"] = rep
                        rows.append(r)
                        print(json.dumps(r), file=sys.stderr, flush=True)
    finally:
        b.cleanup()
    load1 = os.getloadavg()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"runs": rows, "load_before": load0, "load_after": load1}, f, indent=1)
    print(f"load average (1, 5, 15 min) before: {load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f}, "
          f"after: {load1[0]:.1f} {load1[1]:.1f} {load1[2]:.1f}; medians of {a.reps} "
          f"run(s) of {a.secs} s each\n")
    print("| traffic | interfaces | capture | sender pkt/s | captured | of link pkts "
          "| kernel drops | CPU ns/pkt |")
    print("|---|---|---|---|---|---|---|---|")
    ok = True
    for proto in ["udp", "tcp"]:
        for ifaces in [1, 4]:
            per = {}
            for mode in ["none", "tcpdump", "nslab", "base"]:
                rs = [r for r in rows if (r["proto"], r["ifaces"], r["mode"]) == (proto, ifaces, mode)]
                if not rs:
                    continue
                per[mode] = rs
                cap = median(rs, "captured")
                frac = median([dict(x=r["captured"] / r["link_packets"] if r["link_packets"] else None)
                               for r in rs], "x")
                cpu = median(rs, "cpu_ns_per_pkt")
                drops = median(rs, "drops")
                print(f"| {'UDP 64 B' if proto == 'udp' else 'TCP bulk'} | {ifaces} | {mode} "
                      f"| {median(rs, 'sender_pps'):,.0f} "
                      f"| {'-' if mode == 'none' else f'{cap:,.0f}'} "
                      f"| {'-' if mode == 'none' else f'{frac:.1%}'} "
                      f"| {'-' if mode == 'none' else f'{drops:,.0f}'} "
                      f"| {'-' if cpu is None else f'{cpu:,.0f}'} |")
            if "tcpdump" in per and "nslab" in per:
                t, s = per["tcpdump"], per["nslab"]
                cpu_ratio = median(s, "cpu_ns_per_pkt") / median(t, "cpu_ns_per_pkt")
                rate_ratio = median(s, "sender_pps") / median(t, "sender_pps")
                print(f"|  | {ifaces} | **nslab / tcpdump** | **{rate_ratio:.0%}** (target >= 90%) "
                      f"| **{median(s, 'captured') / median(t, 'captured'):.1%}** |  |  "
                      f"| **{cpu_ratio:.2f}x** (target <= 1.5x) |")
                spread = "; ".join(
                    f"{m}: " + " ".join(f"{r['cpu_ns_per_pkt']:,.0f}" for r in per[m])
                    for m in ["tcpdump", "nslab", "base"] if m in per)
                print(f"|  | {ifaces} | CPU ns/pkt per run | {spread} |  |  |  |  |")
                # The count's spread: on a saturated machine it is the scheduler's
                # split of the CPU, and runs of one tool differ more than the tools.
                counts = "; ".join(
                    f"{m}: " + " ".join(f"{r['captured']:,} ({r['captured'] / r['link_packets']:.0%})"
                                        if r["link_packets"] else f"{r['captured']:,}"
                                        for r in per[m])
                    for m in ["tcpdump", "nslab", "base"] if m in per)
                print(f"|  | {ifaces} | captured per run (of link) | {counts} |  |  |  |  |")
            for r in per.get("nslab", []):
                # Every packet on the link is in the file or counted as dropped.
                if r["captured"] + r["drops"] < 0.99 * r["link_packets"]:
                    print(f"nslab missed packets: {r}", file=sys.stderr)
                    ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
