"""Per-source limits with real, distinct source hosts: ``--max-per-ip`` and ``--udp-rate``."""
import socket
import time

from bench.lab import echo
from bench.lab.case import LabCase

CAP = 3
TRIES = 5
UDP_RATE = 100_000  # bytes/s per source
DATAGRAM = 1000


def served(sock):
    """Whether the server echoes on this connection (a refused one is closed at once)."""
    try:
        sock.sendall(b"ping")
        return sock.recv(4) == b"ping"
    except OSError:
        return False


class PerSourceLimits(LabCase):
    def test_max_per_ip_per_host(self):
        server_host = self.lab.host("server")
        clients = [self.lab.host(f"c{i}") for i in (1, 2, 3)]
        server = echo.Server(server_host, "--max-per-ip", str(CAP))
        held, counts = [], {}
        for c in clients:
            socks = [c.connect(server_host, echo.PORT, timeout=5) for _ in range(TRIES)]
            counts[c.name] = sum(served(s) for s in socks)
            held += socks
        m = server.metrics()
        refused = m['echo_connections_refused_total{worker="0",reason="per_ip"}']
        self.figure(f"--max-per-ip {CAP}, {TRIES} connections from each of 3 hosts: served "
                    f"{counts}, refused {refused:.0f}, open {m['echo_connections_open']:.0f}")
        self.assertEqual(counts, {c.name: CAP for c in clients})
        self.assertEqual(refused, 3 * (TRIES - CAP))
        self.assertEqual(m["echo_connections_open"], 3 * CAP)

    def test_udp_rate_per_host(self):
        """Two hosts each send 10 times the cap for 2 s: each gets its own bucket (full to
        start, one second's worth), so each is echoed between 2 and 3 seconds' worth."""
        server_host = self.lab.host("server")
        clients = [self.lab.host(f"c{i}") for i in (1, 2)]
        server = echo.Server(server_host, "--udp-rate", str(UDP_RATE))
        socks = []
        for c in clients:
            s = c.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect((server_host.ipv4, echo.UDP_PORT))
            s.setblocking(False)
            socks.append(s)
        got = flood(socks, seconds=2.0, per_second=10 * UDP_RATE // DATAGRAM)
        dropped = server.metrics()['echo_udp_dropped_total{worker="0",reason="rate"}']
        self.figure(f"--udp-rate {UDP_RATE:,} B/s, 2 hosts sending 1 MB/s each for 2 s: echoed "
                    f"{got} B per host (bound {2 * UDP_RATE:,} to {3 * UDP_RATE:,}); dropped "
                    f"for rate {dropped:.0f}")
        for n in got:
            self.assertGreaterEqual(n, 2 * UDP_RATE * 0.9)
            self.assertLessEqual(n, 3 * UDP_RATE + DATAGRAM)
        self.assertGreater(dropped, 0)


def flood(socks, seconds, per_second):
    """Sends per_second datagrams a second on each socket, paced, for ``seconds``; then
    collects echoes for 0.5 s more. Returns the bytes echoed to each."""
    got = [0] * len(socks)
    payload = b"x" * DATAGRAM
    start = time.monotonic()
    sent = 0
    while (now := time.monotonic()) < start + seconds + 0.5:
        due = min(int((now - start) * per_second), int(seconds * per_second))
        while sent < due:
            for s in socks:
                try:
                    s.send(payload)
                except BlockingIOError:
                    pass
            sent += 1
        for i, s in enumerate(socks):
            while True:
                try:
                    got[i] += len(s.recv(65536))
                except BlockingIOError:
                    break
        time.sleep(0.001)
    return got
