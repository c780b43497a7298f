#!/usr/bin/env python3
"""A against B: server CPU time per echoed message, alternated round by round (A B, B A, ...),
every server pinned to core 0 and echo-bench (every byte checked) to core 1; medians and ratios.

Three modes:

    bench/ab.py [builds] [--a BIN] [--b BIN] [--a-args ARGS] [--b-args ARGS] [--rounds 6]
                [--duration 4] [--conns 50] [--size 64] [--pipeline 1] [--server-args ARGS]
    bench/ab.py metrics [--rounds 6] [--duration 5] [--conns 50] [--size 64] [--workers 1]
                [--scrape-hz 10]
    bench/ab.py zero-copy [--sizes 1024,16384,65536,1048576] [--conns 8] [--pipeline 1]
                [--rounds 3] [--duration 3] [--servers c,c-splice,off,auto,always] [--plot FILE]

`builds` (the default): two echo-server builds or settings. A defaults to
target/release/echo-server and B to A. A change against the build before it:

    git worktree add ../base HEAD~1 && (cd ../base && CARGO_TARGET_DIR=/tmp/base cargo build --release)
    bench/ab.py --b /tmp/base/release/echo-server

or one build with two settings: `bench/ab.py --a-args "--zero-copy auto" --b-args
"--zero-copy off" --conns 1000 --pipeline 8`. Prints each round, the medians and B / A.

`metrics`: does scraping --metrics slow the echo loops? echo-server with --metrics, a scraper
polling GET /metrics (on core 1) against none; prints the ratio scraped / quiet.

`zero-copy`: CPU per message across message sizes for echo-server --zero-copy off / auto /
always and the C epoll reference (copying, and with --splice); a Markdown table with each
server's ratio to the C copying reference and to --zero-copy off; --plot writes an SVG.

Builds nothing: run `cargo build --release` first; the C reference is compiled here with cc
when missing (bench/peers/c/epoll_echo.c).
"""
import argparse
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import harness
import svgplot

MODES = ("builds", "metrics", "zero-copy")
C_SOURCE = harness.ROOT / "bench" / "peers" / "c" / "epoll_echo.c"
C_BINARY = harness.RELEASE / "c-epoll-echo"


def measure(server, logdir, tag, args, size=None, during=None):
    """One run of `server`: echo-bench's JSON report, or None with the reason printed. `during`
    is a context manager factory given the started run (the scraper)."""
    run = harness.Running(server, Path(logdir) / f"{tag}.stderr", collect=True)
    why = run.start()
    if why:
        print(f"  {server.label}: did not start: {why}", file=sys.stderr)
        return None
    extra = during(run) if during else None
    try:
        report, rc, err = harness.echo_bench(run, conns=args.conns, size=size or args.size,
                                             pipeline=args.pipeline, duration=args.duration)
    finally:
        if extra:
            extra.stop()
        run.stop()
    if rc != 0 or not report:
        print(f"  {server.label} at {size or args.size} B: echo-bench status {rc}: "
              f"{err.strip()[-300:]}", file=sys.stderr)
        return None
    if extra:
        report["_note"] = extra.note()
    return report


def alternated(rounds, sides):
    """(round, side) in the alternated order: A B, B A, A B ...

    >>> list(alternated(3, "AB"))
    [(0, 'A'), (0, 'B'), (1, 'B'), (1, 'A'), (2, 'A'), (2, 'B')]
    """
    for r in range(rounds):
        for side in (sides if r % 2 == 0 else list(reversed(sides))):
            yield r, side


def ratio(a, b):
    """a / b, or None when either is missing.

    >>> ratio(3.0, 2.0), ratio(None, 2.0), ratio(1.0, 0)
    (1.5, None, None)
    """
    return a / b if a is not None and b else None


def two_sided(servers, args, names):
    """Alternated rounds of two servers (a dict side -> Server); prints each round and the
    medians; returns the median CPU µs per message of each side."""
    cpu = {side: [] for side in servers}
    with tempfile.TemporaryDirectory() as logdir:
        try:
            for r, side in alternated(args.rounds, list(servers)):
                rep = measure(servers[side], logdir, f"{side}{r}", args,
                              during=getattr(args, "during", None) if side == "on" else None)
                if rep is None:
                    sys.exit(f"ab.py: round {r + 1} {names[side]} failed")
                cpu[side].append(rep["server_cpu_us_per_msg"])
                note = f" ({rep['_note']})" if "_note" in rep else ""
                print(f"  round {r + 1} {names[side]}: {rep['server_cpu_us_per_msg']:.3f} µs "
                      f"CPU/msg, {rep.get('msgs_per_sec')} msg/s, p99 "
                      f"{(rep.get('latency_us') or {}).get('p99')} µs{note}", flush=True)
        finally:
            harness.cleanup()
    return {side: harness.median(v) for side, v in cpu.items()}


def builds(args):
    args.b = args.b or args.a
    for path in (args.a, args.b):
        if not os.access(path, os.X_OK):
            sys.exit(f"ab.py: {path} is not an executable file")
    both = shlex.split(args.server_args)
    servers = {side: harness.Server("echo-server", side, [binary, "-q", "-l", "127.0.0.1:0"]
                                    + both + shlex.split(extra))
               for side, binary, extra in (("A", args.a, args.a_args), ("B", args.b, args.b_args))}
    print(f"A {args.a} {args.a_args}\nB {args.b} {args.b_args}\n{args.conns} connections x "
          f"{args.size} B, {args.pipeline} in flight, {args.rounds} alternated rounds of "
          f"{args.duration} s; server on core {harness.SERVER_CORE}, echo-bench on core "
          f"{harness.CLIENT_CORE}")
    m = two_sided(servers, args, {"A": "A", "B": "B"})
    print(f"median server CPU/msg: A {m['A']:.3f} µs, B {m['B']:.3f} µs, ratio B/A "
          f"{m['B'] / m['A']:.3f}")


class Scraper(threading.Thread):
    """GET /metrics every 1/hz seconds until stopped; counts answers and failures."""

    def __init__(self, run, hz):
        super().__init__(daemon=True)
        self.period = 1.0 / hz
        self.url = None
        deadline = time.monotonic() + 5
        while self.url is None and time.monotonic() < deadline:
            for line in run.stdout_lines():
                if line.startswith("listening metrics "):
                    self.url = f"http://{line.split()[2]}/metrics"
            time.sleep(0.01)
        self.stop_flag = threading.Event()
        self.ok = self.failed = 0
        self.start()

    def run(self):
        next_at = time.monotonic()
        while not self.stop_flag.is_set():
            try:
                if self.url is None:
                    raise OSError("no `listening metrics` line")
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    r.read()
                    self.ok += 1
            except OSError:
                self.failed += 1
            next_at += self.period
            self.stop_flag.wait(max(0.0, next_at - time.monotonic()))

    def stop(self):
        self.stop_flag.set()
        self.join()

    def note(self):
        return f"{self.ok} scrapes, {self.failed} failed"


def metrics(args):
    argv = [str(harness.RELEASE / "echo-server"), "-q", "-l", "127.0.0.1:0", "--workers",
            str(args.workers), "--metrics", "127.0.0.1:0"]
    servers = {side: harness.Server("echo-server", side, argv) for side in ("on", "off")}
    args.during = lambda run: Scraper(run, args.scrape_hz)
    print(f"{args.conns} connections x {args.size} B, {args.pipeline} in flight, {args.workers} "
          f"worker(s), {args.rounds} alternated rounds of {args.duration} s, scraper at "
          f"{args.scrape_hz}/s; server on core {harness.SERVER_CORE}, echo-bench and scraper on "
          f"core {harness.CLIENT_CORE}")
    m = two_sided(servers, args, {"on": "scraped", "off": "quiet  "})
    print(f"median server CPU/msg: scraped {m['on']:.3f} µs, quiet {m['off']:.3f} µs, "
          f"ratio scraped/quiet {m['on'] / m['off']:.3f}")


def zero_copy_servers(names):
    es = str(harness.RELEASE / "echo-server")
    known = {mode: harness.Server("echo-server", f"zero-copy {mode}",
                                  [es, "-q", "-l", "127.0.0.1:0", "--zero-copy", mode])
             for mode in ("off", "auto", "always")}
    known["c"] = harness.Server("c-epoll", "copy", [str(C_BINARY), "127.0.0.1:0"])
    known["c-splice"] = harness.Server("c-epoll", "splice",
                                       [str(C_BINARY), "127.0.0.1:0", "--splice"])
    unknown = [n for n in names if n not in known]
    if unknown:
        sys.exit(f"ab.py: unknown server {', '.join(unknown)} (known: {', '.join(known)})")
    if ("c" in names or "c-splice" in names) and (
            not C_BINARY.exists() or C_BINARY.stat().st_mtime < C_SOURCE.stat().st_mtime):
        subprocess.run(["cc", "-O2", "-o", str(C_BINARY), str(C_SOURCE)], check=True)
    return {n: known[n] for n in names}


def fmt_size(n):
    """A message size as people write it.

    >>> fmt_size(1024), fmt_size(1048576), fmt_size(1000)
    ('1 KiB', '1 MiB', '1000 B')
    """
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


# Short names for the zero-copy plot's legend.
LEGEND = {"c": "C epoll, copy", "c-splice": "C epoll, splice", "off": "echo-server, off",
          "auto": "echo-server, auto", "always": "echo-server, always"}


def zero_copy_tables(chosen, sizes, med):
    """Prints the CPU table (with ratios) and the rate table; returns the plot's series."""
    names = list(chosen)
    vs_c = [n for n in names if n != "c"] if "c" in chosen else []
    vs_off = [n for n in ("auto", "always") if n in chosen] if "off" in chosen else []
    print("\n| size | " + " | ".join(f"{chosen[n].label} CPU µs/msg" for n in names)
          + "".join(f" | {n} / c" for n in vs_c) + "".join(f" | {n} / off" for n in vs_off)
          + " |")
    print("|---|" + "---:|" * (len(names) + len(vs_c) + len(vs_off)))
    series = {LEGEND[n]: [] for n in names}
    for size in sizes:
        cpu = {n: med(n, size, "server_cpu_us_per_msg") for n in names}
        cells = [f"{cpu[n]:.2f}" if cpu[n] is not None else "failed" for n in names]
        for n, base in [(n, "c") for n in vs_c] + [(n, "off") for n in vs_off]:
            r = ratio(cpu[n], cpu[base])
            cells.append(f"{r:.2f}×" if r is not None else "–")
        print(f"| {fmt_size(size)} | " + " | ".join(cells) + " |")
        for n in names:
            if cpu[n] is not None:
                series[LEGEND[n]].append((size / 1024, cpu[n]))
    print("\n| size | " + " | ".join(f"{chosen[n].label} msgs/s, p99 µs" for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    for size in sizes:
        cells = []
        for n in names:
            rate, p99 = med(n, size, "msgs_per_sec"), med(n, size, "latency_us", "p99")
            cells.append(f"{rate:,.0f}, {p99:,.0f}" if rate is not None else "failed")
        print(f"| {fmt_size(size)} | " + " | ".join(cells) + " |")
    return series


def zero_copy(args):
    sizes = [int(s) for s in args.sizes.split(",")]
    chosen = zero_copy_servers(args.servers.split(","))
    pipe_max = Path("/proc/sys/fs/pipe-max-size").read_text().strip()
    print(f"kernel {platform.release()}, pipe-max-size {pipe_max} B, {args.conns} connections, "
          f"{args.pipeline} in flight, {args.rounds} alternated rounds of {args.duration} s, "
          f"server on core {harness.SERVER_CORE}, echo-bench on core {harness.CLIENT_CORE}")
    results = {(name, size): [] for name in chosen for size in sizes}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as logdir:
        try:
            for r in range(args.rounds):
                order = list(chosen) if r % 2 == 0 else list(reversed(chosen))
                for size in sizes:
                    for name in order:
                        results[(name, size)].append(
                            measure(chosen[name], logdir, f"{name}-{size}-{r}", args, size))
                print(f"  round {r + 1}/{args.rounds} done ({time.monotonic() - started:.0f} s)",
                      file=sys.stderr)
        finally:
            harness.cleanup()

    def med(name, size, key, sub=None):
        return harness.median([(res[key] or {}).get(sub) if sub else res[key]
                               for res in results[(name, size)] if res])
    series = zero_copy_tables(chosen, sizes, med)
    if args.plot:
        svgplot.line_plot(args.plot, "Server CPU per echoed message by message size",
                          "message size (KiB, log scale)", "server CPU µs per message",
                          series, subtitle="lower is better")
        print(f"\nplot: {args.plot}")


def parser():
    summary = " ".join(__doc__.split("\n\n")[0].split())
    ap = argparse.ArgumentParser(prog="bench/ab.py", description=summary,
                                 epilog="The mode comes first; without one it is `builds`. "
                                 "`bench/ab.py MODE --help` lists that mode's options.")
    sub = ap.add_subparsers(dest="mode", metavar="MODE", required=True)
    b = sub.add_parser("builds", help="two echo-server builds or settings (the default)")
    b.add_argument("--a", default=str(harness.RELEASE / "echo-server"), help="build A")
    b.add_argument("--b", help="build B [default: A]")
    b.add_argument("--a-args", default="", help="arguments for A's server only")
    b.add_argument("--b-args", default="", help="arguments for B's server only")
    b.add_argument("--server-args", default="", help="more arguments for both servers")
    m = sub.add_parser("metrics", help="echo-server with --metrics, scraped against quiet")
    m.add_argument("--workers", type=int, default=1)
    m.add_argument("--scrape-hz", type=float, default=10)
    z = sub.add_parser("zero-copy", help="CPU per message across sizes, --zero-copy modes and C")
    z.add_argument("--sizes", default="1024,4096,16384,65536,262144,1048576,4194304")
    z.add_argument("--servers", default="c,c-splice,off,auto,always")
    z.add_argument("--plot", help="write an SVG plot of CPU per message against size here")
    for p, rounds, duration, conns in ((b, 6, 4, 50), (m, 6, 5, 50), (z, 3, 3, 8)):
        p.add_argument("--rounds", type=int, default=rounds, help=f"[default: {rounds}]")
        p.add_argument("--duration", type=float, default=duration,
                       help=f"measured seconds per run [default: {duration}]")
        p.add_argument("--conns", type=int, default=conns, help=f"[default: {conns}]")
        p.add_argument("--pipeline", type=int, default=1, help="messages in flight per "
                       "connection [default: 1]")
        if p is not z:
            p.add_argument("--size", type=int, default=64, help="message size [default: 64]")
    return ap


def main(argv):
    if not argv or (argv[0] not in MODES and argv[0] not in ("-h", "--help")):
        argv = ["builds"] + argv
    args = parser().parse_args(argv)
    os.sched_setaffinity(0, {int(harness.CLIENT_CORE)})
    {"builds": builds, "metrics": metrics, "zero-copy": zero_copy}[args.mode](args)


if __name__ == "__main__":
    main(sys.argv[1:])
