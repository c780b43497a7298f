"""Shared pieces of the benchmark scripts (compare, ab, idle_rss, soak): the servers compared,
starting one pinned to a core and reading its `listening tcp ADDR` line, stopping it, running
echo-bench against it, and reading /proc. The one place in bench/ that does each of these.

Python 3.11 standard library only.
"""
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
RELEASE = (RELEASE if RELEASE.is_absolute() else ROOT / RELEASE) / "release"
VENV_PY = ROOT / "bench" / ".venv" / "bin" / "python"
SERVER_CORE = "0"
CLIENT_CORE = "1"


@dataclass
class Server:
    """One implementation under test: a name, a backend label, and how to start it."""

    name: str
    backend: str
    argv: list
    python: bool = False
    needs: str = ""  # a Python module that must import, else the server is skipped
    skip_reason: str = field(default="", compare=False)

    @property
    def label(self):
        return self.name if self.backend == "-" else f"{self.name} ({self.backend})"


def can_pin():
    """Whether servers and load can be pinned apart: taskset is installed and CPU 1 exists."""
    if not shutil.which("taskset"):
        return False
    return subprocess.run(["taskset", "-c", CLIENT_CORE, "true"],
                          capture_output=True).returncode == 0


def pinned(core, argv, pin=True):
    """argv under `taskset -c core`, or as it is when pin is False."""
    return (["taskset", "-c", core] if pin else []) + list(argv)


def python_exe():
    return str(VENV_PY) if VENV_PY.exists() else "python3"


def all_servers():
    """Every implementation, ours first, then the peers, slow ones last."""
    es = str(RELEASE / "echo-server")
    py = python_exe()
    pydir = ROOT / "bench" / "python"
    # -q: warnings and errors only, so a log file left in logs/ means something happened (the
    # normal shutdown line is at info level).
    servers = [
        Server("echo-server", b, [es, "-q", "-l", "127.0.0.1:0", "--backend", b])
        for b in ("epoll", "poll", "select")
    ]
    # The default is --zero-copy auto; this row shows what the splice path is worth, and the
    # C loop is the plain copying reference (bench/peers/c/epoll_echo.c, built by compare.sh).
    servers += [
        Server("echo-server", "epoll, zero-copy off",
               [es, "-q", "-l", "127.0.0.1:0", "--backend", "epoll", "--zero-copy", "off"]),
        Server("c-epoll", "-", [str(RELEASE / "c-epoll-echo"), "127.0.0.1:0"]),
    ]
    servers += [
        Server("tokio-ct", "-", [str(RELEASE / "tokio-ct"), "127.0.0.1:0"]),
        Server("tokio-mt", "-", [str(RELEASE / "tokio-mt"), "127.0.0.1:0"]),
        Server("mio", "-", [str(RELEASE / "mio-echo"), "127.0.0.1:0"]),
        Server("python", "select", [py, str(pydir / "select_echo.py"), "127.0.0.1:0"], True),
        Server("python", "asyncio", [py, str(pydir / "asyncio_echo.py"), "127.0.0.1:0"], True),
        Server("python", "uvloop", [py, str(pydir / "asyncio_echo.py"), "--uvloop",
                                    "127.0.0.1:0"], True, needs="uvloop"),
    ]
    for s in servers:
        exe = Path(s.argv[0])
        if exe.is_absolute() and not exe.exists():
            s.skip_reason = f"{exe.name} not built"
        elif s.needs:
            probe = subprocess.run([py, "-c", f"import {s.needs}"], capture_output=True)
            if probe.returncode != 0:
                s.skip_reason = f"{s.needs} not installed"
    return servers


_live = set()


def cleanup():
    """Stops every server still running (for exits through an exception or a signal)."""
    for run in list(_live):
        run.stop()


class Running:
    """A started server: its process, its address, its stdout lines and its stderr log file."""

    def __init__(self, server, log_path, pin=True, collect=False):
        self.server = server
        self.log_path = log_path
        self.pin = pin
        self.collect = collect
        self.addr = None
        self.proc = None
        self._out = b""
        self._reader = None

    def start(self, timeout=15.0):
        """Starts the server (pinned to SERVER_CORE unless pin is False) and reads its first
        `listening tcp ADDR` line; returns None or a reason it did not start. With collect,
        a thread keeps the rest of its stdout (see stdout_lines); without, the rest stays in
        the pipe (self.proc.stdout) for the caller."""
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            pinned(SERVER_CORE, self.server.argv, self.pin),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log,
            start_new_session=True,
        )
        _live.add(self)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        m = None
        while m is None and time.monotonic() < deadline:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                break
            self._out += chunk
            m = re.search(rb"^listening tcp (\S+)\n", self._out, re.M)
        sel.close()
        if not m:
            self.stop()
            return f"no 'listening tcp' line ({self.stderr_tail() or 'no output'})"
        self.addr = m.group(1).decode()
        if self.collect:
            self._reader = threading.Thread(target=self._drain, daemon=True)
            self._reader.start()
        return None

    def _drain(self):
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self._out += chunk

    def stdout_lines(self):
        """Every line the server has printed on stdout so far (`listening`, `summary:` ...);
        without collect, only those read while waiting for the address."""
        return self._out.decode(errors="replace").splitlines()

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM, up to 10 s to exit, then SIGKILL to the whole process group."""
        if self.proc is None:
            return None
        _live.discard(self)
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
            except ProcessLookupError:
                pass
        if self._reader is not None:
            self._reader.join(2)  # the pipe's end, once the server and its group are gone
        if not self.proc.stdout.closed:
            self.proc.stdout.close()
        self.log.close()
        try:
            if Path(self.log_path).stat().st_size == 0:
                Path(self.log_path).unlink()
        except OSError:
            pass
        return self.proc.returncode

    def stderr_tail(self, n=1):
        try:
            self.log.flush()
            lines = Path(self.log_path).read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " / ".join(lines[-n:])[-300:]


def proc_status(pid, key):
    """A /proc/PID/status field in kB (VmRSS, VmHWM), or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def fd_count(pid):
    """How many descriptors the process has open, or None if it is gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def socket_fds(pid):
    """How many sockets the process has open (accepted connections plus listeners)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    n = 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def cpu_times(line="cpu"):
    """One line of /proc/stat ("cpu" for all CPUs, "cpu0" ...) as a dict of clock ticks."""
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    with open("/proc/stat") as f:
        for row in f:
            parts = row.split()
            if parts[0] == line:
                return dict(zip(names, (int(x) for x in parts[1:9])))
    return dict.fromkeys(names, 0)


def task_busy(t):
    """Ticks charged to tasks (user, nice, system) and stolen by the hypervisor; softirq time
    is charged to no task, so it is counted apart."""
    return t["user"] + t["nice"] + t["system"] + t["steal"]


def cpu_ticks(pid):
    """utime + stime of a process in clock ticks, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def echo_bench(run, bench=None, conns=50, size=64, pipeline=1, duration=2, warmup=1,
               rate=None, pin=True, timeout=None):
    """Runs `echo-bench --json --server-pid PID` against the started server `run` (pinned to
    CLIENT_CORE); returns (its JSON report or None, exit status or None if killed, stderr)."""
    cmd = pinned(CLIENT_CORE, [str(bench or RELEASE / "echo-bench"), "--json", "--server-pid",
                               str(run.pid), "-c", str(conns), "-s", str(size), "-p",
                               str(pipeline), "-d", str(duration), "--warmup", str(warmup)], pin)
    if rate:
        cmd += ["-r", str(rate)]
    cmd.append(run.addr)
    limit = timeout or warmup + duration + 60
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return None, None, f"echo-bench did not finish in {limit:.0f} s"
    return last_json(out.stdout), out.returncode, out.stderr


def last_json(text):
    """The last line of text that parses as a JSON object, or None.

    >>> last_json('warming up\\n{"a": 1}\\n{"a": 2}\\n')
    {'a': 2}
    >>> last_json("no report") is None
    True
    """
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def median(xs):
    """The median of the values that are not None; None when there are none.

    >>> median([3, 1, 2]), median([4, None, 1, 2, 3]), median([None])
    (2, 2.5, None)
    """
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def machine():
    """One line naming the machine: CPU model, cores, kernel."""
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        pipe_max = f", pipe-max-size {int(open('/proc/sys/fs/pipe-max-size').read())} B"
    except (OSError, ValueError):
        pipe_max = ""
    return f"{model}, {os.cpu_count()} cores, Linux {os.uname().release}{pipe_max}"
