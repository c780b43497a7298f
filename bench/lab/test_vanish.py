"""Vanished peers: a client host holding 100 connections has its link cut (every packet
dropped: no FIN, no RST). The server must free every slot within the time its settings
promise, and nothing else may stay behind: descriptors, memory, per-address counts."""
import time

from bench import harness
from bench.lab import echo
from bench.lab.case import LabCase
from bench.lab.netlab import wait_for

CONNECTIONS = 100


def hold(client, server, n=CONNECTIONS):
    """Opens n connections from client, each echoing one byte; returns them and when the
    last byte came back (the last time the server heard from any of them)."""
    socks = []
    for i in range(n):
        s = client.connect(server, echo.PORT)
        s.sendall(b"x")
        if s.recv(1) != b"x":
            raise AssertionError(f"connection {i}: no echo")
        socks.append(s)
    return socks, time.monotonic()


class VanishedPeers(LabCase):
    def reap(self, *server_args, promise, floor):
        """Holds 100 connections, cuts the link, waits for every slot to come back. Checks
        the time against [floor, promise] seconds after the last byte, then that descriptors,
        memory and the per-address count are back."""
        server_host = self.lab.host("server")
        client = self.lab.host("client")
        server = echo.Server(server_host, "--max-per-ip", str(CONNECTIONS), *server_args)
        fds0 = harness.socket_fds(server.pid)
        socks, last = hold(client, server_host)
        self.assertEqual(server.open_connections(), CONNECTIONS)
        rss_held = harness.proc_status(server.pid, "VmRSS")
        client.cut()
        cut_at = time.monotonic()
        _, _ = wait_for(lambda: server.open_connections() == 0, promise + 10, step=0.1)
        freed = time.monotonic() - last
        self.figure(f"{' '.join(server_args)}: all {CONNECTIONS} slots back {freed:.2f} s after "
                    f"the last byte ({time.monotonic() - cut_at:.2f} s after the cut); promised "
                    f"within {promise} s")
        self.assertEqual(server.open_connections(), 0, f"slots still held after {freed:.1f} s")
        self.assertLessEqual(freed, promise + 1.5, "slots came back later than promised")
        self.assertGreaterEqual(freed, floor, "slots came back before the rule allows")
        self.assertFds(server, fds0)
        for s in socks:
            s.close()
        # The per-address count came back too: the same host gets all its slots again.
        client.restore()
        socks, _ = hold(client, server_host)
        # /metrics is rendered at most every 100 ms: wait for the count, with a deadline.
        wait_for(lambda: server.open_connections() == CONNECTIONS, 5, step=0.1)
        self.assertEqual(server.open_connections(), CONNECTIONS)
        refused = server.metrics()['echo_connections_refused_total{worker="0",reason="per_ip"}']
        self.assertEqual(refused, 0, "the vanished connections still counted against the host")
        for s in socks:
            s.close()
        wait_for(lambda: server.open_connections() == 0, 10, step=0.1)
        self.assertFds(server, fds0)
        rss_after = harness.proc_status(server.pid, "VmRSS")
        self.figure(f"server RSS {rss_held:,} kB holding {CONNECTIONS}, {rss_after:,} kB after "
                    f"a second round; descriptors back to {fds0}")
        self.assertLess(rss_after - rss_held, 2048, "memory grew by more than 2 MiB")

    def assertFds(self, server, fds0):
        """The server's sockets are back to fds0 (the metrics endpoint may take a moment to
        close the connection that just read it)."""
        fds, _ = wait_for(lambda: harness.socket_fds(server.pid) == fds0, 5)
        self.assertTrue(fds, f"descriptors left open: {harness.socket_fds(server.pid)} sockets, "
                             f"{fds0} before")

    def test_keepalive_2s(self):
        # Probes after 2 s of silence, every max(2/6, 1) = 1 s, reset after 6 unanswered:
        # 2 + 6 x 1 = 8 s after the server last heard from the peer.
        self.reap("--tcp-keepalive", "2", promise=8, floor=7)

    def test_idle_timeout_3s_no_keepalive(self):
        self.reap("--tcp-keepalive", "0", "--idle-timeout", "3", promise=3, floor=3)
