#!/usr/bin/env python3
"""Does scraping --metrics slow the echo loops? Server CPU time per echoed message with a
scraper polling GET /metrics 10 times a second against none, echo-server started with
--metrics in both, alternated round by round (server pinned to core 0, echo-bench and the
scraper to core 1).

    bench/metrics_overhead.py [--rounds 6] [--duration 5] [--conns 50] [--size 64]
                              [--workers 1] [--scrape-hz 10]

Prints each round's figures, the medians and the ratio scraped / not scraped. Builds nothing:
run `cargo build --release` first.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import harness


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Scraper(threading.Thread):
    """GET /metrics every 1/hz seconds until stopped; counts answers and failures."""

    def __init__(self, url, hz):
        super().__init__(daemon=True)
        self.url, self.period = url, 1.0 / hz
        self.stop_flag = threading.Event()
        self.ok = self.failed = 0

    def run(self):
        next_at = time.monotonic()
        while not self.stop_flag.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    r.read()
                    self.ok += 1
            except OSError:
                self.failed += 1
            next_at += self.period
            self.stop_flag.wait(max(0.0, next_at - time.monotonic()))


def run_one(scrape, args, logdir, n):
    port = free_port()
    argv = [str(harness.RELEASE / "echo-server"), "-q", "-l", "127.0.0.1:0",
            "--workers", str(args.workers), "--metrics", f"127.0.0.1:{port}"]
    run = harness.Running(harness.Server("echo-server", "metrics", argv),
                          Path(logdir) / f"run-{n}.stderr")
    why = run.start()
    if why:
        sys.exit(f"metrics_overhead.py: server did not start: {why}")
    scraper = Scraper(f"http://127.0.0.1:{port}/metrics", args.scrape_hz) if scrape else None
    if scraper:
        scraper.start()
    cmd = ["taskset", "-c", harness.CLIENT_CORE, str(harness.RELEASE / "echo-bench"), "--json",
           "--server-pid", str(run.pid), "-c", str(args.conns), "-s", str(args.size), "-p", "1",
           "-d", str(args.duration), "--warmup", "1", run.addr]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60)
    if scraper:
        scraper.stop_flag.set()
        scraper.join()
    run.stop()
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 or not lines:
        sys.exit(f"metrics_overhead.py: echo-bench status {out.returncode}: {out.stderr[-300:]}")
    report = json.loads(lines[-1])
    scrapes = f"{scraper.ok} scrapes, {scraper.failed} failed" if scraper else "no scraper"
    return report["server_cpu_us_per_msg"], report.get("msgs_per_sec"), scrapes


def median(xs):
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--scrape-hz", type=float, default=10)
    args = ap.parse_args()
    os.sched_setaffinity(0, {int(harness.CLIENT_CORE)})
    print(f"{args.conns} connections x {args.size} B, 1 in flight, {args.workers} worker(s), "
          f"{args.rounds} alternated rounds of {args.duration} s, scraper at {args.scrape_hz}/s; "
          f"server on core {harness.SERVER_CORE}, echo-bench and scraper on core "
          f"{harness.CLIENT_CORE}")
    cpu = {True: [], False: []}
    with tempfile.TemporaryDirectory() as logdir:
        try:
            for r in range(args.rounds):
                for scrape in ((True, False) if r % 2 == 0 else (False, True)):
                    us, rate, note = run_one(scrape, args, logdir, f"{r}-{scrape}")
                    cpu[scrape].append(us)
                    print(f"  round {r + 1} {'scraped' if scrape else 'quiet  '}: "
                          f"{us:.3f} µs CPU/msg, {rate} msg/s ({note})", flush=True)
        finally:
            harness.cleanup()
    on, off = median(cpu[True]), median(cpu[False])
    print(f"median server CPU/msg: scraped {on:.3f} µs, quiet {off:.3f} µs, "
          f"ratio scraped/quiet {on / off:.3f}")


if __name__ == "__main__":
    main()
