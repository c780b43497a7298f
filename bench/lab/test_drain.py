"""Half-close and drain across a lossy link: 8 MiB sent, the write side shut, all of it read
back; and SIGTERM to the server mid-transfer still echoes every byte it received."""
import os
import selectors
import socket
import time

from bench.lab import echo, netlab
from bench.lab.case import LabCase

SIZE = 8 << 20
PAYLOAD = os.urandom(SIZE)


def transfer(sock, on_progress=None, timeout=60):
    """Sends PAYLOAD, shuts the write side, reads until end of file. Returns (bytes sent,
    bytes received, how it ended: "eof" or the error). ``on_progress(sent)`` runs after each
    send."""
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    sent, got, view = 0, bytearray(), memoryview(PAYLOAD)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for _, mask in sel.select(1.0):
                if mask & selectors.EVENT_WRITE and sent < SIZE:
                    sent += sock.send(view[sent:sent + 65536])
                    if on_progress:
                        on_progress(sent)
                    if sent == SIZE:
                        sock.shutdown(socket.SHUT_WR)
                        sel.modify(sock, selectors.EVENT_READ)
                if mask & selectors.EVENT_READ:
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        return sent, got, "eof"
                    got += chunk
        return sent, got, f"no end of file within {timeout} s"
    except OSError as e:
        return sent, got, f"{e.strerror or e}"
    finally:
        sel.close()


class HalfCloseAndDrain(LabCase):
    def setup_hosts(self, *server_args, lab=None):
        lab = lab or self.lab
        server = lab.host("server")
        client = lab.host("client", loss=2)
        return echo.Server(server, *server_args), client.connect(server, echo.PORT)

    def test_half_close_8mib_across_loss(self):
        server, sock = self.setup_hosts()
        start = time.monotonic()
        sent, got, end = transfer(sock)
        took = time.monotonic() - start
        self.figure(f"half-close across 2% loss: sent {sent:,}, received {len(got):,}, {end}, "
                    f"{took:.2f} s")
        self.assertEqual(end, "eof")
        self.assertEqual(sent, SIZE)
        self.assertTrue(got == PAYLOAD, "the echo differs from what was sent")

    def test_sigterm_mid_transfer_echoes_all_received(self):
        for mode in ("off", "auto", "always"):
            with self.subTest(zero_copy=mode), netlab.Lab(f"drain{mode}") as lab:
                self.sigterm_mid_transfer(mode, lab)

    def sigterm_mid_transfer(self, mode, lab):
        """What the server read before it stopped reading must all come back, ending in a
        clean end of file; the server's summary counts exactly what the client received.
        (Bytes the server never read are not its to echo: it may stop reading at the signal.)"""
        server, sock = self.setup_hosts("--shutdown-timeout", "20", "--zero-copy", mode, lab=lab)
        signalled = []

        def progress(sent):
            if not signalled and sent >= SIZE * 3 // 10:
                server.signal()
                signalled.append(sent)

        sent, got, end = transfer(sock, progress)
        sock.close()
        rc, summary = server.finish()
        self.figure(f"--zero-copy {mode}: SIGTERM at {signalled[0]:,} bytes sent: client sent {sent:,}, received "
                    f"{len(got):,} ({end}); server exit {rc}, summary {summary}")
        self.assertTrue(PAYLOAD.startswith(got), "what came back is not a prefix of what was sent")
        self.assertEqual(rc, 0)
        self.assertIsNotNone(summary, "no summary line")
        self.assertEqual(summary["bytes"], len(got),
                         "the summary's bytes echoed differ from what the client received")
        self.assertEqual(end, "eof", "the connection did not end with a clean end of file")
        self.assertGreater(len(got), 0)
