#!/usr/bin/env python3
"""Does `--max-memory` hold for waves of clients as for one?

Each wave opens N slow readers (small socket buffers; they send without pause and read 4 KiB
now and then), sends until the server stops taking their bytes (the budget is spent) or a
deadline, then resets every connection (SO_LINGER 0) and starts the next wave at once. The
server's RSS is sampled every 5 ms, its peak taken from VmHWM, and its own count of held bytes
from the stats line; the script prints peak RSS against the budget, per worker count, and the
RSS some seconds after the last wave.

    bench/budget_churn.py [--max-memory 64MiB] [--waves 10] [--conns 300] [--workers 1,2]
                          [--zero-copy auto] [--settle 15] [--binary PATH] [--env K=V]

--env passes a variable to the server (for instance the allocator's options, to tell the
allocator's share of the peak from the server's: `--env _RJEM_MALLOC_CONF=dirty_decay_ms:0`).
Python 3.11 standard library only.
"""
import argparse
import os
import re
import resource
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

import harness

UNITS = {"": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
CHUNK = b"\x5a" * 65536
CLOSED_BY_SERVER = []  # errno of each connection the server closed under a wave


def parse_bytes(s):
    """'64MiB' -> 67108864.

    >>> parse_bytes("64MiB"), parse_bytes("4096")
    (67108864, 4096)
    """
    m = re.fullmatch(r"(\d+)(KiB|MiB|GiB)?", s)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {s!r} (e.g. 64MiB)")
    return int(m.group(1)) * UNITS[m.group(2) or ""]


class Sampler(threading.Thread):
    """Samples a process's VmRSS every 5 ms; keeps the peak and when it happened."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.peak_at, self.stop = pid, 0, 0.0, False

    def run(self):
        while not self.stop:
            rss = harness.proc_status(self.pid, "VmRSS")
            if rss is None:
                return
            if rss > self.peak:
                self.peak, self.peak_at = rss, time.monotonic()
            time.sleep(0.005)


def slow_reader(dest):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    s.connect(dest)
    s.setblocking(False)
    return s


def wave(dest, conns, fill_for):
    """One wave: connect, send until nothing moves for 0.5 s (or fill_for seconds), reading a
    little now and then, then reset all. Returns the bytes sent."""
    socks = [slow_reader(dest) for _ in range(conns)]
    sent, start, still = 0, time.monotonic(), time.monotonic()
    turn, closed = 0, set()
    while time.monotonic() - still < 0.5 and time.monotonic() - start < fill_for:
        moved = 0
        for i, s in enumerate(socks):
            if i in closed:
                continue
            try:
                moved += s.send(CHUNK)
                if (i + turn) % 8 == 0:  # a slow reader: 4 KiB every eighth pass
                    s.recv(4096)
            except BlockingIOError:
                pass
            except OSError as e:
                closed.add(i)
                CLOSED_BY_SERVER.append(e.errno)
        turn += 1
        sent += moved
        if moved:
            still = time.monotonic()
        else:
            time.sleep(0.002)
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    return sent


def max_stat(log, field):
    """The highest `field=N` on the server's stats lines."""
    try:
        text = Path(log).read_text(errors="replace")
    except OSError:
        return None
    vals = [int(v) for v in re.findall(rf"^stats .*\b{field}=(\d+)", text, re.M)]
    return max(vals) if vals else None


def run(args, workers):
    argv = [args.binary, "-q", "-l", "127.0.0.1:0", "--max-memory", str(args.max_memory),
            "--workers", str(workers), "--zero-copy", args.zero_copy, "--stats-interval", "0.1"]
    env = dict(kv.split("=", 1) for kv in args.env)
    logdir = tempfile.TemporaryDirectory(prefix="budget-churn-")
    log = Path(logdir.name) / "server.log"
    server = harness.Running(harness.Server("echo-server", "-", argv), log, pin=False)
    old_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        reason = server.start()
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if reason:
        sys.exit(f"server did not start: {reason}")
    host, _, port = server.addr.rpartition(":")
    dest = (host, int(port))
    start_rss = harness.proc_status(server.pid, "VmRSS")
    sampler = Sampler(server.pid)
    sampler.start()
    t0 = time.monotonic()
    sent = sum(wave(dest, args.conns, args.fill_for) for _ in range(args.waves))
    waves_end = time.monotonic()
    rss_end = harness.proc_status(server.pid, "VmRSS")
    time.sleep(args.settle)
    settled = harness.proc_status(server.pid, "VmRSS")
    hwm = harness.proc_status(server.pid, "VmHWM")
    sampler.stop = True
    held = max_stat(log, "held")
    tail = server.stderr_tail(3)
    server.stop()
    logdir.cleanup()
    if CLOSED_BY_SERVER:
        print(f"  {len(CLOSED_BY_SERVER)} connections closed by the server under a wave "
              f"(errno {sorted(set(CLOSED_BY_SERVER))}); its log: {tail}")
        CLOSED_BY_SERVER.clear()
    mib = 1024.0
    budget = args.max_memory / (1 << 20)
    print(f"workers={workers} zero_copy={args.zero_copy} env={' '.join(args.env) or '-'}: "
          f"{args.waves} waves x {args.conns} in {waves_end - t0:.1f} s, {sent / 1e6:.0f} MB sent; "
          f"budget {budget:.0f} MiB; peak held {held / (1 << 20) if held else 0:.1f} MiB; "
          f"RSS start {start_rss / mib:.1f}, peak {hwm / mib:.1f} MiB "
          f"({hwm * 1024 / args.max_memory:.2f}x budget, at {sampler.peak_at - t0:.1f} s), "
          f"end of waves {rss_end / mib:.1f}, {args.settle:.0f} s later {settled / mib:.1f} MiB",
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-memory", type=parse_bytes, default=parse_bytes("64MiB"))
    ap.add_argument("--waves", type=int, default=10)
    ap.add_argument("--conns", type=int, default=300)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--zero-copy", default="auto", choices=["auto", "off", "always"])
    ap.add_argument("--fill-for", type=float, default=5.0,
                    help="most seconds a wave sends before it resets (default 5)")
    ap.add_argument("--settle", type=float, default=15.0,
                    help="seconds to wait after the last wave before the last RSS reading")
    ap.add_argument("--binary", default=str(harness.RELEASE / "echo-server"))
    ap.add_argument("--env", action="append", default=[], metavar="K=V")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * args.conns + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for w in (int(x) for x in args.workers.split(",")):
        run(args, w)


if __name__ == "__main__":
    try:
        main()
    finally:
        harness.cleanup()
