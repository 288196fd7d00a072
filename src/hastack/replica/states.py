"""The state vocabulary of one replicated volume: roles, disk states and connection states.

Role and DiskState are IntEnums because their values travel on the wire (wire.Hello,
wire.StateChange); the numbers are hastack's own and must never be renumbered.
"""

from __future__ import annotations

import enum


class Role(enum.IntEnum):
    SECONDARY = 0
    PRIMARY = 1

    @property
    def literal(self) -> str:
        """The spelling splitbrain.py and handshake.py use."""
        return self.name.lower()


class DiskState(enum.IntEnum):
    DISKLESS = 0
    INCONSISTENT = 1  # a resync target mid-sync, or never synced: not usable as a source
    OUTDATED = 2  # consistent but known to be older than the peer's
    UP_TO_DATE = 3
    UNKNOWN = 4  # the peer's disk while disconnected (DRBD's DUnknown)
    # Was UpToDate at the last stop, attached with `fencing` set and the peer not known to be
    # Outdated: UpToDate again once connected, or once fence-peer outdated the peer.
    CONSISTENT = 5

    @property
    def literal(self) -> str:
        """DRBD's spelling, as /proc/drbd and `drbdadm dstate` show it."""
        return _DISK_LITERALS[self]


_DISK_LITERALS = {
    DiskState.DISKLESS: "Diskless",
    DiskState.INCONSISTENT: "Inconsistent",
    DiskState.OUTDATED: "Outdated",
    DiskState.UP_TO_DATE: "UpToDate",
    DiskState.UNKNOWN: "DUnknown",
    DiskState.CONSISTENT: "Consistent",
}


class ConnState(enum.Enum):
    STANDALONE = "StandAlone"  # not trying to connect (after a refusal or `disconnect`)
    CONNECTING = "Connecting"  # waiting for the shell to hand us a connection, or for auth/hello
    WF_BITMAP = "WFBitmap"  # the handshake decided a resync; bitmaps are being exchanged
    SYNC_SOURCE = "SyncSource"
    SYNC_TARGET = "SyncTarget"
    CONNECTED = "Connected"
    VERIFY_S = "VerifyS"  # online verify: this side asks for digests and compares
    VERIFY_T = "VerifyT"  # online verify: this side answers with digests

    @property
    def replicating(self) -> bool:
        """Application writes are mirrored to the peer in these states."""
        return self in (
            ConnState.CONNECTED,
            ConnState.SYNC_SOURCE,
            ConnState.SYNC_TARGET,
            ConnState.VERIFY_S,
            ConnState.VERIFY_T,
        )
