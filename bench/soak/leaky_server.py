#!/usr/bin/env python3
"""A deliberately faulty echo server for bench/soak/selftest.sh.

It speaks echo-server's command line as far as soak.sh uses it (-l ADDR, --backend NAME),
announces `listening tcp ADDR`, echoes over a level-triggered selector, and on SIGTERM
prints a `summary:` line and exits 0. The environment variable FAULT makes it misbehave,
so the self-test can check that soak.sh notices:

  none     a correct server
  fd       keeps a duplicate of one accepted socket in 20 (descriptor leak)
  rss      keeps 2 KiB per accepted connection (memory leak)
  corrupt  flips one byte in a thousand echo writes (data corruption)
  die      exits with status 3 after 5 seconds of serving
  exit     exits with status 1 on SIGTERM, without its summary
"""

import os
import selectors
import signal
import socket
import sys
import time


def main():
    fault = os.environ.get("FAULT", "none")
    addr = "127.0.0.1:0"
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg in ("-l", "--listen") and i + 1 < len(args):
            addr = args[i + 1]
    host, port = addr.rsplit(":", 1)

    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, int(port)))
    lsock.listen(1024)
    lsock.setblocking(False)
    print("listening tcp %s:%d" % lsock.getsockname(), flush=True)

    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ)
    rpipe, wpipe = os.pipe()
    os.set_blocking(wpipe, False)
    signal.set_wakeup_fd(wpipe)
    signal.signal(signal.SIGTERM, lambda *_: None)
    sel.register(rpipe, selectors.EVENT_READ)

    out = {}  # socket -> bytearray still to send
    kept = []  # what the fd and rss faults leak
    accepted = echoed = writes = 0
    started = time.monotonic()

    closing = set()  # sockets that sent EOF: drain, then close

    def close(sock):
        sel.unregister(sock)
        out.pop(sock, None)
        closing.discard(sock)
        sock.close()

    while True:
        if fault == "die" and time.monotonic() - started > 5:
            os._exit(3)
        for key, mask in sel.select(timeout=0.5):
            sock = key.fileobj
            if sock is rpipe:
                os.read(rpipe, 64)
                if fault == "exit":
                    sys.exit(1)
                print("summary: connections %d, bytes echoed %d, datagrams echoed 0"
                      % (accepted, echoed), flush=True)
                return
            if sock is lsock:
                while True:
                    try:
                        conn, _ = lsock.accept()
                    except BlockingIOError:
                        break
                    accepted += 1
                    conn.setblocking(False)
                    out[conn] = bytearray()
                    sel.register(conn, selectors.EVENT_READ)
                    if fault == "fd" and accepted % 20 == 0:
                        kept.append(os.dup(conn.fileno()))
                    if fault == "rss":
                        kept.append(bytearray(os.urandom(2048)))
                continue
            try:
                buf = out[sock]
                if mask & selectors.EVENT_READ and sock not in closing:
                    data = sock.recv(256 * 1024)
                    if data:
                        buf += data
                    else:
                        closing.add(sock)
                if mask & selectors.EVENT_WRITE and buf:
                    writes += 1
                    if fault == "corrupt" and writes % 1000 == 0:
                        buf[0] ^= 0xFF
                    n = sock.send(buf)
                    echoed += n
                    del buf[:n]
                if sock in closing and not buf:
                    close(sock)
                    continue
                # Level-triggered, with backpressure: stop reading past 1 MiB queued.
                events = selectors.EVENT_WRITE if buf else 0
                if sock not in closing and len(buf) < 1 << 20:
                    events |= selectors.EVENT_READ
                if events != key.events:
                    sel.modify(sock, events)
            except (ConnectionError, OSError):
                close(sock)


if __name__ == "__main__":
    main()
