#!/usr/bin/env python3
"""Zero-copy echo, measured: server CPU time per echoed message across message sizes for
echo-server --zero-copy off / auto / always and the C epoll reference (copying, and with
--splice), every server pinned to core 0 and echo-bench to core 1, alternated round by round.

    bench/zero_copy.py [--sizes 1024,16384,65536,1048576] [--conns 8] [--pipeline 1]
                       [--rounds 3] [--duration 3] [--servers c,c-splice,off,auto,always]
                       [--plot FILE]

Prints a Markdown table (medians over the rounds, and each server's ratio to the C copying
reference and to --zero-copy off), the kernel version and pipe-max-size; --plot writes an SVG
of CPU per message against size. Builds nothing: run `cargo build --release` first; the C
reference is compiled here with cc when missing (bench/peers/c/epoll_echo.c).
"""
import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import svgplot

C_SOURCE = harness.ROOT / "bench" / "peers" / "c" / "epoll_echo.c"
C_BINARY = harness.RELEASE / "c-epoll-echo"
# Short names for the plot's legend.
LEGEND = {"c": "C epoll, copy", "c-splice": "C epoll, splice", "off": "echo-server, off",
          "auto": "echo-server, auto", "always": "echo-server, always"}


def servers(names):
    es = str(harness.RELEASE / "echo-server")
    known = {
        "off": harness.Server("echo-server", "zero-copy off",
                              [es, "-q", "-l", "127.0.0.1:0", "--zero-copy", "off"]),
        "auto": harness.Server("echo-server", "zero-copy auto",
                               [es, "-q", "-l", "127.0.0.1:0", "--zero-copy", "auto"]),
        "always": harness.Server("echo-server", "zero-copy always",
                                 [es, "-q", "-l", "127.0.0.1:0", "--zero-copy", "always"]),
        "c": harness.Server("c-epoll", "copy", [str(C_BINARY), "127.0.0.1:0"]),
        "c-splice": harness.Server("c-epoll", "splice", [str(C_BINARY), "127.0.0.1:0", "--splice"]),
    }
    unknown = [n for n in names if n not in known]
    if unknown:
        sys.exit(f"zero_copy.py: unknown server {', '.join(unknown)} (known: {', '.join(known)})")
    return {n: known[n] for n in names}


def build_c():
    if not C_BINARY.exists() or C_BINARY.stat().st_mtime < C_SOURCE.stat().st_mtime:
        subprocess.run(["cc", "-O2", "-o", str(C_BINARY), str(C_SOURCE)], check=True)


def run_one(server, size, args, logdir):
    """One measured run: the echo-bench JSON report, or None with the reason printed."""
    run = harness.Running(server, Path(logdir) / f"{server.name}-{size}.stderr")
    why = run.start()
    if why:
        print(f"  {server.label}: did not start: {why}", file=sys.stderr)
        return None
    cmd = ["taskset", "-c", harness.CLIENT_CORE, str(harness.RELEASE / "echo-bench"), "--json",
           "--server-pid", str(run.pid), "-c", str(args.conns), "-s", str(size), "-p", str(args.pipeline),
           "-d", str(args.duration), "--warmup", "1", run.addr]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60)
    run.stop()
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 or not lines:
        print(f"  {server.label} at {size} B: echo-bench status {out.returncode}: "
              f"{out.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def fmt_size(n):
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1024,4096,16384,65536,262144,1048576,4194304")
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--pipeline", type=int, default=1, help="messages in flight per connection")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3)
    ap.add_argument("--servers", default="c,c-splice,off,auto,always")
    ap.add_argument("--plot", help="write an SVG plot of CPU per message against size here")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    chosen = servers(args.servers.split(","))
    if "c" in chosen or "c-splice" in chosen:
        build_c()
    pipe_max = Path("/proc/sys/fs/pipe-max-size").read_text().strip()
    print(f"kernel {platform.release()}, pipe-max-size {pipe_max} B, {args.conns} connections, "
          f"{args.pipeline} in flight, {args.rounds} alternated rounds of {args.duration} s, "
          f"server on core {harness.SERVER_CORE}, echo-bench on core {harness.CLIENT_CORE}")
    results = {(name, size): [] for name in chosen for size in sizes}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as logdir:
        try:
            for r in range(args.rounds):
                for size in sizes:
                    order = list(chosen) if r % 2 == 0 else list(reversed(chosen))
                    for name in order:
                        results[(name, size)].append(run_one(chosen[name], size, args, logdir))
                print(f"  round {r + 1}/{args.rounds} done ({time.monotonic() - started:.0f} s)",
                      file=sys.stderr)
        finally:
            harness.cleanup()

    def med(name, size, key, sub=None):
        vals = []
        for res in results[(name, size)]:
            if res:
                vals.append(res[key][sub] if sub else res[key])
        return median(vals)

    names = list(chosen)
    print()
    print("| size | " + " | ".join(f"{chosen[n].label} CPU µs/msg" for n in names)
          + " | " + " | ".join(f"{n} / c" for n in names if n != "c" and "c" in chosen)
          + " | " + " | ".join(f"{n} / off" for n in ("auto", "always") if n in chosen
                               and "off" in chosen) + " |")
    ncols = len(names) + sum(1 for n in names if n != "c" and "c" in chosen) + sum(
        1 for n in ("auto", "always") if n in chosen and "off" in chosen)
    print("|---|" + "---:|" * ncols)
    series = {LEGEND[n]: [] for n in names}
    for size in sizes:
        cpu = {n: med(n, size, "server_cpu_us_per_msg") for n in names}
        cells = [f"{cpu[n]:.2f}" if cpu[n] is not None else "failed" for n in names]
        def ratio(a, b):
            return f"{cpu[a] / cpu[b]:.2f}×" if cpu[a] and cpu[b] else "–"
        if "c" in chosen:
            cells += [ratio(n, "c") for n in names if n != "c"]
        if "off" in chosen:
            cells += [ratio(n, "off") for n in ("auto", "always") if n in chosen]
        print(f"| {fmt_size(size)} | " + " | ".join(cells) + " |")
        for n in names:
            if cpu[n] is not None:
                series[LEGEND[n]].append((size / 1024, cpu[n]))
    print()
    print("| size | " + " | ".join(f"{chosen[n].label} msgs/s, p99 µs" for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    for size in sizes:
        cells = []
        for n in names:
            rate, p99 = med(n, size, "msgs_per_sec"), med(n, size, "latency_us", "p99")
            cells.append(f"{rate:,.0f}, {p99:,.0f}" if rate is not None else "failed")
        print(f"| {fmt_size(size)} | " + " | ".join(cells) + " |")
    if args.plot:
        svgplot.line_plot(args.plot, "Server CPU per echoed message by message size",
                          "message size (KiB, log scale)", "server CPU µs per message",
                          series, subtitle="lower is better")
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
