"""Hosts as network namespaces, joined by a router, with lossy, slow or narrow links.

Every host is a namespace ``eslab<pid>-<name>`` with one interface, ``eth0``, a veth pair whose
other end, ``h<i>``, sits in the router namespace ``eslab<pid>-router``. Host i has its own
subnets, 10.201.i.0/24 and fd00:e5:0:i::/64 (the host .2 / ::2, the router .1 / ::1), and the
router forwards between them, so a narrow link makes the router send ICMP "too big" as a real
one would. A link's properties sit on both of its ends:

- loss: the router's nftables table ``inet eslab`` drops a random share of the packets that enter
  and of those that leave the host's port (``numgen random mod 10000 < N drop``), so ``loss=2``
  loses 2 % each way;
- rate: a ``tbf`` qdisc on the host's ``eth0`` and on the router's ``h<i>``, with a small queue;
- mtu: set on both ends;
- cut: the same chain drops everything (no FIN, no RST reaches either side).

Everything the lab makes lives inside its namespaces, so deleting them removes every veth,
nftables table and qdisc; ``teardown`` also stops the lab's processes and closes the sockets it
opened (either would keep a namespace alive), and ``leftovers`` checks that nothing remains.
Needs root, iproute2 and nftables.
"""
import ctypes
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

PREFIX = "eslab"
NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_created = {"namespaces": 0, "veth pairs": 0, "nftables tables": 0, "qdiscs": 0}
_inodes = set()  # every namespace this run made, by inode: what `leftovers` looks for


class LabError(Exception):
    """A lab command failed: the command and its stderr."""


def sh(argv, check=True, timeout=30):
    """Runs a command (no shell); returns its stdout. Raises LabError with stderr on failure."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LabError(f"{' '.join(argv)}: {e}") from None
    if check and r.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {r.stderr.strip() or f'exit {r.returncode}'}")
    return r.stdout


def run_prefix(pid=None):
    """Names of this run's objects start with this: ``eslab<pid>-``."""
    return f"{PREFIX}{os.getpid() if pid is None else pid}-"


def in_netns(ns, fn, *args):
    """Calls ``fn(*args)`` on a thread that entered namespace ``ns``; returns its result.

    Sockets keep the namespace they were made in, so a socket made here talks from that host
    even when used on the main thread afterwards."""
    out = {}

    def target():
        try:
            fd = os.open(NETNS_DIR / ns, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {ns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            out["value"] = fn(*args)
        except BaseException as e:  # handed to the caller's thread
            out["error"] = e

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def unavailable():
    """None if namespaces can be made here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool, pkg in (("ip", "iproute2"), ("nft", "nftables"), ("tc", "iproute2")):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            return f"{tool} not found (Debian package {pkg})"
    probe = f"{run_prefix()}probe"
    try:
        sh(["ip", "netns", "add", probe])
        sh(["ip", "netns", "exec", probe, "nft", "add", "table", "inet", "probe"])
    except LabError as e:
        return f"cannot make a network namespace with nftables: {e}"
    finally:
        sh(["ip", "netns", "del", probe], check=False)
    return None


def qdisc_kinds():
    """Which of the delay/reorder and pacing qdiscs this kernel has: {"netem": bool, "fq": bool}."""
    probe = f"{run_prefix()}qdisc"
    kinds = {}
    try:
        sh(["ip", "netns", "add", probe])
        sh(["ip", "-n", probe, "link", "add", "d0", "type", "veth", "peer", "name", "d1"])
        for kind, args in (("netem", ["delay", "1ms"]), ("fq", [])):
            r = subprocess.run(["tc", "-n", probe, "qdisc", "add", "dev", "d0", "root", kind, *args],
                               capture_output=True)
            kinds[kind] = r.returncode == 0
            subprocess.run(["tc", "-n", probe, "qdisc", "del", "dev", "d0", "root"],
                           capture_output=True)
    finally:
        sh(["ip", "netns", "del", probe], check=False)
    return kinds


def _lab_namespaces():
    out = sh(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


def _kill_inside(ns):
    """SIGKILLs every process still inside namespace ``ns``, by pid; returns how many."""
    pids = [int(p) for p in sh(["ip", "netns", "pids", ns], check=False).split()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


def remove_stale():
    """Deletes namespaces left by earlier lab runs that died (SIGKILL, power loss): names
    ``eslab<pid>-...`` whose pid is gone or is no longer a lab run. Returns their names."""
    removed = []
    for ns in _lab_namespaces():
        m = re.match(rf"{PREFIX}(\d+)-", ns)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            alive = b"bench.lab" in Path(f"/proc/{m.group(1)}/cmdline").read_bytes()
        except OSError:
            alive = False
        if not alive:
            _kill_inside(ns)
            sh(["ip", "netns", "del", ns], check=False)
            removed.append(ns)
    return removed


class Host:
    """One host: its namespace, its addresses (``ipv4`` is None on a v6-only host), its link."""

    def __init__(self, lab, index, name, v6only):
        self.lab = lab
        self.index = index
        self.name = name
        self.ns = lab.prefix + name
        self.port = f"h{index}"
        self.ipv4 = None if v6only else f"10.201.{index}.2"
        self.ipv6 = f"fd00:e5:0:{index:x}::2"
        self.loss = 0.0

    def addr(self, port, family=None):
        """``IP:PORT`` (IPv4 when the host has it, unless family is AF_INET6) or ``[V6]:PORT``."""
        if self.ipv4 and family != socket.AF_INET6:
            return f"{self.ipv4}:{port}"
        return f"[{self.ipv6}]:{port}"

    def sockaddr(self, port, family=None):
        if self.ipv4 and family != socket.AF_INET6:
            return socket.AF_INET, (self.ipv4, port)
        return socket.AF_INET6, (self.ipv6, port)

    def socket(self, family=socket.AF_INET, kind=socket.SOCK_STREAM):
        """A socket in this host; the lab closes it at teardown if the test did not."""
        s = in_netns(self.ns, socket.socket, family, kind)
        self.lab.sockets.append(s)
        return s

    def connect(self, target, port, timeout=10.0):
        """A TCP connection from this host to ``target`` (a Host) on ``port``."""
        family, sa = target.sockaddr(port, None if self.ipv4 else socket.AF_INET6)
        s = self.socket(family)
        s.settimeout(timeout)
        s.connect(sa)
        return s

    def argv(self, argv):
        return ["ip", "netns", "exec", self.ns, *argv]

    def popen(self, argv, **kw):
        """Starts ``argv`` inside this host, in a process group of its own; tracked by the lab."""
        p = subprocess.Popen(self.argv(argv), start_new_session=True, **kw)
        self.lab.procs.append(p)
        return p

    def run(self, argv, timeout=60):
        """Runs ``argv`` inside this host; returns (exit status, stdout, stderr)."""
        p = self.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(p)
            out, err = p.communicate()
            err += f"\n(killed after {timeout} s)"
        return p.returncode, out, err

    def set_loss(self, percent):
        """Drops ``percent`` % of the packets each way on this host's link (0 = none)."""
        self.loss = percent
        self._rules([] if percent <= 0 else [f"numgen random mod 10000 < {round(percent * 100)} drop"])

    def cut(self):
        """Drops every packet on this host's link, both ways: the peer vanishes."""
        self._rules(["drop"])

    def restore(self):
        """Undoes ``cut``: the link is back to its configured loss."""
        self.set_loss(self.loss)

    def _rules(self, rules):
        chain = f"inet eslab {self.port}"
        script = f"flush chain {chain}\n" + "".join(f"add rule {chain} {r}\n" for r in rules)
        self.lab.nft(script)


class Lab:
    """A router namespace and the hosts added to it; a context manager that tears all down."""

    _open = []

    def __init__(self, tag="lab"):
        self.prefix = f"{run_prefix()}{tag}-"
        self.router = self.prefix + "router"
        self.hosts = []
        self.procs = []
        self.sockets = []
        self.servers = []

    def __enter__(self):
        Lab._open.append(self)
        try:
            self._add_ns(self.router)
            sh(["ip", "netns", "exec", self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1"])
            self.nft("add table inet eslab\n"
                     "add chain inet eslab forward "
                     "{ type filter hook forward priority 0; policy accept; }\n")
            _created["nftables tables"] += 1
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc):
        self.teardown()
        return False

    def nft(self, script):
        p = subprocess.run(["ip", "netns", "exec", self.router, "nft", "-f", "-"], input=script,
                           capture_output=True, text=True)
        if p.returncode:
            raise LabError(f"nft in {self.router}: {p.stderr.strip()}\n{script}")

    def _add_ns(self, ns):
        sh(["ip", "netns", "add", ns])
        _created["namespaces"] += 1
        _inodes.add(os.stat(NETNS_DIR / ns).st_ino)
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])

    def host(self, name, loss=0.0, rate=None, mtu=1500, v6only=False, netem=None):
        """Adds a host. ``rate``: bits/s of its link each way (a tbf qdisc with a small queue,
        about 20 ms at that rate); ``mtu``: of both link ends; ``v6only``: no IPv4 address;
        ``netem``: arguments of a netem qdisc on both ends (delay, reorder), where the kernel
        has netem (see ``qdisc_kinds``)."""
        h = Host(self, len(self.hosts) + 1, name, v6only)
        self.hosts.append(h)
        self._add_ns(h.ns)
        sh(["ip", "link", "add", "eth0", "netns", h.ns, "type", "veth",
            "peer", "name", h.port, "netns", self.router])
        _created["veth pairs"] += 1
        for ns, dev, me, gw in ((h.ns, "eth0", 2, 1), (self.router, h.port, 1, None)):
            # One wire packet per skb (no GSO super-packets): loss and the shaper then act on
            # packets as a real link would.
            sh(["ip", "-n", ns, "link", "set", dev, "mtu", str(mtu), "gso_max_segs", "1", "up"])
            if h.ipv4:
                sh(["ip", "-n", ns, "addr", "add", f"10.201.{h.index}.{me}/24", "dev", dev])
            sh(["ip", "-n", ns, "addr", "add", f"fd00:e5:0:{h.index:x}::{me}/64", "dev", dev,
                "nodad"])
            if rate:
                self._shape(ns, dev, rate)
            elif netem:
                sh(["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "netem", *netem.split()])
                _created["qdiscs"] += 1
        if h.ipv4:
            sh(["ip", "-n", h.ns, "route", "add", "default", "via", f"10.201.{h.index}.1"])
        sh(["ip", "-n", h.ns, "-6", "route", "add", "default", "via", f"fd00:e5:0:{h.index:x}::1"])
        self.nft(f"add chain inet eslab {h.port}\n"
                 f"add rule inet eslab forward iifname {h.port} jump {h.port}\n"
                 f"add rule inet eslab forward oifname {h.port} jump {h.port}\n")
        h.set_loss(loss)
        return h

    @staticmethod
    def _shape(ns, dev, rate):
        # Queue: about 20 ms at the rate, at least 4 full packets; burst: 2 packets.
        limit = max(rate * 0.020 / 8, 6000)
        sh(["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", f"{rate}bit",
            "burst", "3028", "limit", str(int(limit))])
        _created["qdiscs"] += 1

    def teardown(self):
        """Stops the lab's servers and processes, closes its sockets, deletes its namespaces.
        Safe to call twice. Returns the pids that had to be killed inside the namespaces."""
        for server in self.servers:
            server.stop()
        self.servers.clear()
        for p in self.procs:
            _stop(p)
        self.procs.clear()
        for s in self.sockets:
            s.close()
        self.sockets.clear()
        stray = 0
        for ns in [h.ns for h in self.hosts] + [self.router]:
            if (NETNS_DIR / ns).exists():
                stray += _kill_inside(ns)
                sh(["ip", "netns", "del", ns], check=False)
        if self in Lab._open:
            Lab._open.remove(self)
        return stray


def _stop(p):
    """SIGTERM to the process group, up to 5 s, then SIGKILL."""
    if p.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def teardown_all():
    """Tears down every lab still open (atexit, signals)."""
    for lab in list(Lab._open):
        lab.teardown()


def created():
    return dict(_created)


def leftovers():
    """What this run left behind: namespaces still named, processes still inside one of the
    run's namespaces, links or nftables tables in the root namespace named with the prefix.
    A list of findings; empty when clean."""
    found = [f"namespace {ns}" for ns in _lab_namespaces() if ns.startswith(run_prefix())]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ino = os.stat(f"/proc/{pid}/ns/net").st_ino
        except OSError:
            continue
        if ino in _inodes:
            found.append(f"process {pid} in a lab namespace")
    for line in sh(["ip", "-o", "link"], check=False).splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(PREFIX):
            found.append(f"link {name}")
    for line in sh(["nft", "list", "tables"], check=False).splitlines():
        if line.split()[-1:] and line.split()[-1].startswith(PREFIX):
            found.append(f"nftables {line.strip()}")
    return found


def wait_for(predicate, timeout, step=0.05):
    """Polls ``predicate`` until it returns something true or ``timeout`` s pass; returns
    (value, seconds waited)."""
    start = time.monotonic()
    while True:
        value = predicate()
        elapsed = time.monotonic() - start
        if value or elapsed >= timeout:
            return value, elapsed
        time.sleep(step)
