#!/usr/bin/env python3
"""The tutorial's select.select echo server, kept as it was (listen(5), recv(1024), one queue
per connection, wait for writability before every send), as a benchmark peer.

Changes from the tutorial: logging is off unless -v; the address comes from argv (default
127.0.0.1:0) and the bound address is printed as `listening tcp ADDR`; removing a socket that
is already gone is tolerated (the tutorial crashes on that double remove); --nodelay sets
TCP_NODELAY on accepted sockets (off by default, as in the tutorial).

select.select() cannot take descriptors >= 1024 (FD_SETSIZE): past about 1,000 connections
it raises ValueError and the server stops. That is the tutorial's limit and is left in.
"""
import argparse
import queue
import select
import socket
import sys


def log(verbose, *args):
    if verbose:
        print(*args, file=sys.stderr)


def forget(s, inputs, outputs, message_queues):
    if s in outputs:
        outputs.remove(s)
    if s in inputs:
        inputs.remove(s)
    s.close()
    message_queues.pop(s, None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("addr", nargs="?", default="127.0.0.1:0")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--nodelay", action="store_true")
    args = parser.parse_args()
    host, _, port = args.addr.rpartition(":")
    verbose = args.verbose

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.setblocking(0)
    server.bind((host, int(port)))
    server.listen(5)
    print("listening tcp %s:%d" % server.getsockname(), flush=True)

    inputs = [server]
    outputs = []
    message_queues = {}

    while inputs:
        log(verbose, "waiting for the next event")
        readable, writable, exceptional = select.select(inputs, outputs, inputs)

        for s in readable:
            if s is server:
                connection, client_address = s.accept()
                log(verbose, "new connection from", client_address)
                connection.setblocking(0)
                if args.nodelay:
                    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                inputs.append(connection)
                message_queues[connection] = queue.Queue()
            elif s in message_queues:
                try:
                    data = s.recv(1024)
                except OSError as e:
                    log(verbose, "closing after error", e)
                    forget(s, inputs, outputs, message_queues)
                    continue
                if data:
                    log(verbose, "received", len(data), "bytes")
                    message_queues[s].put(data)
                    if s not in outputs:
                        outputs.append(s)
                else:
                    log(verbose, "closing after reading no data")
                    forget(s, inputs, outputs, message_queues)

        for s in writable:
            if s not in message_queues:
                continue  # closed above in this same turn
            try:
                next_msg = message_queues[s].get_nowait()
            except queue.Empty:
                log(verbose, "output queue empty")
                outputs.remove(s)
            else:
                log(verbose, "sending", len(next_msg), "bytes")
                try:
                    s.send(next_msg)
                except OSError as e:
                    log(verbose, "closing after error", e)
                    forget(s, inputs, outputs, message_queues)

        for s in exceptional:
            if s not in message_queues:
                continue
            log(verbose, "exceptional condition")
            forget(s, inputs, outputs, message_queues)


if __name__ == "__main__":
    main()
