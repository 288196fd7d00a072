"""`resize` in the replication engine (sans-IO): the size agreement with the peer, and the
resync of the new area; and `adjust`'s options changed on the fly (`change_options`). Mixed
into engine.ReplicaEngine; resize.py has the size rule and the metadata move the shell does.

The exchange (DRBD 8.4's resize: the node where the operator runs it asks, the peer answers):

1. The asking side (`request_resize`, Connected, no resync, one side Primary as DRBD requires)
   sends ResizeRequest: its room (data sectors its backing device has), its drbd.conf `size`
   and the operator's `--size`.
2. The peer's engine hands the question to its shell (effect ResizeAsked); the shell reports
   its own room and `size` limit (`answer_resize`). The engine computes the size (resize.
   agree_size), takes it (effect Resized: the shell moves the metadata before anything else
   happens) and answers ResizeReply with the size, or not ok and why.
3. The asking side takes the same size (Resized) when the answer comes.

Grown and not `--assume-clean`: both sides mark the new blocks out of sync and resynchronise
them at once through the usual bitmap exchange, the Primary as SyncSource (DRBD's
resync_after_online_grow); two Primaries: the side that resolves conflicts in the handshake.
Not connected, `resize_alone` (the operator's `--assume-peer-has-space`) takes a size computed
from this side's room only; the new blocks stay marked for the next resync.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hastack.replica import wire
from hastack.replica.bitmap import BLOCK_SIZE, bits_for_sectors
from hastack.replica.generations import Generations
from hastack.replica.resize import ResizeError, agree_size
from hastack.replica.states import ConnState, Role

if TYPE_CHECKING:
    from hastack.replica.engine import Effect, ReplicaEngine
    from hastack.replica.model import Disk, Handlers, Net

SECTOR = 512


@dataclass(frozen=True)
class ResizeAsked:
    """The peer asks to resize: the shell answers with `answer_resize` (its own room)."""

    peer_max_sectors: int
    peer_limit_sectors: int
    requested_sectors: int


@dataclass(frozen=True)
class Resized:
    """The engine took a new size (bytes): the shell writes the metadata for it (moved to the
    device's new end for internal meta-data) before it carries out any later effect, and the
    NBD export offers the new size to new connections."""

    old_size: int
    new_size: int


class ResizeMixin:
    """The resize part of ReplicaEngine (its attributes are the engine's)."""

    # None: no resize asked here; else (ok, message) of the last one, for the shell to report
    resize_result: tuple[bool, str] | None = None
    _resize_pending: tuple[int, int, int, bool] | None = None  # asked: max, limit, --size, clean
    _resize_asked: wire.ResizeRequest | None = None  # the peer's question, until answered

    @property
    def resize_pending(self) -> bool:
        return self._resize_pending is not None

    def request_resize(
        self: ReplicaEngine,
        now: float,
        *,
        max_sectors: int,
        limit_sectors: int = 0,
        requested_sectors: int = 0,
        assume_clean: bool = False,
    ) -> list[Effect]:
        """The operator's `resize` while connected: ask the peer (step 1 above)."""
        from hastack.replica.engine import EngineError

        self._clock(now)
        self._require_connected("resize")
        if self._resize_pending is not None or self._resize_asked is not None:
            raise EngineError("resize refused: another resize is in progress")
        if self.role is not Role.PRIMARY and self.peer_role is not Role.PRIMARY:
            raise EngineError(
                "resize refused: need one Primary node to resize (as DRBD): promote one side"
            )
        self._resize_pending = (max_sectors, limit_sectors, requested_sectors, assume_clean)
        self.resize_result = None
        gens = self.generations
        flags = wire.RESIZE_ASSUME_CLEAN if assume_clean else 0
        self._send(
            wire.ResizeRequest(
                max_sectors,
                limit_sectors,
                requested_sectors,
                flags,
                gens.current,
                gens.bitmap,
                gens.history,
            )
        )
        self._log(f"resize requested (room {max_sectors} sectors), waiting for the peer")
        return self._flush_out()

    def answer_resize(
        self: ReplicaEngine,
        now: float,
        *,
        max_sectors: int,
        limit_sectors: int = 0,
        error: str = "",
    ) -> list[Effect]:
        """The shell's answer to ResizeAsked: this side's room and drbd.conf `size` (or the
        error that prevents it from resizing)."""
        self._clock(now)
        msg, self._resize_asked = self._resize_asked, None
        if msg is None or self._link is None:
            return self._flush_out()  # the connection went meanwhile
        sectors = 0
        if not error:
            try:
                sectors = agree_size(
                    current=self.size // SECTOR,
                    local_max=max_sectors,
                    peer_max=msg.max_sectors,
                    local_limit=limit_sectors,
                    peer_limit=msg.limit_sectors,
                    requested=msg.requested_sectors,
                )
            except ResizeError as err:
                error = f"{self.node}: {err}"  # "this side" is this node in the message
        gens = self.generations
        if error:
            self._log(f"peer's resize refused: {error}", "warning")
            self._send(wire.ResizeReply(False, 0, gens.current, gens.bitmap, gens.history, error))
            return self._flush_out()
        clean = bool(msg.flags & wire.RESIZE_ASSUME_CLEAN)
        old = self.size
        self._take_size(sectors, clean)
        gens = self.generations
        self._send(wire.ResizeReply(True, sectors, gens.current, gens.bitmap, gens.history))
        self._resync_new_area(old, clean, Generations(msg.current, msg.bitmap, msg.history))
        return self._flush_out()

    def resize_alone(
        self: ReplicaEngine, now: float, *, sectors: int, assume_clean: bool = False
    ) -> list[Effect]:
        """Not connected, `--assume-peer-has-space`: take `sectors` (computed by the shell
        from this side's room); the new blocks are marked for the next resync."""
        from hastack.replica.engine import EngineError

        self._clock(now)
        if self._link is not None:
            raise EngineError("resize --assume-peer-has-space is for a disconnected resource")
        self._take_size(sectors, assume_clean)
        self.resize_result = (True, f"resized to {sectors} sectors without the peer")
        return self._flush_out()

    def change_options(
        self: ReplicaEngine, now: float, *, net: Net, disk: Disk, handlers: Handlers | None = None
    ) -> list[Effect]:
        """`adjust`: options changed on the fly (DRBD's net-options / disk-options). Those a
        connection is built with (protocol, authentication, data-integrity-alg) are the
        shell's to apply by reconnecting; everything else takes effect now: the resync window
        follows max-buffers, and a resync running keeps going at the new rate."""
        from hastack.replica.engine import MAX_RESYNC_WINDOW
        from hastack.replica.resync_control import pacer_for

        self._clock(now)
        old_disk = self.disk
        self.net = net
        self.disk = disk
        if handlers is not None and hasattr(self, "handlers"):
            self.handlers = handlers
        self._resync_window = max(32, min(net.max_buffers, MAX_RESYNC_WINDOW))
        if self._pacer is not None and disk != old_disk:
            self._pacer = pacer_for(disk, now)
        self._log("options changed (adjust)")
        return self._flush_out()

    # --- internals -----------------------------------------------------------------------

    def _receive_resize_request(self: ReplicaEngine, msg: wire.ResizeRequest) -> None:
        refusal = ""
        if self.cstate is not ConnState.CONNECTED:
            refusal = f"{self.node} is {self.cstate.value}"
        elif self._pending_start or self._resize_pending is not None:
            refusal = f"{self.node} is waiting for the peer on a command of its own"
        elif self._resize_asked is not None:
            refusal = f"{self.node} is answering another resize"
        if refusal:
            gens = self.generations
            self._send(wire.ResizeReply(False, 0, gens.current, gens.bitmap, gens.history, refusal))
            return
        self._resize_asked = msg
        self._out.append(ResizeAsked(msg.max_sectors, msg.limit_sectors, msg.requested_sectors))

    def _receive_resize_reply(self: ReplicaEngine, msg: wire.ResizeReply) -> None:
        pending, self._resize_pending = self._resize_pending, None
        if pending is None:
            self._fail("unexpected resize reply")
            return
        if not msg.ok:
            self.resize_result = (False, f"refused by the peer: {msg.reason}")
            self._log(f"resize refused by the peer: {msg.reason}", "error")
            return
        clean = pending[3]
        if msg.sectors > pending[0] or (pending[2] and msg.sectors != pending[2]):
            self.resize_result = (False, f"the peer answered an impossible size {msg.sectors}")
            self._fail(f"peer agreed on {msg.sectors} sectors, this side cannot take it")
            return
        old = self.size
        self._take_size(msg.sectors, clean)
        self.resize_result = (True, f"resized to {msg.sectors} sectors")
        self._resync_new_area(old, clean, Generations(msg.current, msg.bitmap, msg.history))

    def _take_size(self: ReplicaEngine, sectors: int, assume_clean: bool) -> None:
        old = self.size
        new = sectors * SECTOR
        self.bitmap.resize(bits_for_sectors(sectors))
        if new > old and not assume_clean:
            # The new blocks (and the old last block, if it was partial) hold whatever the
            # devices had there: out of sync until a resync copies the source's.
            self.bitmap.set_range(old // BLOCK_SIZE, self.bitmap.nbits)
        self.size = new
        self._out.append(Resized(old, new))
        what = "grown" if new > old else "shrunk" if new < old else "unchanged"
        clean = " (--assume-clean: the new area is not resynchronised)" if assume_clean else ""
        self._log(f"size {old // 1024} KiB -> {new // 1024} KiB ({what}){clean}")

    def _resync_new_area(
        self: ReplicaEngine, old_size: int, assume_clean: bool, peer_gens: Generations
    ) -> None:
        """Both sides took the new size: a grown volume resynchronises its new blocks now."""
        link = self._link
        if link is None or self.size <= old_size or assume_clean:
            return
        peer_name = link.peer_hello.node if link.peer_hello is not None else ""
        if self.role is not self.peer_role:
            source = self.role is Role.PRIMARY
        else:
            source = self.node > peer_name  # the side that resolves handshake conflicts
        role = "sync-source" if source else "sync-target"
        if not source:
            self._sync_peer_gens = peer_gens
        link.peer_bitmap_runs = []
        link.peer_bitmap_done = False
        link.sync_uuid_received = False
        self._sync_role = role
        self.cstate = ConnState.WF_BITMAP
        self._log(f"resync of the new area as {role.removeprefix('sync-')}")
        gate = getattr(self, "_open_resync_gate", None)
        if gate is not None:
            gate(role)
        self._send_bitmap()
