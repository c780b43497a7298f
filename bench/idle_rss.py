#!/usr/bin/env python3
"""Server memory per connection.

Idle: start each server pinned to core 0, read its VmRSS, open N idle connections (spread over
source addresses 127.0.0.1-127.0.0.8), wait until the server has accepted them, read VmRSS
again: (after - before) / accepted = KiB per idle connection.

Hold (--hold N): N connections to one echo-server (epoll) through echo-bench, every byte
verified; reports the server's RSS per connection (peak sampled VmRSS during the run minus the
RSS before it).

    bench/idle_rss.py [--conns 10000] [--servers tokio-ct,mio] [--settle 0.5] [--hold 19000]
"""
import argparse
import errno
import json
import resource
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

import harness

IP_BIND_ADDRESS_NO_PORT = 24  # Linux; lets many source addresses share the port range
SOURCES = [f"127.0.0.{i}" for i in range(1, 9)]
BATCH = 200  # Rust's TcpListener::bind (tokio, mio) listens with a backlog of 128
BATCH_TIMEOUT = 5.0
TOTAL_TIMEOUT = 60.0


def open_idle(addr, n, deadline, accepted):
    """Opens up to n connections to addr before deadline; returns the connected sockets.
    Waits (briefly) for the server to accept each batch: this measures memory, not storms."""
    host, _, port = addr.rpartition(":")
    dest = (host, int(port))
    done = []
    sel = selectors.DefaultSelector()
    while len(done) < n and time.monotonic() < deadline:
        before = len(done)
        pending = {}
        for i in range(min(BATCH, n - len(done))):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((SOURCES[(len(done) + i) % len(SOURCES)], 0))
            s.setblocking(False)
            rc = s.connect_ex(dest)
            if rc not in (0, errno.EINPROGRESS):
                s.close()
                continue
            sel.register(s, selectors.EVENT_WRITE)
            pending[s.fileno()] = s
        batch_end = min(deadline, time.monotonic() + BATCH_TIMEOUT)
        while pending and time.monotonic() < batch_end:
            for key, _ in sel.select(max(0.0, batch_end - time.monotonic())):
                s = pending.pop(key.fd)
                sel.unregister(s)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    done.append(s)
                else:
                    s.close()
        for s in pending.values():
            sel.unregister(s)
            s.close()
        if len(done) == before:
            break  # a whole batch failed: the server is gone or not accepting
        catch_up = min(deadline, time.monotonic() + 2.0)
        while accepted() < len(done) and time.monotonic() < catch_up:
            time.sleep(0.01)
    sel.close()
    return done


def measure(server, n, logdir, settle):
    """KiB of server RSS per idle connection, with the figures it came from."""
    row = {"server": server.label, "conns": n, "connected": 0, "accepted": None,
           "rss_before_kb": None, "rss_after_kb": None, "kib_per_conn": None, "error": None}
    run = harness.Running(server, logdir / f"idle-{server.label.replace(' ', '')}.stderr")
    why = run.start()
    if why:
        row["error"] = f"server did not start: {why}"
        return row
    socks = []
    try:
        time.sleep(0.3)
        row["rss_before_kb"] = harness.proc_status(run.pid, "VmRSS")
        base_fds = harness.socket_fds(run.pid) or 0
        socks = open_idle(run.addr, n, time.monotonic() + TOTAL_TIMEOUT,
                          lambda: (harness.socket_fds(run.pid) or 0) - base_fds)
        row["connected"] = len(socks)
        wait_end = time.monotonic() + 10
        accepted = 0
        while run.alive() and time.monotonic() < wait_end:
            accepted = (harness.socket_fds(run.pid) or 0) - base_fds
            if accepted >= len(socks):
                break
            time.sleep(0.1)
        time.sleep(settle)
        row["accepted"] = accepted
        row["rss_after_kb"] = harness.proc_status(run.pid, "VmRSS")
        if not run.alive():
            row["error"] = f"server exited: {run.stderr_tail() or 'no stderr'}"
        elif accepted < n:
            row["error"] = f"only {accepted} of {n} connections accepted"
        if accepted > 0 and row["rss_after_kb"] is not None:
            row["kib_per_conn"] = (row["rss_after_kb"] - row["rss_before_kb"]) / accepted
    finally:
        for s in socks:
            s.close()
        run.stop()
    return row


def measure_all(servers, n, logdir, settle):
    """Each server's idle figure; tokio-ct twice, also with tokio's README 1 KiB buffer, since
    its per-connection read buffer (16 KiB by default) is most of its idle cost."""
    rows = []
    extra = [harness.Server("tokio-ct", "1 KiB buffer", s.argv[:1] + ["127.0.0.1:0", "1024"])
             for s in servers if s.label == "tokio-ct"]
    for s in servers + extra:
        row = measure(s, n, logdir, settle)
        per = row["kib_per_conn"]
        print(f"idle {s.label:22} {row['accepted']}/{n} accepted  "
              f"{'%.3f' % per if per is not None else 'n/a'} KiB/conn  {row['error'] or ''}",
              file=sys.stderr)
        rows.append(row)
    return rows


def hold(n, bench, logdir, duration=5):
    """n connections held by echo-server (epoll) under echo-bench; RSS per connection."""
    server = next(s for s in harness.all_servers() if s.label == "echo-server (epoll)")
    row = {"server": server.label, "conns": n, "error": None, "result": None}
    run = harness.Running(server, logdir / "hold.stderr")
    why = run.start()
    if why:
        row["error"] = f"server did not start: {why}"
        return row
    try:
        time.sleep(0.3)
        before = harness.proc_status(run.pid, "VmRSS")
        peak = before
        cmd = ["taskset", "-c", harness.CLIENT_CORE, bench, "--json", "--server-pid",
               str(run.pid), "-c", str(n), "-s", "64", "-d", str(duration), "--warmup", "1",
               run.addr]
        row["command"] = " ".join(cmd)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        end = time.monotonic() + duration + 90
        while proc.poll() is None and time.monotonic() < end:
            rss = harness.proc_status(run.pid, "VmRSS")
            peak = max(peak, rss or 0)
            time.sleep(0.2)
        if proc.poll() is None:
            proc.kill()
            row["error"] = "echo-bench did not finish"
        out, err = proc.communicate()
        lines = [x for x in out.splitlines() if x.startswith("{")]
        row["result"] = json.loads(lines[-1]) if lines else None
        row["bench_status"] = proc.returncode
        if row["error"] is None and proc.returncode != 0:
            row["error"] = f"echo-bench status {proc.returncode}: {err.strip()[-300:]}"
        row.update(rss_before_kb=before, rss_peak_sampled_kb=peak,
                   kib_per_conn=(peak - before) / n)
        if not run.alive():
            row["error"] = f"server exited: {run.stderr_tail()}"
    finally:
        run.stop()
    print(f"hold {n}: {json.dumps(row)}", file=sys.stderr)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--servers", help="comma-separated names or labels")
    ap.add_argument("--settle", type=float, default=0.5,
                    help="seconds between the last accept and the second RSS reading; an "
                         "allocator that returns freed memory lazily (jemalloc: over 10 s) "
                         "shows its steady state only after that long [default: 0.5]")
    ap.add_argument("--hold", type=int, help="also hold this many connections on echo-server")
    ap.add_argument("--bench", default=str(harness.RELEASE / "echo-bench"))
    ap.add_argument("--out", default=str(harness.ROOT / "bench" / "results" / "idle"))
    args = ap.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    logdir = Path(args.out)
    logdir.mkdir(parents=True, exist_ok=True)
    servers = [s for s in harness.all_servers() if not s.skip_reason]
    if args.servers:
        want = set(args.servers.split(","))
        servers = [s for s in servers if s.name in want or s.label in want or s.backend in want]
    try:
        rows = measure_all(servers, args.conns, logdir, args.settle)
        print("| server | accepted | RSS before KiB | RSS after KiB | KiB/conn | notes |")
        print("|---|---:|---:|---:|---:|---|")
        for r in rows:
            per = "n/a" if r["kib_per_conn"] is None else f"{r['kib_per_conn']:.3f}"
            print(f"| {r['server']} | {r['accepted']}/{r['conns']} | {r['rss_before_kb']} | "
                  f"{r['rss_after_kb']} | {per} | {r['error'] or ''} |")
        if args.hold:
            hold(args.hold, args.bench, logdir)
    finally:
        harness.cleanup()


if __name__ == "__main__":
    main()
