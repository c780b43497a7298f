#!/usr/bin/env python3
"""Side-by-side comparison: every server over a matrix of connections x size x pipeline, each
server pinned to core 0 and echo-bench to core 1, servers alternated within each point, each
point repeated and reduced to medians. Writes raw JSON lines, summary.md and SVG plots under
bench/results/<timestamp>/, and copies the summary to bench/results/latest.md.

Run through bench/compare.sh, which builds the binaries and sets up the Python venv first.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import harness
import idle_rss
import report

FULL_CONNS = [1, 100, 1000, 10000]
FULL_SIZES = [64, 16384]
FULL_PIPELINES = [1, 8]
RATE_POINT = (100, 64, 1, 20000)
# Bulk flows, where the zero-copy path applies: a few connections, one large message each.
BULK_POINTS = [(8, 16384, 1), (4, 65536, 1), (4, 1048576, 1)]


@dataclass(frozen=True)
class Point:
    conns: int
    size: int
    pipeline: int
    rate: int = 0

    def describe(self):
        rate = f" rate={self.rate}/s" if self.rate else ""
        return f"c={self.conns} s={self.size} p={self.pipeline}{rate}"


def matrix(quick, smoke=False):
    if smoke:
        return [Point(1, 64, 1), Point(100, 64, 1)]
    if quick:
        pts = [Point(1, 64, 1), Point(100, 64, 1), Point(1000, 64, 1),
               Point(100, 16384, 1), Point(100, 64, 8)]
    else:
        pts = [Point(c, s, p) for s in FULL_SIZES for p in FULL_PIPELINES for c in FULL_CONNS]
        pts += [Point(*b) for b in BULK_POINTS]
    return pts + [Point(*RATE_POINT)]


def not_applicable(server, point):
    """Why a server skips a point, or "" if it runs it."""
    if server.skip_reason:
        return server.skip_reason
    if server.python and point.pipeline > 1:
        return "Python servers run pipeline 1 only (time budget)"
    if server.python and point.size > 16384:
        return "Python servers skip the bulk points (time budget)"
    return ""


def run_one(server, point, args, logdir, tag):
    """Starts the server, runs echo-bench against it, stops it. Returns a raw record."""
    rec = {"server": server.name, "backend": server.backend, "conns": point.conns,
           "size": point.size, "pipeline": point.pipeline, "rate": point.rate, "tag": tag,
           "ok": False, "error": None, "result": None}
    run = harness.Running(server, logdir / f"{tag}.stderr")
    why = run.start()
    if why:
        rec["error"] = f"server did not start: {why}"
        return rec
    # At a fixed rate few messages pass; a longer window keeps /proc's 10 ms CPU ticks small.
    duration = args.duration * 3 if point.rate else args.duration
    cmd = ["taskset", "-c", harness.CLIENT_CORE, args.bench, "--json",
           "--server-pid", str(run.pid), "-c", str(point.conns), "-s", str(point.size),
           "-p", str(point.pipeline), "-d", str(duration), "--warmup", str(args.warmup)]
    if point.rate:
        cmd += ["-r", str(point.rate)]
    cmd.append(run.addr)
    rec["command"] = " ".join(cmd)
    limit = args.warmup + duration + 30 + point.conns / 200
    # What everything else on the machine used meanwhile: the noise this run saw.
    t0, srv0 = time.monotonic(), harness.cpu_ticks(run.pid)
    all0, core0 = harness.cpu_times(), harness.cpu_times("cpu" + harness.SERVER_CORE)
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=limit, text=True)
        rc, stdout, stderr = out.returncode, out.stdout, out.stderr
    except subprocess.TimeoutExpired as e:
        rc, stdout, stderr = None, (e.stdout or b"").decode(errors="replace"), ""
        rec["error"] = f"echo-bench did not finish in {limit:.0f} s"
    srv1 = harness.cpu_ticks(run.pid)
    all1, core1 = harness.cpu_times(), harness.cpu_times("cpu" + harness.SERVER_CORE)
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    tck = os.sysconf("SC_CLK_TCK")
    if srv0 is not None and srv1 is not None:
        bench_s = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
        other_s = (harness.task_busy(all1) - harness.task_busy(all0) - (srv1 - srv0)) / tck
        other_s -= bench_s
        rec["others_cpu_pct"] = round(100 * max(0.0, other_s) /
                                      ((time.monotonic() - t0) * os.cpu_count()), 1)
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                rec["result"] = json.loads(line)
            except ValueError:
                pass
            break
    # Loopback TCP delivery runs in softirq, charged to no process: the server core's share,
    # over the whole run (warm-up included), per message of the whole run.
    res = rec["result"] or {}
    total_msgs = res.get("messages", 0) * (1 + args.warmup / duration)
    if total_msgs:
        soft = core1["softirq"] - core0["softirq"] + core1["irq"] - core0["irq"]
        rec["server_core_softirq_us_per_msg"] = round(soft / tck * 1e6 / total_msgs, 3)
    alive = run.alive()
    tail = run.stderr_tail()
    server_rc = run.stop()
    res = rec["result"]
    if not alive:
        rec["error"] = f"server exited (status {server_rc}): {tail or 'no stderr'}"
    elif rec["error"] is None and rc != 0:
        if res:
            rec["error"] = (f"echo-bench status {rc}: errors={res.get('errors')} "
                            f"mismatches={res.get('mismatches')} "
                            f"connected={res.get('connected')}/{point.conns}")
        else:
            last = stderr.strip().splitlines()[-1:] or ["no output"]
            rec["error"] = f"echo-bench status {rc}: {last[0][:300]}"
        if res and stderr.strip():
            rec["error"] += f" ({stderr.strip().splitlines()[0][:200]})"
    elif rec["error"] is None and not res:
        rec["error"] = "echo-bench printed no JSON"
    rec["ok"] = rec["error"] is None
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reduced matrix, 1 repeat, 1 s points")
    ap.add_argument("--smoke", action="store_true",
                    help="the harness end to end in seconds: two points, 1 repeat, 1 s runs, "
                         "100 idle connections; exits 1 unless every run passed and the summary "
                         "and both plots were written (CI runs it with two servers)")
    ap.add_argument("--repeats", type=int, help="runs per server and point (default 3, quick 1)")
    ap.add_argument("--duration", type=int, help="measured seconds per run (default 2, quick 1)")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up seconds per run (default 1)")
    ap.add_argument("--servers", help="comma-separated names or labels to run, e.g. tokio-ct,mio")
    ap.add_argument("--bench", default=str(harness.RELEASE / "echo-bench"),
                    help="load generator (default target/release/echo-bench)")
    ap.add_argument("--no-idle", action="store_true", help="skip the idle-memory measurement")
    ap.add_argument("--settle", type=float, default=0.5,
                    help="idle measurement: seconds between the last accept and the second RSS "
                         "reading (see bench/idle_rss.py --settle) [default: 0.5]")
    ap.add_argument("--hold", type=int, help="connections held by echo-server with every byte "
                    "verified (default 19000, quick 0 = skip)")
    ap.add_argument("--out", help="results directory (default bench/results/<timestamp>)")
    args = ap.parse_args()
    short = args.quick or args.smoke
    args.repeats = args.repeats or (1 if short else 3)
    args.duration = args.duration or (1 if short else 2)
    if args.hold is None:
        args.hold = 0 if short else 19000
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda n, _: sys.exit(128 + n))
    try:
        failures = run_all(args)
    finally:
        harness.cleanup()
    if args.smoke and failures:
        for why in failures:
            print(f"compare --smoke: {why}", file=sys.stderr)
        return 1
    return 0


def run_all(args):
    """Runs the matrix and writes the results; returns what failed (runs, missing outputs)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else harness.ROOT / "bench" / "results" / stamp
    logdir = out / "logs"
    logdir.mkdir(parents=True, exist_ok=True)

    servers = harness.all_servers()
    if args.servers:
        want = set(args.servers.split(","))
        servers = [s for s in servers if s.name in want or s.label in want or s.backend in want]
    points = matrix(args.quick, args.smoke)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": harness.machine(),
        "command": "bench/compare.sh " + " ".join(sys.argv[1:]),
        "commit": subprocess.run(["git", "-C", str(harness.ROOT), "describe", "--always",
                                  "--dirty"], capture_output=True, text=True).stdout.strip(),
        "bench": args.bench, "repeats": args.repeats, "duration": args.duration,
        "warmup": args.warmup, "nofile": hard, "loadavg_start": os.getloadavg(),
    }
    total = sum(1 for p in points for s in servers if not not_applicable(s, p)) * args.repeats
    print(f"{len(servers)} servers, {len(points)} points, {args.repeats} repeats: "
          f"at most {total} runs -> {out}", file=sys.stderr)

    records, done = [], 0
    with open(out / "raw.jsonl", "w") as raw:
        for pi, point in enumerate(points):
            failed = set()  # servers that crashed at this point: not repeated
            for rep in range(args.repeats):
                for s in servers:
                    if not_applicable(s, point) or s.label in failed:
                        continue
                    done += 1
                    tag = f"p{pi:02d}-{s.label.replace(' ', '').replace('(', '-').strip(')')}-r{rep}"
                    rec = run_one(s, point, args, logdir, tag)
                    rec["rep"] = rep
                    records.append(rec)
                    raw.write(json.dumps(rec) + "\n")
                    raw.flush()
                    res = rec["result"] or {}
                    status = "ok" if rec["ok"] else f"FAILED: {rec['error']}"
                    print(f"[{done}/{total}] {s.label:22} {point.describe():28} "
                          f"{res.get('msgs_per_sec', 0):>10.0f} msg/s "
                          f"{res.get('server_cpu_us_per_msg') or 0:6.2f} us/msg "
                          f"others {rec.get('others_cpu_pct', 0):3.0f}%  {status}",
                          file=sys.stderr)
                    if rec["error"] and rec["error"].startswith(("server exited", "server did")):
                        failed.add(s.label)

    idle = None
    if not args.no_idle:
        n = 100 if args.smoke else 1000 if args.quick else 10000
        idle = idle_rss.measure_all([s for s in servers if not s.skip_reason], n, logdir,
                                    args.settle)
        with open(out / "idle.json", "w") as f:
            json.dump(idle, f, indent=1)
    held = None
    if args.hold:
        held = idle_rss.hold(args.hold, args.bench, logdir)
        with open(out / "hold.json", "w") as f:
            json.dump(held, f, indent=1)
    meta["loadavg_end"] = os.getloadavg()
    summary = report.summary(meta, servers, points, records, idle, held, not_applicable, out)
    (out / "summary.md").write_text(summary)
    shutil.copyfile(out / "summary.md", harness.ROOT / "bench" / "results" / "latest.md")
    print(f"wrote {out / 'summary.md'} and bench/results/latest.md", file=sys.stderr)
    failures = [f"{r['server']} ({r['backend']}) {r['conns']} x {r['size']} B: {r['error']}"
                for r in records if not r["ok"]]
    failures += [f"idle {r['server']}: {r['error']}" for r in idle or [] if r["error"]]
    failures += [f"{name} not written" for name in ("cpu_per_msg.svg", "msgs_per_sec.svg")
                 if not (out / name).is_file()]
    if not records:
        failures.append("no server ran (see --servers)")
    return failures


if __name__ == "__main__":
    sys.exit(main())
