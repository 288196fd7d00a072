"""The replication engine's handshake-window writes, status, operator commands, online verify,
checksum-based resync, resync pacing and ko-count: two engines wired together in memory."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.replica import wire
from hastack.replica.bitmap import BLOCK_SIZE
from hastack.replica.engine import Effect, EngineError, FlushLocal, Log, ReplicaEngine, RunHandler
from hastack.replica.generations import Generations, created, same
from hastack.replica.model import Disk, Net
from hastack.replica.progress import SyncProgress
from hastack.replica.resync_control import (
    SECTOR,
    DynamicController,
    FixedRate,
    pacer_for,
)
from hastack.replica.states import ConnState, DiskState, Role
from tests.unit.test_replica_engine import BLOCKS, SIZE, A, B, World, block

IN_SYNC = Generations(current=0xA11CE0)
BUSY = (
    ConnState.SYNC_TARGET,
    ConnState.SYNC_SOURCE,
    ConnState.WF_BITMAP,
    ConnState.VERIFY_S,
    ConnState.VERIFY_T,
)


class OpsWorld(World):
    """World that also records logs and handlers, and lets time pass during a verify."""

    def __init__(
        self,
        net: Net | None = None,
        *,
        disk: Disk | None = None,
        a_role: Role = Role.SECONDARY,
        gens: Generations = IN_SYNC,
        disk_state: DiskState = DiskState.UP_TO_DATE,
    ) -> None:
        super().__init__(net)
        for i, name in enumerate((A, B)):
            self.engines[name] = ReplicaEngine(
                node=name,
                size=SIZE,
                net=net or Net(),
                disk=disk or Disk(resync_rate=1000),
                rng=random.Random(i),
                generations=gens,
                role=a_role if name == A else Role.SECONDARY,
                disk_state=disk_state,
            )
        self.logs: list[tuple[str, Log]] = []
        self.handlers: list[tuple[str, str]] = []

    def apply(self, name: str, effects: list[Effect]) -> None:
        super().apply(name, effects)
        for effect in effects:
            if isinstance(effect, Log):
                self.logs.append((name, effect))
            elif isinstance(effect, RunHandler):
                self.handlers.append((name, effect.name))

    def settle(self, max_time: float = 60.0) -> None:
        deadline = self.now + max_time
        while True:
            progress = 0
            for name in self.engines:
                if name not in self.hold_frames:
                    progress += self.deliver(name)
                if name not in self.hold_io:
                    progress += self.complete_io(name)
            self._close()
            if progress:
                continue
            if not any(e.cstate in BUSY for e in self.engines.values()) or self.now >= deadline:
                return
            self.tick(0.1)

    def run(self, name: str, command: str, *args: object, **kw: object) -> None:
        self.apply(name, getattr(self.engines[name], command)(self.now, *args, **kw))

    def log_text(self, name: str | None = None) -> str:
        return "\n".join(e.text for n, e in self.logs if name in (None, n))


def connected(net: Net | None = None, **kw: object) -> OpsWorld:
    world = OpsWorld(net, **kw)  # type: ignore[arg-type]
    world.connect()
    world.promote(A)
    world.settle()
    assert world.engines[A].cstate is ConnState.CONNECTED
    return world


def states(world: World, name: str) -> tuple[str, str, str]:
    e = world.engines[name]
    return e.cstate.value, e.disk_state.literal, e.peer_disk.literal


# --- 1. writes while the connect handshake is undecided --------------------------------------


def test_a_write_during_the_handshake_reaches_the_peer_when_no_resync_is_needed() -> None:
    # A is Primary with the same data and identifiers as B: the handshake decides "connected".
    # Before the fix the write went to the bitmap only, and nothing ever resynced it.
    world = OpsWorld(a_role=Role.PRIMARY)
    world.connect(settle=False)
    offset, data = block(7, 0x5A)
    handle = world.write(A, offset, data)
    flush = world.flush(A)
    world.settle()
    assert world.done[handle].ok and world.done[flush].ok
    assert world.disks[B][offset : offset + BLOCK_SIZE] == data
    for name in (A, B):
        assert states(world, name) == ("Connected", "UpToDate", "UpToDate")
        assert world.engines[name].bitmap.count() == 0
    assert world.messages(wire.Data, A), "mirrored, not left to a resync that never comes"


def test_held_writes_keep_their_order_with_flushes() -> None:
    world = OpsWorld(a_role=Role.PRIMARY)
    world.connect(settle=False)
    first = world.write(A, *block(3, 1))
    flush = world.flush(A)
    second = world.write(A, *block(3, 2))
    assert not world.io[A], "held until the handshake decides"
    assert world.engines[A].status["stats"]["ap"] == 3  # type: ignore[index]
    world.settle()
    assert [first, flush, second] == [h for h in world.done if h in (first, flush, second)]
    assert world.disks[A][3 * BLOCK_SIZE] == 2 and world.disks[B][3 * BLOCK_SIZE] == 2


def test_held_writes_go_local_and_into_the_bitmap_when_the_handshake_fails() -> None:
    world = OpsWorld(a_role=Role.PRIMARY)
    world.hold_frames.add(A)  # the peer's Hello never arrives
    world.connect(settle=False)
    handle = world.write(A, *block(9))
    world.settle()
    assert handle not in world.done
    world.tick(Net().timeout / 10 + 0.1)  # the handshake timed out: the link is dropped
    world.settle()
    assert world.done[handle].ok
    assert list(world.engines[A].bitmap.dirty()) == [9]
    assert "handshake not done" in world.log_text(A)


def test_promote_during_the_handshake_is_refused_as_transient() -> None:
    world = OpsWorld()
    world.connect(settle=False)
    with pytest.raises(EngineError, match="transient"):
        world.promote(A)
    world.settle()
    world.promote(A)
    assert world.engines[A].role is Role.PRIMARY


# --- 2. status --------------------------------------------------------------------------------


def test_status_uses_drbd_spellings_and_counts_traffic() -> None:
    world = connected(Net(protocol="C"))
    status = world.engines[B].status
    assert status["role"] == "Secondary" and status["peer_role"] == "Primary"
    assert status["disk"] == "UpToDate" and status["peer_disk"] == "UpToDate"
    assert status["cstate"] == "Connected" and status["sync"] is None
    world.write(A, *block(1))
    world.write(A, *block(2))
    world.settle()
    world.apply(A, world.engines[A].note_app_read(world.now, 4096))
    a, b = world.engines[A].status["stats"], world.engines[B].status["stats"]
    assert isinstance(a, dict) and isinstance(b, dict)
    assert (a["ns"], a["nr"], a["dw"], a["dr"]) == (8, 0, 8, 4)
    assert (b["ns"], b["nr"], b["dw"], b["dr"]) == (0, 8, 8, 0)
    assert a["al"] == a["bm"] == 0 and a["ep"] >= 1
    assert (a["lo"], a["pe"], a["ap"], b["ua"]) == (0, 0, 0, 0)

    world.hold_io.add(B)
    world.write(A, *block(3))
    world.settle()
    a, b = world.engines[A].status["stats"], world.engines[B].status["stats"]
    assert isinstance(a, dict) and isinstance(b, dict)
    assert (a["ap"], a["pe"], a["lo"]) == (1, 1, 0)  # local done, the peer's ack missing
    assert (b["ua"], b["lo"]) == (1, 1)
    world.engines[A].disconnect(world.now)
    offline = world.engines[A].status
    assert offline["peer_role"] == "Unknown" and offline["peer_disk"] == "DUnknown"
    assert offline["cstate"] == "StandAlone"


def test_status_shows_resync_progress_rate_and_eta() -> None:
    world = connected(disk=Disk(resync_rate=4, c_plan_ahead=0))  # one block a second
    world.cut()
    for n in range(10, 20):
        world.write(A, *block(n))
    world.settle()
    world.connect(settle=False)
    world.settle(max_time=0)
    sync = world.engines[B].status["sync"]
    assert isinstance(sync, dict)
    assert sync["kind"] == "SyncTarget" and sync["total_kib"] == 40
    world.settle(max_time=4.95)  # about 5 more blocks
    for name, kind in ((B, "SyncTarget"), (A, "SyncSource")):
        sync = world.engines[name].status["sync"]
        assert isinstance(sync, dict) and sync["kind"] == kind
        assert sync["total_kib"] == 40
        assert 16 <= sync["done_kib"] <= 28
        assert sync["percent"] == pytest.approx(100 * sync["done_kib"] / 40)
        assert 3.0 <= sync["rate_kib_s"] <= 6.0 and 3.0 <= sync["avg_rate_kib_s"] <= 6.0
        assert sync["eta_s"] == pytest.approx((40 - sync["done_kib"]) / sync["rate_kib_s"])
    world.settle()
    assert world.engines[B].status["sync"] is None
    assert world.digest(A) == world.digest(B)


def test_progress_marks_measure_the_recent_rate() -> None:
    progress = SyncProgress("SyncTarget", total=1000, started=0.0)
    for t in range(0, 31, 3):
        progress.update(float(t), 1000 - t * 10)  # 10 blocks/s for 30 s
    snap = progress.snapshot(30.0, 700)
    assert snap["percent"] == pytest.approx(30.0)
    assert snap["rate_kib_s"] == pytest.approx(40.0) and snap["avg_rate_kib_s"] == 40.0
    assert snap["eta_s"] == pytest.approx(700 * 4 / 40)
    for t in range(33, 61, 3):
        progress.update(float(t), 700)  # then nothing for 30 s
    stalled = progress.snapshot(60.0, 700)  # the recent window sees no progress at all
    assert stalled["rate_kib_s"] == 0.0 and stalled["eta_s"] is None


# --- 3. operator commands ----------------------------------------------------------------------


def test_invalidate_copies_every_block_from_the_peer() -> None:
    world = connected()
    world.disks[B][5 * BLOCK_SIZE] = 0xEE  # B's copy silently differs
    world.run(B, "invalidate")
    world.settle()
    assert world.digest(A) == world.digest(B)
    assert world.engines[B].stats["resync_blocks_received"] == BLOCKS
    for name in (A, B):
        assert states(world, name) == ("Connected", "UpToDate", "UpToDate")
    ga, gb = world.engines[A].generations, world.engines[B].generations
    assert same(ga.current, gb.current) and ga.history == gb.history


def test_invalidate_remote_makes_the_peer_a_full_sync_target() -> None:
    world = connected()
    world.disks[B][9 * BLOCK_SIZE] = 0xEE
    world.run(A, "invalidate_remote")
    world.settle()
    assert world.digest(A) == world.digest(B)
    assert world.engines[A].stats["resync_blocks_sent"] == BLOCKS
    assert states(world, B) == ("Connected", "UpToDate", "UpToDate")


def test_invalidate_and_invalidate_remote_refusals() -> None:
    world = connected()
    with pytest.raises(EngineError, match="Primary"):
        world.run(A, "invalidate")
    with pytest.raises(EngineError, match="peer is Primary"):
        world.run(B, "invalidate_remote")
    world.cut()
    with pytest.raises(EngineError, match="connected peer"):
        world.run(A, "invalidate_remote")


def test_the_peer_refuses_a_command_its_state_does_not_allow() -> None:
    world = connected()
    world.engines[A].disk_state = DiskState.OUTDATED  # B has not heard of it yet
    world.run(B, "invalidate")
    world.settle()
    assert "refused by the peer" in world.log_text(B)
    assert states(world, B)[:2] == ("Connected", "UpToDate")


def test_invalidate_while_disconnected_syncs_fully_on_connect() -> None:
    world = connected()
    world.cut()
    world.disks[B][2 * BLOCK_SIZE] = 0xEE
    world.run(B, "invalidate")
    assert world.engines[B].disk_state is DiskState.INCONSISTENT
    assert world.engines[B].bitmap.count() == BLOCKS
    world.connect()
    assert world.digest(A) == world.digest(B)
    assert states(world, B) == ("Connected", "UpToDate", "UpToDate")


def test_outdate_rules() -> None:
    world = connected()
    with pytest.raises(EngineError, match="Primary"):
        world.run(A, "outdate")
    with pytest.raises(EngineError, match="connected to a Primary"):
        world.run(B, "outdate")
    world.cut()
    world.run(B, "outdate")
    assert world.engines[B].status["disk"] == "Outdated"
    with pytest.raises(EngineError, match="Outdated"):
        world.promote(B)
    world.connect()  # nothing to resync: the same data as the UpToDate peer
    assert states(world, B) == ("Connected", "UpToDate", "UpToDate")


def test_new_current_uuid_needs_no_connection_and_keeps_the_bitmap_identifier() -> None:
    world = connected()
    with pytest.raises(EngineError, match="connected"):
        world.run(B, "new_current_uuid")
    world.cut()
    before = world.engines[A].generations  # Primary that lost its peer: bitmap id set
    assert before.bitmap
    world.run(A, "new_current_uuid")
    after = world.engines[A].generations
    assert after.bitmap == before.bitmap and not same(after.current, before.current)
    world.write(A, *block(4, 0x44))
    world.settle()
    world.connect()  # the peer still resyncs from the bitmap
    assert world.digest(A) == world.digest(B)
    assert states(world, B) == ("Connected", "UpToDate", "UpToDate")


def test_new_current_uuid_clear_bitmap_skips_the_initial_sync() -> None:
    world = OpsWorld(gens=created(), disk_state=DiskState.INCONSISTENT)
    world.connect()
    assert states(world, A) == ("Connected", "Inconsistent", "Inconsistent")
    world.run(A, "new_current_uuid", clear_bitmap=True)
    world.settle()
    for name in (A, B):
        assert states(world, name) == ("Connected", "UpToDate", "UpToDate")
    assert same(world.engines[A].generations.current, world.engines[B].generations.current)
    assert not world.messages(wire.ResyncData)
    with pytest.raises(EngineError, match="just-created"):
        world.run(A, "new_current_uuid", clear_bitmap=True)


def test_disconnect_stays_standalone_until_connect() -> None:
    world = connected()
    world.run(A, "disconnect")
    world._close()
    assert world.engines[A].cstate is ConnState.STANDALONE
    assert world.engines[B].cstate is ConnState.CONNECTING  # the peer keeps trying
    assert not world.engines[A].wants_connection and world.engines[B].wants_connection
    refused = world.engines[A].connection_made(world.now)
    assert any(type(e).__name__ == "CloseConnection" for e in refused)
    with pytest.raises(EngineError, match="Connecting"):
        world.run(B, "connect")
    world.run(A, "connect", discard_my_data=False)
    assert world.engines[A].wants_connection
    world.connect()
    assert states(world, A) == ("Connected", "UpToDate", "UpToDate")


def test_connect_discard_my_data_is_announced() -> None:
    world = connected()
    world.run(B, "disconnect")
    world.run(B, "connect", discard_my_data=True)
    assert world.engines[B].discard_my_data
    world._close()
    world.connect()
    hello = world.messages(wire.Hello, B)[-1]
    assert hello.flags & wire.HELLO_DISCARD_MY_DATA


# --- 4. online verify -------------------------------------------------------------------------


def test_verify_finds_differing_blocks_on_both_sides_and_runs_the_handler() -> None:
    world = connected(Net(verify_alg="sha256"))
    for n in (3, 40):
        world.disks[B][n * BLOCK_SIZE + 17] ^= 0xFF
    world.run(A, "start_verify")
    world.settle(max_time=0)
    assert world.engines[A].cstate is ConnState.VERIFY_S
    assert world.engines[B].cstate is ConnState.VERIFY_T
    world.settle()
    for name in (A, B):
        assert list(world.engines[name].bitmap.dirty()) == [3, 40], name
        assert world.engines[name].cstate is ConnState.CONNECTED
        assert (name, "out-of-sync") in world.handlers
    assert world.engines[A].stats["verified_blocks"] == BLOCKS


def test_verify_from_a_start_block_and_with_equal_disks_runs_no_handler() -> None:
    world = connected(Net(verify_alg="crc32c"))
    world.disks[B][1 * BLOCK_SIZE] ^= 0xFF  # before the start block: not looked at
    world.run(A, "start_verify", 32)
    world.settle()
    assert world.engines[A].stats["verified_blocks"] == BLOCKS - 32
    assert not world.handlers and world.engines[A].bitmap.count() == 0


def test_verify_with_concurrent_writes_reports_no_false_mismatch() -> None:
    world = connected(Net(verify_alg="sha1"), disk=Disk(resync_rate=40, c_plan_ahead=0))
    world.run(B, "start_verify")  # the Secondary verifies while the Primary writes
    rng = random.Random(3)
    while world.engines[B].cstate is ConnState.VERIFY_S:
        world.write(A, *block(rng.randrange(BLOCKS), rng.randrange(256)))
        world.deliver(A, 3)
        world.deliver(B, 3)
        world.complete_io(A)
        world.complete_io(B, 2)
        world.tick(0.05)
    world.settle()
    assert world.digest(A) == world.digest(B)
    assert world.engines[A].bitmap.count() == world.engines[B].bitmap.count() == 0
    assert not world.handlers


def test_verify_refusals() -> None:
    world = connected()
    with pytest.raises(EngineError, match="verify-alg is not configured"):
        world.run(A, "start_verify")
    world = connected(Net(verify_alg="md5"))
    world.engines[B].net = Net(verify_alg="sha1")
    world.run(A, "start_verify")
    world.settle()
    assert "verify-alg differs" in world.log_text(A)
    assert world.engines[A].cstate is ConnState.CONNECTED


# --- 5. checksum-based resync -----------------------------------------------------------------


def test_csums_resync_sends_only_blocks_that_differ() -> None:
    world = connected(Net(csums_alg="md5"))
    world.cut()
    world.write(A, *block(10, 0))  # the same zeros B already has
    world.write(A, *block(11, 0x11))
    world.write(A, *block(12, 0))
    world.settle()
    world.sent.clear()
    world.connect()
    assert world.digest(A) == world.digest(B)
    assert [m.offset // BLOCK_SIZE for m in world.messages(wire.ResyncData)] == [11]
    assert len(world.messages(wire.CsumRequest, B)) == 3
    assert world.engines[A].stats["resync_blocks_equal"] == 2
    assert world.engines[B].stats["resync_blocks_equal"] == 2
    for name in (A, B):
        assert states(world, name) == ("Connected", "UpToDate", "UpToDate")


# --- 6. resync pacing -------------------------------------------------------------------------


def test_zero_plan_ahead_keeps_the_fixed_rate() -> None:
    assert isinstance(pacer_for(Disk(c_plan_ahead=0), 0.0), FixedRate)
    assert isinstance(pacer_for(Disk(c_plan_ahead=20), 0.0), DynamicController)
    fixed = FixedRate(40, 0.0)  # 40 KiB/s: a 4 KiB bucket
    assert fixed.allowance(0.0, 0) == BLOCK_SIZE
    fixed.spend(BLOCK_SIZE)
    assert fixed.allowance(0.05, 0) == 2048
    assert fixed.allowance(10.0, 0) == BLOCK_SIZE  # never more than a tenth of a second


def _pipe(controller: DynamicController, delay_steps: int, n: int) -> list[int]:
    """Requests arrive `delay_steps` later; returns sectors in flight after each step."""
    flight: list[int] = [0] * delay_steps
    in_flight = 0
    history = []
    sect_in = 0
    for _ in range(n):
        request = controller.step(sect_in, in_flight)
        flight.append(request)
        in_flight += request
        sect_in = flight.pop(0)
        in_flight -= sect_in
        history.append(in_flight)
    return history


def test_the_controller_starts_at_resync_rate_and_caps_at_c_max_rate() -> None:
    disk = Disk(resync_rate=1000, c_plan_ahead=20, c_max_rate=500, c_min_rate=0)
    controller = DynamicController(disk, 0.0)
    first = controller.step(0, 0)
    assert first == 500 * 2 // 10  # resync-rate would be 200 sectors; the cap is 100
    disk = Disk(resync_rate=250, c_plan_ahead=20, c_max_rate=102400, c_min_rate=0)
    assert DynamicController(disk, 0.0).step(0, 0) == 250 * 2 // 10


def test_the_controller_converges_on_the_fill_target() -> None:
    disk = Disk(c_plan_ahead=20, c_fill_target=2000, c_min_rate=0, c_max_rate=1024000)
    history = _pipe(DynamicController(disk, 0.0), delay_steps=3, n=200)
    assert abs(history[-1] - 2000) <= 2000 * 0.1


def test_the_controller_keeps_the_delay_target_without_a_fill_target() -> None:
    disk = Disk(c_plan_ahead=10, c_fill_target=0, c_delay_target=5, c_min_rate=0)
    controller = DynamicController(disk, 0.0)
    history = _pipe(controller, delay_steps=2, n=300)
    assert history[-1] > 0  # it keeps data moving rather than stalling


@settings(max_examples=200, deadline=None)
@given(
    plan=st.integers(1, 300),
    fill=st.integers(0, 1 << 20),
    delay=st.integers(1, 100),
    max_rate=st.integers(250, 4194304),
    min_rate=st.integers(0, 4194304),
    rate=st.integers(1, 4194304),
    arrivals=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 1 << 20)), max_size=50),
)
def test_the_controller_stays_between_c_min_rate_and_c_max_rate(
    plan: int,
    fill: int,
    delay: int,
    max_rate: int,
    min_rate: int,
    rate: int,
    arrivals: list[tuple[int, int]],
) -> None:
    disk = Disk(
        resync_rate=rate,
        c_plan_ahead=plan,
        c_fill_target=fill,
        c_delay_target=delay,
        c_max_rate=max_rate,
        c_min_rate=min_rate,
    )
    controller = DynamicController(disk, 0.0)
    cap = int(max_rate * 2 * 0.1)
    floor = min(int(min_rate * 2 * 0.1), cap)
    for sect_in, in_flight in arrivals:
        assert floor <= controller.step(sect_in, in_flight) <= cap


def test_the_dynamic_controller_drives_a_real_resync() -> None:
    world = connected(disk=Disk(resync_rate=40, c_plan_ahead=5, c_max_rate=250, c_min_rate=0))
    world.cut()
    for n in range(BLOCKS):
        world.write(A, *block(n, 0x33))
    world.settle()
    world.connect(settle=False)
    start = world.now
    world.settle()
    assert world.digest(A) == world.digest(B)
    # 256 KiB at no more than 250 KiB/s: at least about a second.
    assert world.now - start >= 0.9
    assert world.engines[B].cstate is ConnState.CONNECTED


def test_allowance_hands_out_whole_steps_only() -> None:
    controller = DynamicController(Disk(resync_rate=100, c_plan_ahead=10, c_min_rate=0), 0.0)
    first = controller.allowance(0.0, 0)
    assert first == 100 * 2 // 10 * SECTOR  # a tenth of a second at resync-rate
    controller.spend(first)
    assert controller.allowance(0.05, first) == 0  # still within the first step
    assert controller.allowance(0.1, first) > 0


# --- 7. ko-count --------------------------------------------------------------------------------


def test_ko_count_drops_a_peer_that_does_not_complete_a_write() -> None:
    world = connected(Net(protocol="C", timeout=10, ko_count=3, ping_int=100))
    world.hold_io.add(B)  # the peer's disk hangs: no WriteAck ever comes
    handle = world.write(A, *block(6))
    world.settle()
    assert handle not in world.done
    world.tick(2.9)
    assert world.engines[A].cstate is ConnState.CONNECTED
    world.tick(0.2)  # 3.1 s > 3 x 1 s
    world.settle()
    assert world.done[handle].ok  # completes locally ...
    assert list(world.engines[A].bitmap.dirty()) == [6]  # ... and is remembered for resync
    assert world.engines[A].cstate is ConnState.CONNECTING
    assert "ko-count" in world.log_text(A)


def test_ko_count_zero_never_drops() -> None:
    world = connected(Net(protocol="C", timeout=10, ko_count=0, ping_int=100))
    world.hold_io.add(B)
    world.write(A, *block(6))
    world.settle()
    world.tick(60.0)
    assert world.engines[A].cstate is ConnState.CONNECTED


# --- wire -------------------------------------------------------------------------------------

NEW_MESSAGES: list[wire.Message] = [
    wire.CsumRequest(4096, 4096, b"\x01" * 16),
    wire.ResyncEqual(4096, 4096),
    wire.StartRequest(wire.START_VERIFY, 12, 1, 2, (3, 4), "sha1"),
    wire.StartRequest(wire.START_TARGET, 0, 5, 0, (0, 0)),
    wire.StartReply(wire.START_SOURCE, False, 1, 2, (3, 4), "peer is Primary"),
    wire.NewUuid(0xDEADBEEF),
    wire.VerifyRequest(8192, 4096),
    wire.VerifyReply(8192, 4096, b"d" * 20),
    wire.VerifyResult(8192, 4096, False),
    wire.VerifyDone(64, 2),
]


@pytest.mark.parametrize("message", NEW_MESSAGES, ids=lambda m: type(m).__name__)
def test_new_messages_round_trip(message: wire.Message) -> None:
    assert wire.decode(wire.encode(message, 7)) == (message, 7)


def test_bad_start_kind_is_a_wire_error() -> None:
    frame = bytearray(wire.encode(wire.StartRequest(wire.START_TARGET, 0, 1, 0, (0, 0)), 1))
    frame[wire.HEADER_SIZE] = 9
    with pytest.raises(wire.WireError, match="unknown kind 9"):
        wire.decode(bytes(frame))


# --- randomised runs with operator commands ---------------------------------------------------


@pytest.mark.parametrize("seed", range(120))
def test_random_runs_with_commands_keep_every_completed_write(seed: int) -> None:
    """Random writes, flushes, out-of-order I/O, partial delivery, cuts, reconnects, and the
    operator commands (invalidate, invalidate-remote, verify, disconnect/connect) under
    csums-alg and the dynamic controller; at the end both disks hold what was written."""
    rng = random.Random(seed)
    net = Net(
        protocol=rng.choice("ABC"),
        verify_alg="crc32",
        csums_alg=rng.choice((None, "md5")),
        ko_count=rng.choice((0, 7)),
    )
    world = OpsWorld(net, disk=Disk(resync_rate=200, c_plan_ahead=rng.choice((0, 5))))
    world.connect()
    world.promote(A)
    world.settle()
    model = bytearray(SIZE)
    busy: dict[int, int] = {}
    for _ in range(300):
        for blk, handle in list(busy.items()):
            if handle in world.done:
                assert world.done[handle].ok
                del busy[blk]
        roll = rng.random()
        if roll < 0.25:
            blk = rng.randrange(BLOCKS)
            if blk not in busy:
                offset, data = block(blk, rng.randrange(256))
                model[offset : offset + BLOCK_SIZE] = data
                busy[blk] = world.write(A, offset, data)
        elif roll < 0.28:
            world.flush(A)
        elif roll < 0.5:
            name = rng.choice((A, B))
            if world.io[name]:
                world.complete_one(name, rng.randrange(len(world.io[name])))
        elif roll < 0.75:
            world.deliver(rng.choice((A, B)), 1)
            world._close()
        elif roll < 0.85:
            world.tick(rng.choice((0.05, 0.5)))
            world._close()
        elif roll < 0.9:
            command = rng.choice(("invalidate", "invalidate_remote", "start_verify"))
            name = B if command == "invalidate" else rng.choice((A, B))
            with contextlib.suppress(EngineError):  # refused in this state: fine
                world.run(name, command)
        elif roll < 0.93 and world.linked:
            world.cut()
        elif not world.linked and all(
            e.cstate is ConnState.CONNECTING for e in world.engines.values()
        ):
            world.connect(settle=False)
    if not world.linked:
        world.connect(settle=False)
    world.settle(max_time=600)
    world.tick(0.1)
    world.settle(max_time=600)
    assert all(h in world.done for h in busy.values())
    assert world.disks[A] == model
    assert world.digest(A) == world.digest(B)
    for name, engine in world.engines.items():
        assert engine.cstate is ConnState.CONNECTED, (name, engine.cstate)
        assert engine.disk_state is DiskState.UP_TO_DATE, name
    # A verify now (and any that finished during the run) finds nothing: no false mismatch.
    world.run(rng.choice((A, B)), "start_verify")
    world.settle()
    assert (
        world.engines[A].stats["verified_blocks"] + world.engines[B].stats["verified_blocks"]
        >= BLOCKS
    )
    assert not world.handlers


# --- disk-flushes and the crashed-primary mark (the daemon's attach) --------------------------


def test_disk_flushes_no_acks_barriers_without_a_flush_on_the_secondary() -> None:
    world = connected(disk=Disk(resync_rate=1000, disk_flushes=False))
    handle = world.write(A, *block(5, 9))
    world.tick(0.1)  # closes the epoch: a barrier
    world.settle()
    assert world.done[handle].ok
    assert world.messages(wire.BarrierAck, B), "the barrier is acknowledged"
    assert not any(isinstance(op, FlushLocal) for op in world.io_log[B])
    assert world.engines[A].transfer_log == []


def test_barriers_flush_the_secondary_by_default() -> None:
    world = connected()
    world.write(A, *block(5, 9))
    world.tick(0.1)
    world.settle()
    assert any(isinstance(op, FlushLocal) for op in world.io_log[B])


def test_a_crashed_primary_with_equal_identifiers_is_the_source_of_its_log_extents() -> None:
    """The Primary crashed and came back before anything else happened: same identifiers on
    both sides, and the blocks of its activity log (now in its bitmap) may differ. Without
    the mark the handshake says "no resync" and those blocks stay different."""
    world = OpsWorld()
    crashed = world.engines[A]
    crashed.crashed_primary = True
    crashed.bitmap.set_range(0, 8)  # its replayed activity-log extent
    world.disks[A][0:BLOCK_SIZE] = b"\x07" * BLOCK_SIZE  # reached its disk, not the peer's
    world.connect()
    world.settle()
    assert world.disks[B][0:BLOCK_SIZE] == b"\x07" * BLOCK_SIZE
    assert "crashed as Primary" in world.log_text(A)
    assert not crashed.crashed_primary  # the mark has done its job
    for name in (A, B):
        assert states(world, name) == ("Connected", "UpToDate", "UpToDate")
