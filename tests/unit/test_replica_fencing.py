"""DRBD 8.4's `disk { fencing }` and the handlers the engine waits for (fence-peer,
before-resync-target, before-resync-source, after-resync-target): two engines wired in memory
(tests.unit.test_replica_engine's World), handler results fed back with `handler_done`."""

from __future__ import annotations

import random

import pytest

from hastack.replica import wire
from hastack.replica.bitmap import BLOCK_SIZE
from hastack.replica.engine import (
    FENCE_PEER_INCONSISTENT,
    FENCE_PEER_OUTDATED,
    FENCE_PEER_PRIMARY,
    FENCE_PEER_STONITHED,
    FENCE_PEER_UNREACHABLE,
    EngineError,
    ReplicaEngine,
    WriteLocal,
)
from hastack.replica.model import Disk, Handlers, Net
from hastack.replica.states import ConnState, DiskState, Role
from tests.unit.test_replica_engine import SIZE, A, B, block
from tests.unit.test_replica_engine_ops import IN_SYNC, OpsWorld

FENCE = "hastack replica fence-peer"  # any command: the engine only looks whether one is set
ALL_HANDLERS = Handlers(
    fence_peer=FENCE,
    before_resync_target="snapshot",
    after_resync_target="unfence",
    before_resync_source="check",
)


class FenceWorld(OpsWorld):
    """OpsWorld whose engines have a fencing policy and handlers."""

    def __init__(
        self,
        fencing: str = "resource-only",
        *,
        handlers: dict[str, Handlers] | None = None,
        disk_states: dict[str, DiskState] | None = None,
        peer_disks: dict[str, DiskState] | None = None,
        net: Net | None = None,
    ) -> None:
        super().__init__(net)
        for i, name in enumerate((A, B)):
            self.engines[name] = ReplicaEngine(
                node=name,
                size=SIZE,
                net=net or Net(),
                disk=Disk(resync_rate=1000, fencing=fencing),  # type: ignore[arg-type]
                rng=random.Random(i),
                generations=IN_SYNC,
                disk_state=(disk_states or {}).get(name, DiskState.UP_TO_DATE),
                handlers=(handlers or {}).get(name, Handlers(fence_peer=FENCE)),
                peer_disk=(peer_disks or {}).get(name, DiskState.UNKNOWN),
            )

    def quiet(self) -> None:
        """Deliver and complete everything, without letting time pass."""
        while True:
            progress = sum(self.deliver(n) + self.complete_io(n) for n in self.engines)
            self._close()
            if not progress:
                return

    def handled(self, name: str, handler: str) -> int:
        return sum(1 for n, h in self.handlers if (n, h) == (name, handler))

    def done_handler(self, name: str, handler: str, code: int | None) -> None:
        self.run(name, "handler_done", handler, code)

    def errors(self, name: str) -> str:
        return "\n".join(e.text for n, e in self.logs if n == name and e.level == "error")


def primary_pair(fencing: str = "resource-and-stonith", **kw: object) -> FenceWorld:
    world = FenceWorld(fencing, **kw)  # type: ignore[arg-type]
    world.connect()
    world.promote(A)
    world.settle()
    assert world.engines[A].role is Role.PRIMARY
    assert world.engines[A].cstate is ConnState.CONNECTED
    assert world.handlers == []  # connected: nothing to fence
    return world


def status(world: FenceWorld, name: str) -> dict[str, object]:
    return world.engines[name].status


# --- the Primary loses its peer ---------------------------------------------------------


def test_dont_care_runs_no_fence_peer_and_suspends_nothing() -> None:
    world = primary_pair("dont-care")
    world.cut()
    handle = world.write(A, *block(2))
    world.settle()
    assert world.handled(A, "fence-peer") == 0
    assert world.done[handle].ok
    assert status(world, A)["suspended"] == []


def test_resource_only_runs_fence_peer_and_keeps_io_running() -> None:
    world = primary_pair("resource-only")
    world.cut()
    assert world.handled(A, "fence-peer") == 1
    assert world.handled(B, "fence-peer") == 0  # only a Primary fences on connection loss
    handle = world.write(A, *block(2))
    world.settle()
    assert world.done[handle].ok  # resource-only: I/O is not frozen
    assert status(world, A)["suspended"] == []
    world.done_handler(A, "fence-peer", FENCE_PEER_OUTDATED)
    assert world.engines[A].peer_disk is DiskState.OUTDATED
    assert status(world, A)["peer_disk"] == "Outdated"


def test_stonith_holds_io_from_the_connection_loss_until_fence_peer_succeeds() -> None:
    world = primary_pair()
    world.hold_io.add(B)  # B has the write but never writes it: no WriteAck
    in_flight = world.write(A, *block(1))
    world.settle()
    assert in_flight not in world.done
    world.cut()
    assert world.handled(A, "fence-peer") == 1
    assert status(world, A)["suspended"] == ["fencing"]
    world.settle()
    assert in_flight not in world.done  # not failed, not completed: frozen
    writes_before = sum(isinstance(op, WriteLocal) for op in world.io_log[A])
    new = world.write(A, *block(4))
    flush = world.flush(A)
    world.settle()
    assert new not in world.done and flush not in world.done
    assert sum(isinstance(op, WriteLocal) for op in world.io_log[A]) == writes_before  # held
    assert status(world, A)["stats"]["ap"] >= 2  # type: ignore[index]

    world.done_handler(A, "fence-peer", FENCE_PEER_STONITHED)
    world.settle()
    assert world.engines[A].peer_disk is DiskState.OUTDATED
    assert status(world, A)["suspended"] == []
    assert world.done[in_flight].ok and world.done[new].ok and world.done[flush].ok
    offset, data = block(4)
    assert world.disks[A][offset : offset + BLOCK_SIZE] == data
    # both writes are in the bitmap: the peer gets them by the next resync
    assert world.engines[A].bitmap.test(1) and world.engines[A].bitmap.test(4)
    assert "I/O resumed" in world.log_text(A)


@pytest.mark.parametrize(
    ("code", "peer_disk"),
    [
        (FENCE_PEER_INCONSISTENT, DiskState.INCONSISTENT),
        (FENCE_PEER_OUTDATED, DiskState.OUTDATED),
        (FENCE_PEER_UNREACHABLE, DiskState.OUTDATED),  # this disk is UpToDate
        (FENCE_PEER_STONITHED, DiskState.OUTDATED),
    ],
)
def test_fence_peer_success_codes_set_the_peer_disk_and_resume_io(
    code: int, peer_disk: DiskState
) -> None:
    world = primary_pair()
    world.cut()
    held = world.write(A, *block(3))
    world.settle()
    assert held not in world.done
    world.done_handler(A, "fence-peer", code)
    world.settle()
    assert world.engines[A].peer_disk is peer_disk
    assert world.done[held].ok
    assert status(world, A)["suspended"] == []
    assert world.errors(A) == ""


@pytest.mark.parametrize("code", [0, 1, 2, 8, 100, None])
def test_a_broken_fence_peer_leaves_io_suspended_and_logs_an_error(code: int | None) -> None:
    world = primary_pair()
    world.cut()
    held = world.write(A, *block(3))
    world.done_handler(A, "fence-peer", code)
    world.settle()
    assert held not in world.done
    assert status(world, A)["suspended"] == ["fencing"]
    assert world.engines[A].peer_disk is DiskState.UNKNOWN
    assert "fence-peer handler broken" in world.errors(A)
    assert "I/O stays suspended" in world.errors(A)


def test_fence_peer_six_on_a_primary_refuses_and_io_stays_suspended() -> None:
    world = primary_pair()
    world.cut()
    world.done_handler(A, "fence-peer", FENCE_PEER_PRIMARY)
    assert status(world, A)["suspended"] == ["fencing"]
    assert world.engines[A].disk_state is DiskState.UP_TO_DATE  # a Primary keeps its disk
    assert "the peer is Primary and so is this node" in world.errors(A)


def test_resume_io_by_hand_completes_the_frozen_requests() -> None:
    world = primary_pair()
    world.cut()
    held = world.write(A, *block(5))
    world.done_handler(A, "fence-peer", 1)
    world.settle()
    assert held not in world.done
    world.run(A, "resume_io")
    world.settle()
    assert world.done[held].ok
    assert status(world, A)["suspended"] == []
    assert world.engines[A].peer_disk is DiskState.UNKNOWN  # nothing is known of the peer
    assert "resume-io by the operator" in world.log_text(A)
    world.run(A, "resume_io")  # not suspended: nothing to do, no error


def test_no_fence_peer_handler_configured_is_an_error_and_io_stays_frozen() -> None:
    world = primary_pair(handlers={A: Handlers(), B: Handlers()})
    world.cut()
    assert world.handled(A, "fence-peer") == 0
    assert "no fence-peer handler is configured" in world.errors(A)
    assert status(world, A)["suspended"] == ["fencing"]


def test_the_peer_reconnecting_while_fence_peer_runs_resumes_io_and_ignores_the_result() -> None:
    world = primary_pair()
    world.cut()
    held = world.write(A, *block(6))
    world.connect()  # the link is back before the handler answered
    assert status(world, A)["suspended"] == []
    assert world.done[held].ok
    world.done_handler(A, "fence-peer", FENCE_PEER_OUTDATED)
    world.settle()
    assert world.engines[A].peer_disk is DiskState.UP_TO_DATE  # not applied: B is connected
    assert "not applied" in world.log_text(A)
    offset, data = block(6)
    assert world.disks[B][offset : offset + BLOCK_SIZE] == data  # resynced to the peer


def test_no_fencing_when_the_peer_is_known_inconsistent() -> None:
    # A syncs to B (B Inconsistent); the link goes mid-resync: B cannot be promoted, so
    # there is no one to fence (DRBD keeps pdsk Inconsistent across the disconnect).
    world = FenceWorld("resource-and-stonith", peer_disks={A: DiskState.OUTDATED})
    world.promote(A)  # alone, the peer remembered Outdated: no fence-peer
    for n in range(8):
        world.write(A, *block(n, 0xEE))
    world.quiet()
    world.connect(settle=False)
    for _ in range(4):
        world.deliver(A)
        world.deliver(B)
    assert world.engines[A].cstate is ConnState.SYNC_SOURCE
    assert world.engines[A].peer_disk is DiskState.INCONSISTENT
    world.cut()
    assert world.engines[A].peer_disk is DiskState.INCONSISTENT
    assert world.handled(A, "fence-peer") == 0
    assert status(world, A)["suspended"] == []


def test_a_failed_reconnect_does_not_fence_an_already_outdated_peer_again() -> None:
    world = primary_pair()
    world.cut()
    world.done_handler(A, "fence-peer", FENCE_PEER_OUTDATED)
    world.apply(A, world.engines[A].connection_made(world.now))
    world.apply(A, world.engines[A].connection_lost(world.now))  # before any Hello
    assert world.handled(A, "fence-peer") == 1
    assert world.engines[A].peer_disk is DiskState.OUTDATED


# --- promotion with the peer DUnknown ---------------------------------------------------


def lone_secondary(fencing: str = "resource-only", **kw: object) -> FenceWorld:
    world = FenceWorld(fencing, **kw)  # type: ignore[arg-type]
    world.connect()
    world.cut()  # both Secondary: nobody fences on the loss
    assert world.handlers == []
    return world


def test_promotion_with_the_peer_dunknown_waits_for_fence_peer() -> None:
    world = lone_secondary()
    world.promote(B)
    engine = world.engines[B]
    assert world.handled(B, "fence-peer") == 1
    assert engine.role is Role.SECONDARY and engine.promote_pending
    world.promote(B)  # asked again while waiting: no second handler run
    assert world.handled(B, "fence-peer") == 1
    refused = world.write(B, *block(1))
    assert not world.done[refused].ok  # still Secondary
    world.done_handler(B, "fence-peer", FENCE_PEER_UNREACHABLE)
    assert engine.role is Role.PRIMARY and not engine.promote_pending
    assert engine.peer_disk is DiskState.OUTDATED
    handle = world.write(B, *block(1))
    world.settle()
    assert world.done[handle].ok


def test_a_failed_fence_peer_refuses_the_promotion_and_says_why() -> None:
    world = lone_secondary()
    world.promote(B)
    world.done_handler(B, "fence-peer", None)
    engine = world.engines[B]
    assert engine.role is Role.SECONDARY and not engine.promote_pending
    assert (
        "fence-peer" in engine.promote_error and "not known to be outdated" in engine.promote_error
    )
    assert "promotion refused" in world.errors(B)


def test_fence_peer_six_outdates_a_secondary_that_wanted_promotion() -> None:
    world = lone_secondary()
    world.promote(B)
    world.done_handler(B, "fence-peer", FENCE_PEER_PRIMARY)
    engine = world.engines[B]
    assert engine.role is Role.SECONDARY
    assert engine.disk_state is DiskState.OUTDATED
    with pytest.raises(EngineError, match="Outdated"):
        world.promote(B)


def test_primary_force_skips_fence_peer_and_takes_the_peer_as_outdated() -> None:
    world = lone_secondary("resource-and-stonith")
    world.apply(B, world.engines[B].promote(world.now, force=True))
    assert world.engines[B].role is Role.PRIMARY
    assert world.engines[B].peer_disk is DiskState.OUTDATED  # as DRBD's forced promotion
    assert world.handled(B, "fence-peer") == 0
    # a later connection attempt that fails before its handshake freezes nothing
    world.apply(B, world.engines[B].connection_made(world.now))
    world.apply(B, world.engines[B].connection_lost(world.now))
    assert world.handled(B, "fence-peer") == 0 and status(world, B)["suspended"] == []


def test_after_resume_io_a_failed_reconnect_retries_fence_peer_but_does_not_freeze() -> None:
    world = primary_pair()
    world.cut()
    world.done_handler(A, "fence-peer", 1)
    world.run(A, "resume_io")
    world.apply(A, world.engines[A].connection_made(world.now))
    world.apply(A, world.engines[A].connection_lost(world.now))  # before any Hello
    assert world.handled(A, "fence-peer") == 2  # DRBD retries it after each attempt
    assert status(world, A)["suspended"] == []
    handle = world.write(A, *block(9))
    world.settle()
    assert world.done[handle].ok


def test_promotion_needs_a_fence_peer_handler_when_fencing_is_on() -> None:
    world = lone_secondary(handlers={A: Handlers(), B: Handlers()})
    with pytest.raises(EngineError, match="no fence-peer handler"):
        world.promote(B)
    assert world.engines[B].role is Role.SECONDARY and not world.engines[B].promote_pending


def test_promotion_without_fencing_or_with_a_remembered_outdated_peer_runs_nothing() -> None:
    world = lone_secondary("dont-care")
    world.promote(B)
    assert world.engines[B].role is Role.PRIMARY
    world = FenceWorld(peer_disks={B: DiskState.OUTDATED})  # PEER_OUTDATED at attach
    world.promote(B)
    assert world.engines[B].role is Role.PRIMARY and world.handlers == []


def test_demote_calls_off_a_promotion_waiting_for_fence_peer() -> None:
    world = lone_secondary()
    world.promote(B)
    world.run(B, "demote")
    world.done_handler(B, "fence-peer", FENCE_PEER_OUTDATED)
    assert world.engines[B].role is Role.SECONDARY


def test_a_consistent_disk_is_promoted_once_the_peer_is_stonithed() -> None:
    # After a restart with fencing the disk attaches Consistent (was UpToDate, the peer's
    # state unknown); fence-peer 7 makes it UpToDate and Primary.
    world = FenceWorld("resource-and-stonith", disk_states={B: DiskState.CONSISTENT})
    assert world.engines[B].status["disk"] == "Consistent"
    world.promote(B)
    world.done_handler(B, "fence-peer", FENCE_PEER_STONITHED)
    assert world.engines[B].role is Role.PRIMARY
    assert world.engines[B].disk_state is DiskState.UP_TO_DATE


def test_a_consistent_disk_is_not_promoted_when_the_peer_is_merely_unreachable() -> None:
    world = FenceWorld("resource-only", disk_states={B: DiskState.CONSISTENT})
    world.promote(B)
    world.done_handler(B, "fence-peer", FENCE_PEER_UNREACHABLE)  # 5 counts only if UpToDate
    assert world.engines[B].role is Role.SECONDARY
    assert world.engines[B].disk_state is DiskState.CONSISTENT
    assert "not known to be outdated" in world.engines[B].promote_error


def test_consistent_disks_become_uptodate_when_connected_with_the_same_data() -> None:
    world = FenceWorld(disk_states={A: DiskState.CONSISTENT, B: DiskState.CONSISTENT})
    world.connect()
    for name in (A, B):
        engine = world.engines[name]
        assert (engine.disk_state, engine.peer_disk) == (DiskState.UP_TO_DATE,) * 2
    assert world.handlers == []


# --- resync handlers --------------------------------------------------------------------


def resync_world(handlers: Handlers, *, on: str = B) -> FenceWorld:
    """A was Primary alone and changed blocks 0-7 (B has not): the next connection makes A
    SyncSource and B SyncTarget."""
    world = FenceWorld("dont-care", handlers={on: handlers, (A if on == B else B): Handlers()})
    world.connect()
    world.promote(A)
    world.cut()
    for n in range(8):
        world.write(A, *block(n, 0xEE))
    world.settle()
    assert world.engines[A].bitmap.count() == 8
    return world


def test_before_resync_target_runs_before_the_target_changes_anything() -> None:
    world = resync_world(Handlers(before_resync_target="snapshot", after_resync_target="x"))
    world.connect()
    target = world.engines[B]
    assert world.handled(B, "before-resync-target") == 1
    assert target.cstate is ConnState.WF_BITMAP  # waiting for the handler
    assert target.disk_state is DiskState.UP_TO_DATE  # not yet made Inconsistent
    # a mirrored write arriving now is not applied either
    handle = world.write(A, *block(20, 0x77))
    world.quiet()
    assert world.disks[B][20 * BLOCK_SIZE] == 0 and handle not in world.done
    assert world.disks[B][0] == 0 and world.handled(B, "after-resync-target") == 0

    world.done_handler(B, "before-resync-target", 0)
    world.settle()
    assert target.disk_state is DiskState.UP_TO_DATE and target.cstate is ConnState.CONNECTED
    assert world.digest(A) == world.digest(B)
    assert world.done[handle].ok
    assert world.handled(B, "after-resync-target") == 1


def test_a_failing_before_resync_target_drops_the_connection() -> None:
    world = resync_world(Handlers(before_resync_target="false"))
    world.connect()
    world.done_handler(B, "before-resync-target", 1)
    world.settle()
    target = world.engines[B]
    assert target.cstate is ConnState.STANDALONE  # as DRBD: disconnecting -> StandAlone
    assert not target.wants_connection
    assert world.engines[A].cstate is ConnState.CONNECTING  # the peer just lost the link
    assert target.disk_state is DiskState.UP_TO_DATE  # left as it was: nothing resynced
    assert world.disks[B][0] == 0
    assert "before-resync-target handler exited 1: dropping the connection" in world.errors(B)
    assert world.handled(B, "after-resync-target") == 0


@pytest.mark.parametrize(("code", "syncs"), [(0, True), (3, True), (2, False), (None, False)])
def test_before_resync_source_gates_the_source(code: int | None, syncs: bool) -> None:
    world = resync_world(Handlers(before_resync_source="check"), on=A)
    world.connect()
    assert world.handled(A, "before-resync-source") == 1
    assert world.engines[A].cstate is ConnState.WF_BITMAP
    assert not world.messages(wire.SyncUuid, A)
    world.done_handler(A, "before-resync-source", code)
    world.settle()
    if syncs:
        assert world.engines[B].cstate is ConnState.CONNECTED
        assert world.digest(A) == world.digest(B)
    else:
        assert world.engines[A].cstate is ConnState.STANDALONE
        assert world.engines[B].disk_state is DiskState.UP_TO_DATE  # untouched
        assert world.disks[B][0] == 0


def test_a_handler_result_for_a_connection_that_is_gone_is_ignored() -> None:
    world = resync_world(Handlers(before_resync_target="snapshot"))
    world.connect()
    world.cut()
    world.done_handler(B, "before-resync-target", 0)  # too late: nothing to start
    assert world.engines[B].cstate is ConnState.CONNECTING
    world.connect()
    assert world.handled(B, "before-resync-target") == 2  # asked again for the new link
    world.done_handler(B, "before-resync-target", 0)
    world.settle()
    assert world.digest(A) == world.digest(B)


def test_without_resync_handlers_nothing_waits() -> None:
    world = resync_world(Handlers())
    world.connect()
    assert world.handlers == []
    assert world.digest(A) == world.digest(B)


@pytest.mark.parametrize(("fencing", "runs"), [("resource-only", 1), ("dont-care", 0)])
def test_the_sync_source_runs_unfence_peer_after_the_resync_when_fencing(
    fencing: str, runs: int
) -> None:
    world = FenceWorld(
        fencing, handlers={A: Handlers(fence_peer=FENCE, unfence_peer="unfence"), B: Handlers()}
    )
    world.connect()
    world.promote(A)
    world.cut()
    if fencing != "dont-care":
        assert world.handled(A, "fence-peer") == 1
        world.done_handler(A, "fence-peer", FENCE_PEER_OUTDATED)
    for n in range(4):
        world.write(A, *block(n, 0x33))
    world.settle()
    assert world.handled(A, "unfence-peer") == 0
    world.connect()
    assert world.digest(A) == world.digest(B)
    assert world.handled(A, "unfence-peer") == runs
    assert world.handled(B, "unfence-peer") == 0
