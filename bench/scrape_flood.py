#!/usr/bin/env python3
"""What does a flood of scrapes cost the echo? Echo msg/s and server CPU per echoed message
with N clients scraping GET /metrics as fast as they can, against none, for two builds,
alternated A B / B A round by round (server pinned to core 0 with --workers 1, so its metrics
thread competes with the echo loop; echo-bench and the scrapers on core 1).

    bench/scrape_flood.py [--a BIN] [--b BIN] [--rounds 4] [--duration 4] [--scrapers 2]
                          [--conns 50] [--size 64]

Prints each run (msg/s, scrapes/s, the metrics thread's CPU seconds per second, server CPU µs
per echoed message) and the medians per build with and without scrapers. Builds nothing: run
`cargo build --release` first (and keep the other build's binary somewhere for --b).
"""
import argparse
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port, stop, count):
    """GET /metrics in a loop until `stop`; adds the answers to `count`."""
    os.sched_setaffinity(0, {int(harness.CLIENT_CORE)})
    n = 0
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                while s.recv(65536):
                    pass
            n += 1
        except OSError:
            pass
    with count.get_lock():
        count.value += n


def thread_seconds(pid, name):
    """CPU seconds of the threads of `pid` called `name`."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.index("(") + 1:stat.rindex(")")] == name:
            fields = stat.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / tick


def run_one(binary, scrapers, args, logdir, tag):
    port = free_port()
    argv = [binary, "-q", "-l", "127.0.0.1:0", "--workers", "1", "--metrics", f"127.0.0.1:{port}"]
    run = harness.Running(harness.Server("echo-server", tag, argv), Path(logdir) / f"{tag}.stderr")
    why = run.start()
    if why:
        sys.exit(f"scrape_flood.py: {binary} did not start: {why}")
    stop, count = mp.Event(), mp.Value("q", 0)
    procs = [mp.Process(target=scrape, args=(port, stop, count)) for _ in range(scrapers)]
    for p in procs:
        p.start()
    started, metrics_before = time.monotonic(), thread_seconds(run.pid, "metrics")
    cmd = ["taskset", "-c", harness.CLIENT_CORE, str(harness.RELEASE / "echo-bench"), "--json",
           "--server-pid", str(run.pid), "-c", str(args.conns), "-s", str(args.size),
           "-d", str(args.duration), "--warmup", "1", run.addr]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60)
    took = time.monotonic() - started
    metrics_cpu = (thread_seconds(run.pid, "metrics") - metrics_before) / took
    stop.set()
    for p in procs:
        p.join()
    run.stop()
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 or not lines:
        sys.exit(f"scrape_flood.py: echo-bench status {out.returncode}: {out.stderr[-300:]}")
    report = json.loads(lines[-1])
    return (report["msgs_per_sec"], count.value / took, metrics_cpu,
            report["server_cpu_us_per_msg"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", default=str(harness.RELEASE / "echo-server"), help="build A")
    ap.add_argument("--b", help="build B [default: A]")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--duration", type=float, default=4)
    ap.add_argument("--scrapers", type=int, default=2)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    builds = {"A": args.a, "B": args.b or args.a}
    print(f"{args.conns} connections x {args.size} B, {args.scrapers} scrapers as fast as they "
          f"can, {args.rounds} alternated rounds of {args.duration} s; server on core "
          f"{harness.SERVER_CORE}, echo-bench and scrapers on core {harness.CLIENT_CORE}")
    results = {}
    with tempfile.TemporaryDirectory() as logdir:
        try:
            for r in range(args.rounds):
                order = "AB" if r % 2 == 0 else "BA"
                for scrapers in (args.scrapers, 0):
                    for tag in order:
                        got = run_one(builds[tag], scrapers, args, logdir, f"{r}{tag}{scrapers}")
                        results.setdefault((tag, scrapers), []).append(got)
                        print(f"  round {r + 1} {tag} {scrapers} scrapers: {got[0]:,.0f} msg/s, "
                              f"{got[1]:,.0f} scrapes/s, metrics thread {got[2]:.2f} CPU s/s, "
                              f"{got[3]:.2f} µs server CPU/msg", flush=True)
        finally:
            harness.cleanup()
    for (tag, scrapers), runs in sorted(results.items()):
        cols = [harness.median([run[i] for run in runs]) for i in range(4)]
        print(f"median {tag} ({builds[tag]}), {scrapers} scrapers: {cols[0]:,.0f} msg/s, "
              f"{cols[1]:,.0f} scrapes/s, metrics thread {cols[2]:.2f} CPU s/s, "
              f"{cols[3]:.2f} µs server CPU/msg")


if __name__ == "__main__":
    main()
