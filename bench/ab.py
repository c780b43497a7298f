#!/usr/bin/env python3
"""A against B: two echo-server builds or settings, server CPU time per echoed message, side by side.

Each round starts A and B in turn (the order alternates: A B, B A, ...) on core 0, drives each
with echo-bench on core 1 for --duration seconds (every byte checked), and records the server's
CPU time per echoed message (utime+stime over the window), msgs/s and p99. Prints each round,
the medians and the ratio B / A. Use it to check a change against the build before it:

    git worktree add ../base HEAD~1 && (cd ../base && CARGO_TARGET_DIR=/tmp/base cargo build --release)
    bench/ab.py --b /tmp/base/release/echo-server [--rounds 6] [--duration 4] [--conns 50]
                [--size 64] [--pipeline 1] [--server-args "--workers 1"]

or one build with two settings:

    bench/ab.py --a-args "--zero-copy auto" --b-args "--zero-copy off" --conns 1000 --pipeline 8

A defaults to target/release/echo-server and B to A. Builds nothing: run `cargo build --release`
first.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import harness


def run_one(binary, extra, args, logdir, tag):
    """(CPU µs per message, msgs/s, p99 µs) of one run of `binary` with `extra` arguments."""
    argv = [binary, "-q", "-l", "127.0.0.1:0"] + shlex.split(args.server_args) + shlex.split(extra)
    run = harness.Running(harness.Server("echo-server", tag, argv), Path(logdir) / f"{tag}.stderr")
    why = run.start()
    if why:
        sys.exit(f"ab.py: {binary} did not start: {why}")
    cmd = ["taskset", "-c", harness.CLIENT_CORE, str(harness.RELEASE / "echo-bench"), "--json",
           "--server-pid", str(run.pid), "-c", str(args.conns), "-s", str(args.size), "-p", str(args.pipeline),
           "-d", str(args.duration), "--warmup", "1", run.addr]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60)
    run.stop()
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 or not lines:
        sys.exit(f"ab.py: echo-bench status {out.returncode}: {out.stderr[-300:]}")
    report = json.loads(lines[-1])
    p99 = report.get("latency_us", {}).get("p99")
    return report["server_cpu_us_per_msg"], report.get("msgs_per_sec"), p99


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", default=str(harness.RELEASE / "echo-server"), help="build A")
    ap.add_argument("--b", help="build B [default: A]")
    ap.add_argument("--a-args", default="", help="arguments for A's server only")
    ap.add_argument("--b-args", default="", help="arguments for B's server only")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--duration", type=float, default=4)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--pipeline", type=int, default=1)
    ap.add_argument("--server-args", default="", help="more arguments for both servers")
    args = ap.parse_args()
    args.b = args.b or args.a
    for path in (args.a, args.b):
        if not os.access(path, os.X_OK):
            sys.exit(f"ab.py: {path} is not an executable file")
    os.sched_setaffinity(0, {int(harness.CLIENT_CORE)})
    print(f"A {args.a} {args.a_args}\nB {args.b} {args.b_args}\n{args.conns} connections x "
          f"{args.size} B, {args.pipeline} in flight, "
          f"{args.rounds} alternated rounds of {args.duration} s; server on core "
          f"{harness.SERVER_CORE}, echo-bench on core {harness.CLIENT_CORE}")
    cpu = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as logdir:
        try:
            for r in range(args.rounds):
                for side in (("A", "B") if r % 2 == 0 else ("B", "A")):
                    binary, extra = (args.a, args.a_args) if side == "A" else (args.b, args.b_args)
                    us, rate, p99 = run_one(binary, extra, args, logdir, f"{side}{r}")
                    cpu[side].append(us)
                    print(f"  round {r + 1} {side}: {us:.3f} µs CPU/msg, {rate} msg/s, "
                          f"p99 {p99} µs", flush=True)
        finally:
            harness.cleanup()
    a, b = harness.median(cpu["A"]), harness.median(cpu["B"])
    print(f"median server CPU/msg: A {a:.3f} µs, B {b:.3f} µs, ratio B/A {b / a:.3f}")


if __name__ == "__main__":
    main()
