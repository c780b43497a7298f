"""echo-server and echo-bench inside lab hosts: start a server (bench/harness.py reads its
``listening`` line), read its metrics and summary, run echo-bench with ``--json``."""
import json
import os
import re
import signal
import subprocess
import tempfile

from bench import harness

ECHO_SERVER = harness.RELEASE / "echo-server"
ECHO_BENCH = harness.RELEASE / "echo-bench"
PORT = 7000
UDP_PORT = 7001
METRICS = "127.0.0.1:9100"
LOG_DIR = tempfile.mkdtemp(prefix="eslab-logs-")


class Server:
    """echo-server in ``host``: TCP and UDP on every address of the host, metrics on its
    loopback. ``args``: more flags."""

    def __init__(self, host, *args):
        self.host = host
        listen = ["-l", f"[::]:{PORT}", "-u", f"[::]:{UDP_PORT}"]
        if host.ipv4:
            listen += ["-l", f"0.0.0.0:{PORT}", "-u", f"0.0.0.0:{UDP_PORT}"]
        argv = host.argv([str(ECHO_SERVER), *listen, "--metrics", METRICS, *args])
        log = os.path.join(LOG_DIR, f"{host.ns}-{len(host.lab.servers)}.log")
        self.run = harness.Running(harness.Server("echo-server", "lab", argv), log)
        why = self.run.start()
        if why:
            raise RuntimeError(f"echo-server did not start in {host.ns}: {why}")
        host.lab.servers.append(self.run)

    @property
    def pid(self):
        return self.run.pid

    def metrics(self):
        """The metrics endpoint's samples, summed over labels: {name: value}; and by label
        under ``name{labels}``."""
        s = self.host.socket()
        s.settimeout(5)
        ip, port = METRICS.rsplit(":", 1)
        s.connect((ip, int(port)))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        out = {}
        for line in data.decode().split("\r\n\r\n", 1)[-1].splitlines():
            m = re.match(r"^(\w+)(\{[^}]*\})? (\S+)$", line)
            if m:
                value = float(m.group(3))
                out[m.group(1)] = out.get(m.group(1), 0) + value
                if m.group(2):
                    key = m.group(1) + m.group(2)
                    out[key] = out.get(key, 0) + value
        return out

    def open_connections(self):
        return self.metrics().get("echo_connections_open", 0)

    def signal(self, sig=signal.SIGTERM):
        self.signalled = True
        os.kill(self.pid, sig)

    def finish(self, timeout=30):
        """SIGTERM (unless sent already), wait for the exit; returns (exit status, summary
        figures {"connections", "bytes", "datagrams"} or None)."""
        if self.run.proc.poll() is None and not getattr(self, "signalled", False):
            self.signal()
        try:
            rc = self.run.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        out = self.run.proc.stdout.read().decode(errors="replace") if rc is not None else ""
        self.run.stop()
        if self.run in self.host.lab.servers:
            self.host.lab.servers.remove(self.run)
        m = re.search(r"summary: connections ([\d,]+), bytes echoed ([\d,]+), "
                      r"datagrams echoed ([\d,]+)", out)
        if not m:
            return rc, None
        nums = [int(g.replace(",", "")) for g in m.groups()]
        return rc, dict(zip(("connections", "bytes", "datagrams"), nums))


def bench_argv(target_host, *args, udp=False, family=None):
    port = UDP_PORT if udp else PORT
    return [str(ECHO_BENCH), "--json", *(["--udp"] if udp else []), *args,
            target_host.addr(port, family)]


def bench(host, target_host, *args, udp=False, family=None, timeout=120):
    """Runs echo-bench in ``host`` against ``target_host``; returns (exit status, report or
    None, stderr)."""
    rc, out, err = host.run(bench_argv(target_host, *args, udp=udp, family=family), timeout)
    return rc, report_of(out), err


def bench_many(pairs, timeout=120):
    """Runs echo-bench from several hosts at once: ``pairs`` is [(host, argv)]; returns a list
    of (exit status, report or None, stderr) in the same order."""
    procs = [h.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for h, argv in pairs]
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        results.append((p.returncode, report_of(out), err))
    return results


def report_of(out):
    """The last JSON line of echo-bench's stdout, or None."""
    for line in reversed(out.strip().splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    return None

