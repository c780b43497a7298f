#!/usr/bin/env python3
"""asyncio echo server (Protocol API, as in the asyncio docs' TCP echo example) as a benchmark
peer. --uvloop runs it on uvloop when uvloop is importable, and exits 3 when it is not.

The address comes from argv (default 127.0.0.1:0); the bound address is printed as
`listening tcp ADDR`. TCP_NODELAY is set on every accepted socket.
"""
import argparse
import asyncio
import socket
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.transport.write(data)


async def serve(host, port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, host, port, backlog=4096)
    addr = server.sockets[0].getsockname()
    print("listening tcp %s:%d" % addr[:2], flush=True)
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("addr", nargs="?", default="127.0.0.1:0")
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    host, _, port = args.addr.rpartition(":")
    if args.uvloop:
        try:
            import uvloop
        except ImportError:
            print("uvloop is not installed", file=sys.stderr)
            sys.exit(3)
        uvloop.install()
    try:
        asyncio.run(serve(host, int(port)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
