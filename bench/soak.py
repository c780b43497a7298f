#!/usr/bin/env python3
"""Chaos soak of echo-server, one readiness backend after another: every byte checked, the
server's descriptors and memory sampled each second; fails on loss, death or a leak.
Run it as bench/soak.sh (which is this script); --help says everything.
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import harness

USAGE = """\
Usage: bench/soak.sh [--minutes N] [--connections C] [--backends "epoll poll select"]
                     [--zero-copy auto|off|always] [--seed S] [--no-build] [--logs DIR]

Soak echo-server under `echo-bench chaos` on each backend in turn and fail
unless every byte came back and the server neither died nor leaked.

For each backend it starts `echo-server -l 127.0.0.1:0 --backend B --zero-copy Z` (on CPU 0
when taskset is there), measures its idle descriptor count, runs
`echo-bench chaos --json --server-pid PID -c C -d SECS ADDR` (on CPU 1) for the
backend's share of the time, and samples the server's open descriptors
(/proc/PID/fd) and VmRSS once a second meanwhile. It fails when:
  - chaos reports a mismatch, a loss, a stall or a failed connect (its exit
    status or its JSON);
  - the server dies, does not come back to its idle descriptor count within
    5 s of the load stopping, or does not exit 0 with its `summary:` line
    within 10 s of SIGTERM;
  - descriptors or RSS trend upward once the load is steady. Over the samples
    of the load after its first 20%, from the first whose descriptor count
    reaches their median (a slow ramp on a busy machine is not a leak), it
    fits a least-squares slope, and fails
    only when the slope AND the rise from the first third's median to the
    last third's both pass a threshold: descriptors max(30, C/2)/min and
    max(10, C/10), three times that unless --zero-copy off (a session may
    hold a pipe); RSS 1 MiB/min and max(1 MiB, 10% of the first third's
    median). (The exact descriptor check is the one after the load.)
    Fewer than 6 samples (backend share under ~8 s): no trend test.
It prints one line of figures per backend; the last line is the verdict.
Exit status 0 only when everything held, 1 otherwise, 2 on a usage error.

Options:
  --minutes N      total time for all backends together, decimals allowed [default: 1]
                   (each backend's load runs its share less ~2 s for start,
                   settle and shutdown; chaos's last sessions may add a little)
  --connections C  chaos sessions at once [default: 100]; thresholds scale
                   with it (checked at 10,000 on epoll and poll, 1,000 on
                   select, whose descriptors must stay below 1024)
  --backends LIST  space-separated backends [default: "epoll poll select"]
  --zero-copy Z    the server's --zero-copy mode [default: auto]; CI runs auto
                   and always
  --seed S         chaos seed, the same for every backend, to repeat a run
                   [default: from the clock; printed on the first line]
  --no-build       use target/release/{echo-server,echo-bench} as they are
                   (SKIP_BUILD=1 does the same)
  --logs DIR       keep every backend's samples, chaos JSON and server output in
                   DIR (default: a temporary directory, kept only on failure)
  -h, --help       this text

Short run (CI, about a minute, all three backends):
  bench/soak.sh
Long run (by hand: 10 minutes per backend; figures in docs/BENCHMARKS.md). select(2)
holds only descriptors below FD_SETSIZE (1024), so it soaks at 1,000 sessions:
  bench/soak.sh --minutes 20 --connections 10000 --backends "epoll poll"
  bench/soak.sh --minutes 10 --connections 1000 --backends select
A failing run prints its seed; rerun with --seed S (and the same --connections)
to get the same sessions again.
"""

# Thresholds: see USAGE. Chosen so that healthy runs (several short and long ones on every
# backend) stay well below them, while a leak of one descriptor or one small buffer per
# session (thousands of sessions a minute) passes them many times over.
WARMUP_FRAC = 0.2
RSS_SLOPE_MAX_KIB = 1024
RSS_RISE_MIN_KIB = 1024
RSS_RISE_FRAC = 0.10
SETTLE_S = 5
TERM_WAIT_S = 10
SESSION_TIMEOUT = 10
CHAOS_BAD = ("failures", "mismatches", "lost", "stalls", "connect_errors")


class Usage(Exception):
    pass


def parse_args(argv):
    """The options as a dict; raises Usage on a bad one, SystemExit(0) after --help.

    >>> o = parse_args(["--minutes", "0.5", "--backends", "epoll poll", "--no-build"])
    >>> o["minutes"], o["backends"], o["build"], o["connections"], o["zero_copy"]
    (0.5, ['epoll', 'poll'], False, 100, 'auto')
    >>> parse_args(["--minutes", "0"])
    Traceback (most recent call last):
    soak.Usage: --minutes wants a positive number, got '0'
    >>> parse_args(["--backends", "kqueue"])
    Traceback (most recent call last):
    soak.Usage: unknown backend: kqueue
    """
    o = {"minutes": "1", "connections": "100", "backends": "epoll poll select",
         "zero_copy": "auto", "seed": "", "logs": "",
         "build": os.environ.get("SKIP_BUILD", "0") != "1"}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("--minutes", "--connections", "--backends", "--zero-copy", "--seed", "--logs"):
            if not args:
                raise Usage(f"{arg} needs a value")
            o[arg[2:].replace("-", "_")] = args.pop(0)
        elif arg == "--no-build":
            o["build"] = False
        elif arg in ("-h", "--help"):
            print(USAGE, end="")
            raise SystemExit(0)
        else:
            raise Usage(f"unknown argument: {arg}")
    if o["zero_copy"] not in ("auto", "off", "always"):
        raise Usage(f"--zero-copy wants auto, off or always, got '{o['zero_copy']}'")
    try:
        minutes = float(o["minutes"])
    except ValueError:
        minutes = 0
    if not o["minutes"].replace(".", "", 1).isdigit() or minutes <= 0:
        raise Usage(f"--minutes wants a positive number, got '{o['minutes']}'")
    o["minutes"] = minutes
    if not o["connections"].isdigit() or int(o["connections"]) < 1:
        raise Usage("--connections wants a positive integer")
    o["connections"] = int(o["connections"])
    if o["seed"] and not o["seed"].isdigit():
        raise Usage("--seed wants a non-negative integer")
    o["backends"] = o["backends"].split()
    if not o["backends"]:
        raise Usage("--backends is empty")
    for b in o["backends"]:
        if b not in ("epoll", "poll", "select", "auto"):
            raise Usage(f"unknown backend: {b}")
    return o


def slope(xs, ys):
    """Least-squares slope of ys against xs (0 when xs do not vary).

    >>> slope([0, 1, 2, 3], [5, 7, 9, 11])
    2.0
    >>> slope([1, 1], [3, 4])
    0
    """
    n = len(xs)
    sx, sy = sum(xs), sum(ys)
    sxx, sxy = sum(x * x for x in xs), sum(x * y for x, y in zip(xs, ys))
    d = n * sxx - sx * sx
    return (n * sxy - sx * sy) / d if d > 0 else 0


def ramped(samples, start, end):
    """The samples (t, fds, rss_kib) with start <= t <= end from the first whose descriptor
    count reaches the window's median: on a busy machine the load may still be ramping up
    after the warm-up share, and a ramp is not a leak. A leak keeps rising past the median,
    so it still shows in what is left.

    >>> ramped([(0, 5, 1), (1, 9, 1), (2, 10, 1), (3, 10, 1), (4, 11, 1)], 0, 4)
    [(2, 10, 1), (3, 10, 1), (4, 11, 1)]
    """
    pts = [s for s in samples if start <= s[0] <= end and s[2] > 0]
    if not pts:
        return pts
    middle = harness.median([s[1] for s in pts])
    first = next(i for i, s in enumerate(pts) if s[1] >= middle)
    return pts[first:]


def trend(samples, start, end):
    """Over the samples (t, fds, rss_kib) with start <= t <= end: their count, then for fds
    and for RSS the slope per minute, the medians of the first and last third, and the
    median of all.

    >>> n, fd, rss = trend([(t, 10 + t // 60, 1000) for t in range(0, 600, 60)], 0, 600)
    >>> n, fd, rss
    (10, (1.0, 11, 18, 14.5), (0.0, 1000, 1000, 1000.0))
    """
    pts = [s for s in samples if start <= s[0] <= end and s[2] > 0]
    n = len(pts)
    if n == 0:
        return 0, (0, 0, 0, 0), (0, 0, 0, 0)
    k = max(1, n // 3)
    t = [(s[0] - start) / 60 for s in pts]

    def one(ys):
        return (slope(t, ys), harness.median(ys[:k]), harness.median(ys[-k:]), harness.median(ys))
    return n, one([s[1] for s in pts]), one([s[2] for s in pts])


def kib(k):
    """A signed size for a slope: KiB below 1 MiB, else MiB.

    >>> kib(512), kib(-2048), kib(0)
    ('+512 KiB', '-2.0 MiB', '+0 KiB')
    """
    sign = "-" if k < -0.5 else "+"
    a = abs(k)
    return f"{sign}{a / 1024:.1f} MiB" if a >= 1024 else f"{sign}{a:.0f} KiB"


def num(v):
    """A median as the old report printed it: whole numbers without a decimal point."""
    return "?" if v is None else f"{v:g}"


class Sampler(threading.Thread):
    """(monotonic time, fds, VmRSS KiB) of a process once a second until stopped."""

    def __init__(self, run, path):
        super().__init__(daemon=True)
        self.run_, self.path = run, path
        self.samples = []
        self.stop_flag = threading.Event()

    def run(self):
        with open(self.path, "w") as f:
            while self.run_.alive() and not self.stop_flag.is_set():
                fds, rss = harness.fd_count(self.run_.pid), harness.proc_status(self.run_.pid, "VmRSS")
                if fds is not None and rss is not None:
                    self.samples.append((time.monotonic(), fds, rss))
                    f.write(f"{self.samples[-1][0]:.3f} {fds} {rss}\n")
                self.stop_flag.wait(1)


def idle_baseline(run):
    """The server's idle (fds, rss): what it opens after announcing the address included,
    waiting until the descriptor count stops changing."""
    time.sleep(0.3)
    fds, rss = harness.fd_count(run.pid), harness.proc_status(run.pid, "VmRSS")
    for _ in range(20):
        time.sleep(0.1)
        f, r = harness.fd_count(run.pid), harness.proc_status(run.pid, "VmRSS")
        if f == fds:
            break
        fds, rss = f, r
    return fds or 0, rss or 0


def run_chaos(run, o, load_s, seed, d, pin):
    """Runs chaos against the server for load_s seconds; returns (exit status, failures)."""
    bench = harness.RELEASE / "echo-bench"
    cmd = harness.pinned(harness.CLIENT_CORE, [
        str(bench), "chaos", "--json", "--server-pid", str(run.pid), "-c", str(o["connections"]),
        "-d", f"{load_s:.3f}", "--session-timeout", str(SESSION_TIMEOUT), "--seed", str(seed),
        run.addr], pin)
    # chaos lets running sessions finish for up to ten session timeouts after -d.
    limit = int(load_s + 10 * SESSION_TIMEOUT + 30)
    with open(d / "chaos.json", "w") as out, open(d / "chaos.err", "w") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            return proc.wait(limit), []
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return proc.returncode, [f"chaos did not finish within {limit} s (killed)"]


def after_load(run, fd_idle):
    """Waits up to SETTLE_S for the server's descriptors to come back to fd_idle; returns
    (fds, rss, seconds it took or None, failures)."""
    if not run.alive():
        tail = run.stderr_tail()
        return None, 0, None, [f"server died under load{f' (stderr: {tail})' if tail else ''}"]
    t1 = time.monotonic()
    fds = rss = None
    for _ in range(SETTLE_S * 10):
        fds, rss = harness.fd_count(run.pid), harness.proc_status(run.pid, "VmRSS")
        if fds is not None and fds <= fd_idle:
            return fds, rss or 0, time.monotonic() - t1, []
        time.sleep(0.1)
    return fds, rss or 0, None, [f"fds {fds} {SETTLE_S} s after the load, {fd_idle} idle (leak)"]


def shutdown(run):
    """SIGTERM; the server must exit 0 within TERM_WAIT_S with its summary line."""
    fail = []
    run.proc.send_signal(signal.SIGTERM)
    try:
        status = run.proc.wait(TERM_WAIT_S)
        if status != 0:
            fail.append(f"server exited with status {128 - status if status < 0 else status}")
    except subprocess.TimeoutExpired:
        fail.append(f"server still running {TERM_WAIT_S} s after SIGTERM (killed)")
    run.stop()
    if not any(line.startswith("summary:") for line in run.stdout_lines()):
        fail.append("server printed no summary line")
    panics = [line for line in Path(run.log_path).read_text(errors="replace").splitlines()
              if "panicked" in line] if Path(run.log_path).exists() else []
    if panics:
        fail.append(f"server panicked: {panics[0]}")
    return fail


def chaos_verdict(d, rc):
    """(sessions, bytes verified, failures) from chaos's JSON report and exit status."""
    report = harness.last_json((d / "chaos.json").read_text(errors="replace"))
    err = (d / "chaos.err").read_text(errors="replace").splitlines()
    if not report or "sessions" not in report or "bytes_verified" not in report:
        return 0, 0, [f"chaos gave no report (exit {rc}): {err[-1] if err else ''}"]
    bad = ", ".join(f"{k} {report[k]}" for k in CHAOS_BAD if report.get(k, 0) != 0)
    fail = []
    if bad or rc != 0:
        first = next((line for line in err if "echo-bench" in line), "")
        fail.append(f"chaos: {bad} (exit {rc}; {first})" if bad else
                    f"chaos: (exit {rc}; {first})")
    return report["sessions"], report["bytes_verified"], fail


def trend_failures(o, fd, rss):
    """The leak verdicts of the steady part's trend (see USAGE)."""
    per_session = 1 if o["zero_copy"] == "off" else 3  # a zero-copy session may hold a pipe
    c = o["connections"]
    fd_slope_max = per_session * max(c // 2, 30)
    fd_rise_max = per_session * max(c // 10, 10)
    fail = []
    if fd[0] > fd_slope_max and fd[2] - fd[1] > fd_rise_max:
        fail.append(f"fd slope {fd[0]:+.1f}/min, median {num(fd[1])} -> {num(fd[2])} (leak)")
    if rss[0] > RSS_SLOPE_MAX_KIB and rss[2] - rss[1] > max(RSS_RISE_MIN_KIB,
                                                           rss[1] * RSS_RISE_FRAC):
        fail.append(f"RSS slope {kib(rss[0])}/min, median {num(rss[1])} -> {num(rss[2])} KiB "
                    "(leak)")
    return fail


def soak_backend(backend, o, load_s, seed, work, pin):
    """One backend's soak: returns (sessions, bytes verified, slopes or None, failures)."""
    d = work / backend
    d.mkdir(parents=True, exist_ok=True)
    argv = [str(harness.RELEASE / "echo-server"), "-l", "127.0.0.1:0", "--backend", backend,
            "--zero-copy", o["zero_copy"]]
    run = harness.Running(harness.Server("echo-server", backend, argv), d / "server.err", pin,
                          collect=True)
    if run.start(timeout=10):
        tail = run.stderr_tail(3)
        print(f"soak: {backend}: server did not start; stderr: {tail}")
        return 0, 0, None, [f"server announced no address in 10 s"
                            f"{f' (stderr: {run.stderr_tail()})' if run.stderr_tail() else ''}"]
    try:
        fd_idle, rss_idle = idle_baseline(run)
        sampler = Sampler(run, d / "samples")
        sampler.start()
        t0 = time.monotonic()
        rc, fail = run_chaos(run, o, load_s, seed, d, pin)
        sampler.stop_flag.set()
        sampler.join(3)
        fd_after, rss_after, settled, why = after_load(run, fd_idle)
        fail += why + shutdown(run)
    finally:
        (d / "server.out").write_text("\n".join(run.stdout_lines()) + "\n")
        run.stop()
    sessions, verified, why = chaos_verdict(d, rc)
    fail += why
    steady = ramped(sampler.samples, t0 + load_s * WARMUP_FRAC, t0 + load_s)
    n, fd, rss = trend(steady, t0, t0 + load_s)
    slopes = None
    if n >= 6:
        fail += trend_failures(o, fd, rss)
        slopes = (fd[0], rss[0])
        shown = f"fd slope {fd[0]:+.1f}/min, RSS slope {kib(rss[0])}/min"
    else:
        shown = f"no trend ({n} samples)"
    after = f" in {settled:.1f} s" if settled is not None else ""
    print(f"soak: {backend:<6} {sessions} sessions, {verified / 1e9:.2f} GB verified; fds idle "
          f"{fd_idle}, load median {num(fd[3] if n else None)}, after "
          f"{fd_after if fd_after is not None else '?'}{after}; RSS {rss_idle / 1024:.1f} -> "
          f"{(rss[3] if n else 0) / 1024:.1f} -> {rss_after / 1024:.1f} MiB; {shown}; "
          f"{'FAIL' if fail else 'ok'}", flush=True)
    return sessions, verified, slopes, fail


def build(o):
    if o["build"]:
        subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "echo-server", "-p",
                        "echo-bench"], cwd=harness.ROOT, check=True)
    for exe in ("echo-server", "echo-bench"):
        path = harness.RELEASE / exe
        if not os.access(path, os.X_OK):
            sys.exit(f"soak: {path} missing (build it, or drop --no-build)")


def soak(o, work):
    """Every backend in turn; prints the verdict and returns the exit status."""
    seed = o["seed"] or str(int(time.time()) * 1000 + random.randrange(1000))
    nb = len(o["backends"])
    load_s = max(3.0, o["minutes"] * 60 / nb - 2)
    pin = harness.can_pin()
    print(f"soak: {' '.join(o['backends'])}; {load_s:.3f} s of chaos each, {o['connections']} "
          f"connections, --zero-copy {o['zero_copy']}, seed {seed}", flush=True)
    started = time.monotonic()
    failures, sessions, verified, worst = [], 0, 0, None
    for backend in o["backends"]:
        s, v, slopes, fail = soak_backend(backend, o, load_s, seed, work, pin)
        sessions, verified = sessions + s, verified + v
        failures += [f"{backend}: {f}" for f in fail]
        if slopes:
            worst = slopes if worst is None else (max(worst[0], slopes[0]),
                                                  max(worst[1], slopes[1]))
    if failures:
        print(f"soak: seed {seed}; logs in {work}")
        print("soak: FAIL " + "; ".join(failures))
        return 1
    shown = (f"fd slope {worst[0]:+.1f}/min, RSS slope {kib(worst[1])}/min (worst)"
             if worst else "no trend (too short)")
    print(f"soak: PASS {nb} backends, {(time.monotonic() - started) / 60:.1f} min, "
          f"{o['connections']} connections, {sessions} sessions, {verified / 1e9:.1f} GB "
          f"verified, {shown}")
    return 0


def main():
    try:
        o = parse_args(sys.argv[1:])
    except Usage as e:
        print(f"soak: {e} (see --help)", file=sys.stderr)
        return 2
    if not os.path.isdir("/proc/self/fd"):
        sys.exit("soak: needs /proc (Linux)")
    build(o)
    try:
        import resource
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        signal.signal(sig, lambda *_, code=code: sys.exit(code))
    work = Path(o["logs"]) if o["logs"] else Path(tempfile.mkdtemp(prefix="soak."))
    work.mkdir(parents=True, exist_ok=True)
    status = 1
    try:
        status = soak(o, work)
    finally:
        harness.cleanup()
        if status == 0 and not o["logs"]:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
