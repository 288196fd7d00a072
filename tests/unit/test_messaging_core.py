"""The messaging core against a deterministic fake network (seeded loss, duplication,
reordering and delay, an explicit clock), and its asyncio endpoints on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import os
import random
import socket
import zlib
from collections import defaultdict
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.config.model import AuthKey, AuthKeys, Link
from hastack.membership.effects import Log
from hastack.messaging import codec
from hastack.messaging.core import (
    Deliver,
    Effect,
    MessagingCore,
    MessagingParams,
    StreamReset,
    Transmit,
)
from hastack.transport.message_link import message_endpoint_for, messaging_link

KEYS = AuthKeys(1, {1: AuthKey(1, "sha256", b"unit-messaging-key")})
CLUSTER = "unit"
PARAMS = MessagingParams(fragment_size=1500, rto_initial=0.01, rto_max=0.1)


class Net:
    """Cores joined by a fake broadcast medium. Every Transmit reaches every other node that
    is up, each copy lost with `loss`, duplicated with `dup`, delayed by `delay` plus up to
    `jitter` (which reorders). Datagrams due at the same instant form one batch per node,
    followed by that node's flush, as the asyncio endpoint does per wake-up."""

    def __init__(
        self,
        names: Iterable[str],
        seed: int = 0,
        loss: float = 0.0,
        dup: float = 0.0,
        delay: float = 0.001,
        jitter: float = 0.0,
        params: MessagingParams = PARAMS,
    ) -> None:
        self.rng = random.Random(seed)
        self.loss, self.dup, self.delay, self.jitter = loss, dup, delay, jitter
        self.now = 0.0
        self.params = params
        self.cores = {name: MessagingCore(CLUSTER, name, 1, KEYS, params) for name in names}
        self.down: set[str] = set()
        self.queue: list[tuple[float, int, str, bytes]] = []
        self.order = itertools.count()
        self.delivered: dict[str, list[Deliver]] = defaultdict(list)
        self.resets: dict[str, list[StreamReset]] = defaultdict(list)
        self.captured: list[bytes] = []
        self.transmits: dict[str, int] = defaultdict(int)
        for name, core in self.cores.items():
            self.execute(name, core.set_peers(self.cores, self.now))

    def restart(self, name: str, generation: int) -> MessagingCore:
        core = MessagingCore(CLUSTER, name, generation, KEYS, self.params)
        self.cores[name] = core
        self.execute(name, core.set_peers(self.cores, self.now))
        return core

    def execute(self, name: str, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Transmit):
                self.transmits[name] += 1
                self.captured.append(effect.data)
                for other in self.cores:
                    if other == name:
                        continue
                    copies = 2 if self.rng.random() < self.dup else 1
                    for _ in range(copies):
                        if self.rng.random() < self.loss:
                            continue
                        at = self.now + self.delay + self.rng.random() * self.jitter
                        heapq.heappush(self.queue, (at, next(self.order), other, effect.data))
            elif isinstance(effect, Deliver):
                self.delivered[name].append(effect)
            elif isinstance(effect, StreamReset):
                self.resets[name].append(effect)
            else:
                assert isinstance(effect, Log)

    def send(self, name: str, payload: bytes, dest: str | None = None) -> None:
        self.execute(name, self.cores[name].send(payload, self.now, dest))

    def step(self) -> bool:
        """Advance to the next event; False when nothing is left to happen."""
        deadline = min(core.next_deadline() for core in self.cores.values())
        arrival = self.queue[0][0] if self.queue else float("inf")
        at = min(deadline, arrival)
        if at == float("inf"):
            return False
        self.now = max(self.now, at)
        batches: dict[str, list[bytes]] = defaultdict(list)
        while self.queue and self.queue[0][0] <= self.now:
            _, _, dest, data = heapq.heappop(self.queue)
            if dest not in self.down:
                batches[dest].append(data)
        for name, batch in batches.items():
            core = self.cores[name]
            for data in batch:
                self.execute(name, core.receive(data, "link0", self.now))
            self.execute(name, core.flush(self.now))
        for name, core in self.cores.items():
            if name not in self.down and core.next_deadline() <= self.now:
                self.execute(name, core.tick(self.now))
        return True

    def run(self, until: float = 60.0) -> None:
        """Run until nothing is pending or in flight (or the clock reaches `until`)."""
        while self.now < until and self.step():
            if not self.queue and all(
                c.pending() == 0 and c.backlog() == 0
                for n, c in self.cores.items()
                if n not in self.down
            ):
                return

    def payloads(self, receiver: str, sender: str) -> list[bytes]:
        return [d.payload for d in self.delivered[receiver] if d.sender == sender]


def message(sender: str, number: int, size: int, rng: random.Random) -> bytes:
    """A payload that names its sender and number; incompressible or compressible at random."""
    head = f"{sender}:{number}:".encode()
    body = rng.randbytes(size) if rng.random() < 0.5 else bytes(size)
    return head + body


# ---- reliability ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(25))
def test_in_order_exactly_once_under_loss_duplication_and_reordering(seed: int) -> None:
    net = Net(["a", "b", "c"], seed=seed, loss=0.3, dup=0.2, delay=0.001, jitter=0.004)
    rng = random.Random(seed)
    sent: dict[str, list[bytes]] = {name: [] for name in net.cores}
    for number in range(40):
        for name in net.cores:
            size = rng.choice([0, 10, 500, 3000, 20000])
            payload = message(name, number, size, rng)
            sent[name].append(payload)
            net.send(name, payload)
        for _ in range(rng.randrange(5)):
            net.step()
    net.run(until=120)
    for receiver in net.cores:
        for sender in net.cores:
            if sender != receiver:
                assert net.payloads(receiver, sender) == sent[sender], (receiver, sender)
        # one reset per peer: the first contact with its stream, nothing lost after
        assert sorted((r.sender, r.reason) for r in net.resets[receiver]) == sorted(
            (s, "restarted") for s in net.cores if s != receiver
        )
    assert all(core.pending() == 0 for core in net.cores.values())
    assert sum(c.counters.get("duplicates", 0) for c in net.cores.values()) > 0
    repaired = sum(
        c.counters.get("retransmits-timeout", 0) + c.counters.get("retransmits-fast", 0)
        for c in net.cores.values()
    )
    assert repaired > 0


@given(
    seed=st.integers(0, 2**32),
    loss=st.floats(0.0, 0.5),
    dup=st.floats(0.0, 0.3),
    jitter=st.floats(0.0, 0.02),
    nodes=st.integers(2, 4),
)
@settings(max_examples=25, deadline=None)
def test_delivery_property_over_random_networks(
    seed: int, loss: float, dup: float, jitter: float, nodes: int
) -> None:
    """Whatever the loss, duplication and reordering: each receiver gets each sender's
    messages exactly once, in order, complete, and senders end with nothing held."""
    names = [f"n{i}" for i in range(nodes)]
    net = Net(names, seed=seed, loss=loss, dup=dup, delay=0.0005, jitter=jitter)
    rng = random.Random(seed)
    sent: dict[str, list[bytes]] = {name: [] for name in names}
    for number in range(12):
        name = rng.choice(names)
        payload = message(name, number, rng.choice([0, 1400, 6000]), rng)
        sent[name].append(payload)
        net.send(name, payload)
        for _ in range(rng.randrange(3)):
            net.step()
    net.run(until=600)
    for receiver in names:
        for sender in names:
            if sender != receiver:
                assert net.payloads(receiver, sender) == sent[sender]
    assert all(core.pending() == 0 and core.backlog() == 0 for core in net.cores.values())


def test_a_large_payload_is_fragmented_and_reassembled() -> None:
    net = Net(["a", "b"], seed=1, loss=0.1, jitter=0.002)
    payload = random.Random(7).randbytes(2 * 1024 * 1024)  # incompressible
    net.send("a", payload)
    net.run()
    assert net.payloads("b", "a") == [payload]
    fragments = net.cores["a"].counters["sent-fragments"]
    assert fragments >= len(payload) // PARAMS.fragment_size
    assert max(len(d) for d in net.captured) <= PARAMS.fragment_size


def test_a_compressible_payload_travels_compressed() -> None:
    net = Net(["a", "b"])
    payload = b"status " * 200_000
    net.send("a", payload)
    net.run()
    assert net.payloads("b", "a") == [payload]
    assert net.cores["a"].counters["sent-fragments"] < len(payload) // PARAMS.fragment_size // 10


def test_fast_retransmission_on_a_gap_and_only_once_per_hint() -> None:
    a = MessagingCore(CLUSTER, "a", 1, KEYS, PARAMS)
    b = MessagingCore(CLUSTER, "b", 1, KEYS, PARAMS)
    a.set_peers(["b"], 0.0)
    datagrams = [
        e.data for i in range(3) for e in a.send(b"m%d" % i, 0.0) if isinstance(e, Transmit)
    ]
    for data in datagrams[1:]:  # the first is lost
        b.receive(data, "l", 0.001)
    [ack] = b.flush(0.001)
    assert isinstance(ack, Transmit)
    answer = a.receive(ack.data, "l", 0.002)
    assert answer == [Transmit(datagrams[0])], "the gap is repaired before any timeout"
    assert a.receive(ack.data, "l", 0.003) == [], "the same hint again retransmits nothing"
    delivered = b.receive(datagrams[0], "l", 0.004)
    assert [e.payload for e in delivered if isinstance(e, Deliver)] == [b"m0", b"m1", b"m2"]


def test_the_retransmission_timer_backs_off_to_its_cap() -> None:
    a = MessagingCore(CLUSTER, "a", 1, KEYS, PARAMS)
    a.set_peers(["b"], 0.0)
    a.send(b"lost", 0.0)
    gaps = []
    now = 0.0
    for _ in range(8):
        deadline = a.next_deadline()
        gaps.append(round(deadline - now, 6))
        now = deadline
        assert [type(e) for e in a.tick(now)] == [Transmit]
    assert gaps == [0.01, 0.02, 0.04, 0.08, 0.1, 0.1, 0.1, 0.1]


def test_acknowledgements_are_batched() -> None:
    """A burst read in one batch is acknowledged once, not once per fragment."""
    net = Net(["a", "b"])
    net.send("a", random.Random(3).randbytes(150_000))  # ~100 fragments in one burst
    fragments = net.cores["a"].counters["sent-fragments"]
    net.run()
    assert len(net.delivered["b"]) == 1
    assert fragments > 90
    assert net.cores["b"].counters["acks-sent"] == 1
    assert net.transmits["b"] == 1


def test_dest_is_delivered_by_that_node_only() -> None:
    net = Net(["a", "b", "c"])
    net.send("a", b"for b", dest="b")
    net.send("a", b"for all")
    net.send("a", b"")
    net.run()
    assert net.payloads("b", "a") == [b"for b", b"for all", b""]
    assert net.payloads("c", "a") == [b"for all", b""]
    assert net.cores["c"].counters["not-for-us"] == 1
    assert net.cores["a"].pending() == 0, "c acknowledged the message it did not deliver"


def test_a_peer_leaving_the_set_releases_the_window() -> None:
    net = Net(["a", "b", "c"])
    net.down.add("c")
    net.send("a", b"x" * 5000)
    for _ in range(20):
        net.step()
    a = net.cores["a"]
    assert a.pending() > 0, "c has not acknowledged"
    net.execute("a", a.set_peers(["b"], net.now))
    assert a.pending() == 0
    assert a.next_deadline() == float("inf")


def test_the_backlog_drains_as_acknowledgements_free_the_window() -> None:
    params = MessagingParams(fragment_size=1024, rto_initial=0.01, rto_max=0.1, window=8)
    net = Net(["a", "b"], seed=4, loss=0.2, params=params)
    rng = random.Random(4)
    payloads = [rng.randbytes(2500) for _ in range(30)]  # 3 fragments each, 90 in all
    for payload in payloads:
        net.send("a", payload)
    assert net.cores["a"].pending() == 8
    assert net.cores["a"].backlog() == 90 - 8
    net.run()
    assert net.payloads("b", "a") == payloads
    assert net.cores["a"].backlog() == 0


def test_what_is_gone_gives_stream_reset_and_delivery_goes_on() -> None:
    net = Net(["a", "b", "c"])
    net.down.add("c")
    net.execute("a", net.cores["a"].set_peers(["b"], net.now))  # c is not a member
    for i in range(5):
        net.send("a", b"early %d" % i)
    net.run()
    assert net.cores["a"].pending() == 0
    net.down.discard("c")
    net.execute("a", net.cores["a"].set_peers(["b", "c"], net.now))
    net.send("a", b"late")
    net.run()
    assert net.payloads("c", "a") == [b"late"]
    assert [(r.sender, r.reason) for r in net.resets["c"]] == [("a", "restarted"), ("a", "gone")]
    assert net.cores["a"].counters["gone-sent"] >= 1
    assert net.payloads("b", "a")[-1] == b"late"


def test_a_late_joiner_gets_what_is_still_held() -> None:
    """First hearing a stream in the middle, a receiver asks for the start like any gap."""
    net = Net(["a", "b", "c"])
    net.down.add("c")  # still in a's peer set: a holds everything for it
    for i in range(5):
        net.send("a", b"m%d" % i)
    for _ in range(10):
        net.step()
    net.down.discard("c")
    net.send("a", b"m5")
    net.run()
    assert net.payloads("c", "a") == [b"m%d" % i for i in range(6)]
    assert [r.reason for r in net.resets["c"]] == ["restarted"]


def test_a_restarted_sender_gives_a_reset_then_normal_delivery() -> None:
    net = Net(["a", "b"])
    net.send("a", b"before")
    net.run()
    old = list(net.captured)
    net.restart("a", 2)
    net.send("a", b"after 1")
    net.send("a", b"after 2")
    net.run()
    assert [(d.generation, d.payload) for d in net.delivered["b"]] == [
        (1, b"before"),
        (2, b"after 1"),
        (2, b"after 2"),
    ]
    assert [(r.generation, r.reason) for r in net.resets["b"]] == [
        (1, "restarted"),
        (2, "restarted"),
    ]
    b = net.cores["b"]
    for data in old:  # the first generation's datagrams, replayed
        assert b.receive(data, "link0", net.now) == []
    assert b.counters["stale-generation"] >= 1


def test_a_restarted_receiver_keeps_receiving() -> None:
    net = Net(["a", "b"])
    net.send("a", b"one")
    net.run()
    net.restart("b", 2)
    net.send("a", b"two")
    net.run()
    assert net.payloads("b", "a") == [b"one", b"two"]  # across both incarnations of b
    assert [r.reason for r in net.resets["b"]] == ["restarted", "restarted", "gone"]
    assert net.cores["a"].counters["peer-restarts"] == 1


def test_replayed_datagrams_deliver_nothing_twice() -> None:
    net = Net(["a", "b"], seed=2, loss=0.2, jitter=0.003)
    for i in range(20):
        net.send("a", b"m%d " % i * (i * 300))
        net.send("b", b"n%d" % i)
    net.run()
    delivered = {name: len(d) for name, d in net.delivered.items()}
    rng = random.Random(5)
    replay = list(net.captured)
    rng.shuffle(replay)
    for name, core in net.cores.items():
        for data in replay:
            effects = core.receive(data, "link0", net.now)
            assert not any(isinstance(e, Deliver | StreamReset) for e in effects)
        net.execute(name, core.flush(net.now))
    assert {name: len(d) for name, d in net.delivered.items()} == delivered
    assert net.cores["b"].counters["duplicates"] > 0


def test_tampered_and_foreign_datagrams_are_dropped_and_counted() -> None:
    a = MessagingCore(CLUSTER, "a", 1, KEYS, PARAMS)
    b = MessagingCore(CLUSTER, "b", 1, KEYS, PARAMS)
    other = MessagingCore("other", "a", 1, KEYS, PARAMS)
    [good] = a.send(b"payload", 0.0)
    assert isinstance(good, Transmit)
    tampered = bytearray(good.data)
    tampered[-3] ^= 0x40
    foreign_key = MessagingCore(CLUSTER, "a", 1, AuthKeys(1, {1: AuthKey(1, "sha256", b"x")}))
    [forged] = foreign_key.send(b"payload", 0.0)
    [foreign] = other.send(b"payload", 0.0)
    assert isinstance(forged, Transmit) and isinstance(foreign, Transmit)
    for data in (bytes(tampered), forged.data, foreign.data, b"garbage", b"HM1\x07xyz"):
        assert b.receive(data, "l", 0.0) == []
    assert b.counters == {"dropped-auth": 3, "dropped-cluster": 1, "dropped-malformed": 1}
    assert b.flush(0.0) == []


def test_an_ack_reaching_far_past_the_stream_is_handled_at_once() -> None:
    """An authenticated but absurd ack (ranges up to 2**62) costs no more than the window."""
    a = MessagingCore(CLUSTER, "a", 1, KEYS, PARAMS)
    a.set_peers(["b"], 0.0)
    for i in range(3):
        a.send(b"m%d" % i, 0.0)
    huge = codec.encode(codec.Ack(CLUSTER, "b", 1, "a", 1, 0, 2**62, ((1, 2**61),)), KEYS)
    effects = a.receive(huge, "l", 0.001)
    assert [type(e) for e in effects] == [Transmit, Transmit], "seqs 1 and 2, below the top"
    assert a.pending() == 3


def test_own_datagrams_looped_back_are_ignored() -> None:
    a = MessagingCore(CLUSTER, "a", 1, KEYS, PARAMS)
    [own] = a.send(b"hello", 0.0)
    assert isinstance(own, Transmit)
    assert a.receive(own.data, "l", 0.0) == []
    assert a.counters["own-datagrams"] == 1


def test_with_no_peers_nothing_is_held() -> None:
    a = MessagingCore(CLUSTER, "a", 1, KEYS, PARAMS)
    effects = a.send(bytes(range(256)) * 40, 0.0)
    assert effects and all(isinstance(e, Transmit) for e in effects)
    assert a.pending() == 0 and a.next_deadline() == float("inf")


def test_an_unflushed_acknowledgement_goes_out_on_tick() -> None:
    params = MessagingParams(ack_delay=0.005)
    a = MessagingCore(CLUSTER, "a", 1, KEYS, params)
    b = MessagingCore(CLUSTER, "b", 1, KEYS, params)
    [data] = a.send(b"x", 0.0)
    assert isinstance(data, Transmit)
    b.receive(data.data, "l", 1.0)
    assert b.next_deadline() == pytest.approx(1.005)
    assert b.tick(1.001) == []
    [ack] = b.tick(1.005)
    assert isinstance(codec.decode(ack.data, KEYS, CLUSTER), codec.Ack)  # type: ignore[union-attr]


def test_a_corrupt_compressed_message_resets_the_stream() -> None:
    b = MessagingCore(CLUSTER, "b", 1, KEYS, PARAMS)
    bad = codec.encode(codec.Data(CLUSTER, "a", 1, 1, 0, 1, None, True, b"not zlib"), KEYS)
    effects = b.receive(bad, "l", 0.0)
    assert [(e.reason) for e in effects if isinstance(e, StreamReset)] == ["restarted", "corrupt"]
    assert not any(isinstance(e, Deliver) for e in effects)
    bomb = zlib.compress(bytes(2 * PARAMS.max_payload))
    big = codec.encode(codec.Data(CLUSTER, "a", 1, 2, 0, 1, None, True, bomb[:1000]), KEYS)
    assert not any(isinstance(e, Deliver) for e in b.receive(big, "l", 0.0))


# ---- parameters and input checks ------------------------------------------------------------


def test_params_from_the_heartbeat_timing() -> None:
    p = MessagingParams.from_timing(1.0)
    assert (p.rto_initial, p.rto_max) == (0.25, 1.0)
    fast = MessagingParams.from_timing(0.004)
    assert (fast.rto_initial, fast.rto_max) == (0.002, 0.004)
    assert MessagingParams.from_timing(0.1, window=16).window == 16


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"fragment_size": 100}, "fragment_size 100 must be 1024 to 16384"),
        ({"fragment_size": 65000}, "fragment_size 65000"),
        ({"rto_initial": 2.0, "rto_max": 1.0}, "rto_initial 2.0"),
        ({"window": 0}, "window 0 must be at least 1"),
    ],
)
def test_bad_params_are_refused_with_a_clear_error(kwargs: dict[str, float], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        MessagingParams(**kwargs)  # type: ignore[arg-type]


def test_send_refuses_bad_input_clearly() -> None:
    a = MessagingCore(CLUSTER, "a", 1, KEYS, MessagingParams(max_payload=1000))
    with pytest.raises(ValueError, match="exceeds the limit of 1000"):
        a.send(bytes(1001), 0.0)
    with pytest.raises(ValueError, match="is this node"):
        a.send(b"x", 0.0, dest="a")
    with pytest.raises(TypeError, match="payload must be bytes, not str"):
        a.send("text", 0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="generation 0"):
        MessagingCore(CLUSTER, "a", 0, KEYS)
    with pytest.raises(ValueError, match="node name"):
        MessagingCore(CLUSTER, "x" * 300, 1, KEYS)


def test_describe_reports_the_streams() -> None:
    net = Net(["a", "b"])
    net.send("a", b"hello")
    net.run()
    described = net.cores["b"].describe()
    assert described["streams"] == {"a": {"generation": 1, "cumulative": 1, "buffered": 0}}
    assert net.cores["a"].describe()["peers"] == {"b": 1}
    assert described["counters"]["delivered"] == 1


# ---- the asyncio endpoints on loopback ------------------------------------------------------


def free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1]) - 1  # the messaging endpoint uses port + 1


def test_message_endpoints_carry_a_large_message_on_loopback() -> None:
    net = f"127.78.{os.getpid() % 250 + 1}"
    address_a, address_b = f"{net}.1", f"{net}.2"

    async def scenario() -> list[bytes]:
        port = free_port(address_a)
        cores = {
            "a": MessagingCore(CLUSTER, "a", 1, KEYS, PARAMS),
            "b": MessagingCore(CLUSTER, "b", 1, KEYS, PARAMS),
        }
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        done = asyncio.Event()
        endpoints = {}
        timers: dict[str, asyncio.TimerHandle | None] = {"a": None, "b": None}

        def execute(name: str, effects: list[Effect]) -> None:
            for effect in effects:
                if isinstance(effect, Transmit):
                    endpoints[name].send(effect.data)
                elif isinstance(effect, Deliver):
                    got.append(effect.payload)
                    done.set()
            arm(name)

        def arm(name: str) -> None:
            handle = timers[name]
            if handle is not None:
                handle.cancel()
            deadline = cores[name].next_deadline()
            timers[name] = None
            if deadline != float("inf"):
                timers[name] = loop.call_at(
                    deadline, lambda: execute(name, cores[name].tick(loop.time()))
                )

        for name, mine, peer in (("a", address_a, address_b), ("b", address_b, address_a)):
            link = Link(kind="ucast", name="ucast lo", addresses=(peer,), port=port, bind=mine)
            endpoint = message_endpoint_for(
                link, lambda d, lk, n=name: execute(n, cores[n].receive(d, lk, loop.time()))
            )
            assert endpoint is not None and not endpoint.reads_on_timer
            endpoint.on_batch_end = lambda n=name: execute(n, cores[n].flush(loop.time()))
            await endpoint.open()
            endpoints[name] = endpoint
        try:
            for name in cores:
                execute(name, cores[name].set_peers(cores, loop.time()))
            execute("a", cores["a"].send(payload, loop.time()))
            await asyncio.wait_for(done.wait(), 10)
            while cores["a"].pending():
                await asyncio.sleep(0.01)
        finally:
            for name, endpoint in endpoints.items():
                endpoint.close()
                if timers[name] is not None:
                    timers[name].cancel()  # type: ignore[union-attr]
        assert endpoints["a"].link.port == port + 1
        return got

    payload = hashlib.sha256(b"seed").digest() * 40_000  # 1.25 MiB, incompressible enough
    assert asyncio.run(scenario()) == [payload]


def test_serial_links_have_no_messaging_endpoint_of_their_own() -> None:
    serial = Link(kind="serial", name="/dev/ttyS0", device="/dev/ttyS0")
    assert message_endpoint_for(serial, lambda d, n: None) is None
    assert messaging_link(Link(kind="bcast", name="bcast eth0", interface="eth0")).port == 695
    with pytest.raises(ValueError, match="port 65535"):
        messaging_link(Link(kind="ucast", name="ucast eth0", port=65535))
