"""Half-close and drain across a lossy link: 8 MiB sent, the write side shut, all of it read
back; and SIGTERM to the server mid-transfer still echoes every byte it received, to fast
and to slow readers, on every --zero-copy path."""
import os
import selectors
import socket
import time

from bench.lab import echo, netlab
from bench.lab.case import LabCase

SIZE = 8 << 20
PAYLOAD = os.urandom(SIZE)


class Flow:
    """One connection's transfer: bytes sent, bytes received (each checked against PAYLOAD
    at its offset as it comes), and how it ended."""

    def __init__(self, sock):
        self.sock, self.sent, self.got, self.same, self.end = sock, 0, 0, True, None
        sock.setblocking(False)


def transfer(socks, on_progress=None, timeout=60, slow=False):
    """Sends PAYLOAD on each socket, shuts its write side, reads until end of file. Returns a
    Flow per socket; ``end`` is "eof" or the error. ``on_progress(sent)`` runs after each
    send with the total sent on all. ``slow``: each read takes 4 KiB, and each round of
    the loop ends with a 1 ms pause (the readers' pace), so the server holds echo it
    cannot send yet."""
    flows = [Flow(s) for s in socks]
    sel = selectors.DefaultSelector()
    for f in flows:
        sel.register(f.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, f)
    view, total = memoryview(PAYLOAD), 0
    deadline = time.monotonic() + timeout
    while sel.get_map() and time.monotonic() < deadline:
        for key, mask in sel.select(1.0):
            f = key.data
            try:
                if mask & selectors.EVENT_WRITE and f.sent < SIZE:
                    n = f.sock.send(view[f.sent:f.sent + 65536])
                    f.sent, total = f.sent + n, total + n
                    if on_progress:
                        on_progress(total)
                    if f.sent == SIZE:
                        f.sock.shutdown(socket.SHUT_WR)
                        sel.modify(f.sock, selectors.EVENT_READ, f)
                if mask & selectors.EVENT_READ:
                    chunk = f.sock.recv(4096 if slow else 1 << 20)
                    if chunk:
                        f.same &= view[f.got:f.got + len(chunk)] == chunk
                        f.got += len(chunk)
                    else:
                        f.end = "eof"
            except OSError as e:
                f.end = e.strerror or str(e)
            if f.end:
                sel.unregister(f.sock)
        if slow:
            time.sleep(0.001)
    for f in flows:
        f.end = f.end or f"no end of file within {timeout} s"
    sel.close()
    return flows


def connect(client, server, slow):
    """A connection from ``client`` to the echo port of ``server``; a slow reader's has a
    16 KiB receive buffer (set before connecting, so the window is small from the start)."""
    if not slow:
        return client.connect(server, echo.PORT)
    family, sa = server.sockaddr(echo.PORT, None if client.ipv4 else socket.AF_INET6)
    s = client.socket(family)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.settimeout(10.0)
    s.connect(sa)
    return s


class HalfCloseAndDrain(LabCase):
    def setup_hosts(self, *server_args, lab=None, connections=1, slow=False):
        lab = lab or self.lab
        server = lab.host("server")
        client = lab.host("client", loss=2)
        running = echo.Server(server, *server_args)
        return running, [connect(client, server, slow) for _ in range(connections)]

    def test_half_close_8mib_across_loss(self):
        server, socks = self.setup_hosts()
        start = time.monotonic()
        [f] = transfer(socks)
        took = time.monotonic() - start
        self.figure(f"half-close across 2% loss: sent {f.sent:,}, received {f.got:,}, {f.end}, "
                    f"{took:.2f} s")
        self.assertEqual(f.end, "eof")
        self.assertEqual(f.sent, SIZE)
        self.assertEqual(f.got, SIZE)
        self.assertTrue(f.same, "the echo differs from what was sent")

    def test_sigterm_mid_transfer_echoes_all_received(self):
        for mode in ("off", "auto", "always"):
            with self.subTest(zero_copy=mode), netlab.Lab(f"drain{mode}") as lab:
                self.sigterm_mid_transfer(mode, lab, 1)

    def test_sigterm_mid_transfer_20_connections(self):
        for mode in ("off", "auto", "always"):
            with self.subTest(zero_copy=mode), netlab.Lab(f"drain20{mode}") as lab:
                self.sigterm_mid_transfer(mode, lab, 20)

    def test_sigterm_mid_transfer_20_slow_readers(self):
        for mode in ("off", "auto", "always"):
            with self.subTest(zero_copy=mode), netlab.Lab(f"drainslow{mode}") as lab:
                self.sigterm_mid_transfer(mode, lab, 20, slow=True)

    def sigterm_mid_transfer(self, mode, lab, connections, slow=False):
        """What the server read before it stopped reading must all come back, ending in a
        clean end of file; the server's summary counts exactly what the clients received.
        (Bytes the server never read are not its to echo: it may stop reading at the signal.)"""
        server, socks = self.setup_hosts("--shutdown-timeout", "20", "--zero-copy", mode,
                                         lab=lab, connections=connections, slow=slow)
        signalled = []

        def progress(sent):
            if not signalled and sent >= connections * SIZE * 3 // 10:
                server.signal()
                signalled.append(sent)

        flows = transfer(socks, progress, slow=slow)
        for s in socks:
            s.close()
        rc, summary = server.finish()
        got = sum(f.got for f in flows)
        ends = sorted({f.end for f in flows})
        readers = "slow readers" if slow else "fast readers"
        self.figure(f"{connections} x 8 MiB, {readers}, --zero-copy {mode}: SIGTERM at {signalled[0]:,} "
                    f"bytes sent: clients sent {sum(f.sent for f in flows):,}, received "
                    f"{got:,} ({', '.join(ends)}); server exit {rc}, summary {summary}")
        self.assertTrue(all(f.same for f in flows), "an echo differs from what was sent")
        self.assertEqual(rc, 0)
        self.assertIsNotNone(summary, "no summary line")
        self.assertEqual(summary["bytes"], got,
                         "the summary's bytes echoed differ from what the clients received")
        self.assertEqual(ends, ["eof"], "a connection did not end with a clean end of file")
        self.assertGreater(got, 0)
