"""The CPU floor of the CPU benchmark: an asyncio process that does nothing but what every
heartbeat node must do at the very least — send one datagram of a heartbeat's size on every
link every keepalive, and read every datagram that arrives (and throw it away).

    python benchmarks/udp_floor_node.py --port P --media ucast|bcast|mcast --size 400 \\
        [--pace-from ADDR[,ADDR...]] [--read-interval S] LINK_SPEC [LINK_SPEC ...]

A LINK_SPEC is `IFACE=DEST[,DEST...]`: ucast sends to each DEST (the peers' addresses on that
interface), bcast to DEST (the broadcast address), mcast to DEST (the group, joined on IFACE).
With --pace-from, the node sends when a datagram from one of those addresses arrives (at most
once per half keepalive) and on its own timer only 1.25 keepalives after its last send, which
is how hastack's followers are paced by the DC's heartbeats; without it, on its own timer.
With --read-interval, nothing wakes the process when a datagram arrives: it reads its sockets
every S seconds (and whenever it wakes to send), as hastack's daemon reads its UDP links.

cpu.py runs one per lab host beside hastack and heartbeat, so the three figures share a machine,
a topology, the media and a datagram rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import struct
import time

READ_BATCH = 1024


def open_link(media: str, iface: str, port: int, dests: list[str]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    if media == "bcast":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    if media == "mcast":
        index = socket.if_nametoindex(iface)
        mreqn = struct.pack("4s4si", socket.inet_aton(dests[0]), bytes(4), index)
        sock.bind((dests[0], port))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    else:
        sock.bind(("0.0.0.0", port))
    sock.setblocking(False)
    return sock


async def run(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    payload = b"x" * args.size
    pacers = set(args.pace_from)
    links = []
    for spec in args.links:
        iface, _, dests = spec.partition("=")
        addresses = dests.split(",")
        links.append((open_link(args.media, iface, args.port, addresses), addresses))
    last_send = 0.0

    def send() -> None:
        nonlocal last_send
        last_send = time.monotonic()
        for sock, addresses in links:
            for address in addresses:
                with contextlib.suppress(OSError):  # a peer not up yet
                    sock.sendto(payload, (address, args.port))

    def drain(sock: socket.socket) -> None:
        for _ in range(READ_BATCH):
            try:
                _, (sender, _) = sock.recvfrom(65536)
            except BlockingIOError:
                return
            if sender in pacers and time.monotonic() - last_send > args.keepalive / 2:
                send()

    fallback = args.keepalive * (1.25 if pacers else 1.0)
    if args.read_interval > 0:
        next_read = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_read:
                next_read = now + args.read_interval
                for sock, _ in links:
                    drain(sock)
            if time.monotonic() >= last_send + fallback:
                send()
            await asyncio.sleep(max(0.0, min(next_read, last_send + fallback) - time.monotonic()))
    for sock, _ in links:
        loop.add_reader(sock.fileno(), drain, sock)
    while True:
        wait = last_send + fallback - time.monotonic()
        if wait <= 0:
            send()
            wait = fallback
        await asyncio.sleep(wait)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--media", choices=["ucast", "bcast", "mcast"], default="ucast")
    parser.add_argument("--keepalive", type=float, default=0.1)
    parser.add_argument("--size", type=int, default=400)
    parser.add_argument(
        "--pace-from", type=lambda s: s.split(","), default=[], metavar="ADDR[,ADDR...]"
    )
    parser.add_argument("--read-interval", type=float, default=0.0, metavar="S")
    parser.add_argument("links", nargs="+", metavar="LINK_SPEC")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
