"""UDP links over the loopback interface: real sockets, real datagrams."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable

import pytest

from hastack.config.model import Link
from hastack.transport import LinkEndpoint, endpoint_for

# Addresses and groups unique to this process, so parallel test runs do not collide.
NET = f"127.77.{os.getpid() % 250 + 1}"
GROUP = f"239.255.{os.getpid() % 250 + 1}.77"


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


class Inbox:
    """Collects (data, link) pairs and lets a test wait for a count. UDP endpoints deliver
    nothing by themselves: like the daemon's read timer, wait_for drains them every 5 ms."""

    def __init__(self) -> None:
        self.items: list[tuple[bytes, str]] = []
        self.stamps: list[float | None] = []
        self.endpoints: list[LinkEndpoint] = []

    def __call__(self, data: bytes, link: str) -> None:
        self.items.append((data, link))
        self.stamps.append(None)

    def read(self) -> None:
        for endpoint in self.endpoints:
            for stamp, data in endpoint.drain():
                self.items.append((data, endpoint.name))
                self.stamps.append(stamp)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async def loop() -> None:
            while True:
                self.read()
                if predicate():
                    return
                await asyncio.sleep(0.005)

        await asyncio.wait_for(loop(), timeout)


async def opened(link: Link, inbox: Inbox) -> LinkEndpoint:
    endpoint = endpoint_for(link, inbox)
    await endpoint.open()
    assert endpoint.reads_on_timer, "UDP links are read by the daemon's timer"
    inbox.endpoints.append(endpoint)
    return endpoint


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())


def ucast(bind: str, port: int, peers: list[str]) -> Link:
    return Link(
        kind="ucast", name="ucast lo", interface="lo", addresses=tuple(peers), port=port, bind=bind
    )


def test_ucast_delivers_between_two_bound_addresses_with_the_link_name() -> None:
    port = free_port()
    a_addr, b_addr = f"{NET}.1", f"{NET}.2"

    async def body() -> None:
        inbox_a, inbox_b = Inbox(), Inbox()
        a = await opened(ucast(a_addr, port, [a_addr, b_addr]), inbox_a)
        b = await opened(ucast(b_addr, port, [a_addr, b_addr]), inbox_b)
        try:
            a.send(b"from a")
            await inbox_b.wait_for(lambda: len(inbox_b.items) >= 1)
            b.send(b"from b")
            await inbox_a.wait_for(lambda: len(inbox_a.items) >= 1)
            assert inbox_b.items == [(b"from a", "ucast lo")]
            assert inbox_a.items == [(b"from b", "ucast lo")]
            # Our own bind address is skipped: one destination each, nothing sent to self.
            assert a.stats.tx == 1 and b.stats.tx == 1
            assert a.stats.rx == 1 and b.stats.rx_bytes == len(b"from a")
        finally:
            a.close()
            b.close()

    run(body)


def test_ucast_send_error_is_counted_not_raised() -> None:
    port = free_port()

    async def body() -> None:
        endpoint = await opened(ucast(f"{NET}.3", port, [f"{NET}.4"]), Inbox())
        try:
            endpoint.send(b"x" * 70000)  # larger than any UDP datagram: EMSGSIZE
            endpoint.send(b"x" * 70000)
            info = endpoint.describe()
            assert info["tx_errors"] == 2
            assert "EMSGSIZE" in (info["last_tx_error"] or "")
            endpoint.send(b"fits")  # the link still works afterwards
            assert endpoint.stats.tx == 1
        finally:
            endpoint.close()

    run(body)


def test_ucast_send_error_is_logged_once_per_period(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()

    async def body() -> None:
        endpoint = await opened(ucast(f"{NET}.5", port, [f"{NET}.6"]), Inbox())
        try:
            with caplog.at_level("WARNING", logger="hastack.transport"):
                for _ in range(50):
                    endpoint.send(b"x" * 70000)
            errors = [r for r in caplog.records if getattr(r, "event", "") == "link-send-error"]
            assert len(errors) == 1
            assert endpoint.send_errors.count == 50
        finally:
            endpoint.close()

    run(body)


def test_close_is_idempotent_and_stops_sending() -> None:
    port = free_port()

    async def body() -> None:
        endpoint = await opened(ucast(f"{NET}.7", port, [f"{NET}.8"]), Inbox())
        endpoint.close()
        endpoint.close()
        endpoint.send(b"after close")
        assert endpoint.stats.tx == 0

    run(body)


def test_mcast_on_loopback_reaches_every_member_of_the_group() -> None:
    port = free_port()
    link = Link(
        kind="mcast",
        name="mcast lo",
        interface="lo",
        addresses=(GROUP,),
        port=port,
        ttl=1,
        loop=True,
    )

    async def body() -> None:
        inbox_a, inbox_b = Inbox(), Inbox()
        try:
            a = await opened(link, inbox_a)
        except OSError as exc:
            pytest.skip(f"multicast on lo is not possible here: {exc}")
        b = await opened(link, inbox_b)
        try:
            a.send(b"hello group")
            await inbox_b.wait_for(lambda: len(inbox_b.items) >= 1)
            assert inbox_b.items == [(b"hello group", "mcast lo")]
            # With loop on, the sender's own datagram comes back too (the core drops it).
            await inbox_a.wait_for(lambda: len(inbox_a.items) >= 1)
        finally:
            a.close()
            b.close()

    run(body)


def test_mcast_on_a_missing_interface_fails_to_open_with_a_clear_error() -> None:
    link = Link(kind="mcast", name="mcast nosuch0", interface="nosuch0", addresses=(GROUP,), port=1)

    async def body() -> None:
        with pytest.raises(OSError, match="nosuch0"):
            await opened(link, Inbox())

    run(body)


def test_bcast_sends_to_the_interface_broadcast_address() -> None:
    port = free_port()
    link = Link(kind="bcast", name="bcast lo", interface="lo", port=port)

    async def body() -> None:
        inbox = Inbox()
        endpoint = await opened(link, inbox)
        try:
            # lo's 127.0.0.1/8 has no explicit brd: the address is computed from the prefix.
            assert endpoint.destinations == [("127.255.255.255", port)]  # type: ignore[attr-defined]
            endpoint.send(b"to everyone")
            await inbox.wait_for(lambda: len(inbox.items) >= 1)
            assert inbox.items[0] == (b"to everyone", "bcast lo")
        finally:
            endpoint.close()

    run(body)


def test_ucast_without_bind_receives_on_the_interface_and_skips_its_own_address() -> None:
    port = free_port()
    peer_addr = f"{NET}.9"
    # 127.0.0.1 is lo's own address: listed (as in a shared ha.cf) but never sent to.
    link = Link(
        kind="ucast", name="ucast lo", interface="lo", addresses=("127.0.0.1", peer_addr), port=port
    )

    async def body() -> None:
        inbox = Inbox()
        endpoint = await opened(link, inbox)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the node holds 0.0.0.0:port
        peer.bind((peer_addr, port))
        peer.settimeout(5)
        try:
            assert endpoint.destinations == [(peer_addr, port)]  # type: ignore[attr-defined]
            endpoint.send(b"to peer")
            assert await asyncio.to_thread(peer.recv, 100) == b"to peer"
            peer.sendto(b"to node", ("127.0.0.1", port))
            await inbox.wait_for(lambda: len(inbox.items) >= 1)
            assert inbox.items == [(b"to node", "ucast lo")]
        finally:
            peer.close()
            endpoint.close()

    run(body)


def test_udp_links_read_in_batches_with_the_kernel_arrival_time() -> None:
    """Datagrams wait in the socket until drained, and each carries its arrival on the wall
    clock (SO_TIMESTAMPNS), which the daemon uses as the time the sender was last heard."""
    port = free_port()
    a_addr, b_addr = f"{NET}.10", f"{NET}.11"

    async def body() -> None:
        inbox_b = Inbox()
        a = await opened(ucast(a_addr, port, [b_addr]), Inbox())
        b = await opened(ucast(b_addr, port, [a_addr]), inbox_b)
        try:
            before = time.time()
            a.send(b"first")
            await asyncio.sleep(0.2)
            a.send(b"second")
            await asyncio.sleep(0.05)
            after = time.time()
            received = b.drain()  # both at once: nothing was read on arrival
            assert [data for _, data in received] == [b"first", b"second"]
            first, second = (stamp for stamp, _ in received)
            assert first is not None and second is not None
            assert before - 0.01 <= first < second <= after + 0.01
            assert second - first >= 0.15  # each its own arrival, not the time of the drain
            assert b.drain() == []
            assert b.stats.rx == 2
        finally:
            a.close()
            b.close()

    run(body)
