"""The CPU floor of the CPU benchmark: an asyncio process that does nothing but what every
heartbeat node must do at the very least — send one datagram of a heartbeat's size to every
peer address every keepalive, and read every datagram that arrives (and throw it away).

    python benchmarks/udp_floor_node.py --port P --keepalive 0.1 --size 400 ADDR [ADDR ...]

cpu.py runs one per lab host beside hastack and heartbeat, so the three figures share a machine,
a topology and a datagram rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket

READ_BATCH = 64


async def run(port: int, keepalive: float, size: int, peers: list[str]) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    sock.setblocking(False)

    def drain() -> None:
        for _ in range(READ_BATCH):
            try:
                sock.recv(65536)
            except BlockingIOError:
                return

    loop.add_reader(sock.fileno(), drain)
    payload = b"x" * size
    while True:
        for address in peers:
            with contextlib.suppress(OSError):  # a peer not up yet
                sock.sendto(payload, (address, port))
        await asyncio.sleep(keepalive)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keepalive", type=float, default=0.1)
    parser.add_argument("--size", type=int, default=400)
    parser.add_argument("peers", nargs="+")
    args = parser.parse_args()
    asyncio.run(run(args.port, args.keepalive, args.size, args.peers))


if __name__ == "__main__":
    main()
