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


class ConnState(enum.Enum):
    STANDALONE = "StandAlone"  # not trying to connect (after a refusal or `disconnect`)
    CONNECTING = "Connecting"  # waiting for the shell to hand us a connection, or for auth/hello
    WF_BITMAP = "WFBitmap"  # the handshake decided a resync; bitmaps are being exchanged
    SYNC_SOURCE = "SyncSource"
    SYNC_TARGET = "SyncTarget"
    CONNECTED = "Connected"

    @property
    def replicating(self) -> bool:
        """Application writes are mirrored to the peer in these states."""
        return self in (ConnState.CONNECTED, ConnState.SYNC_SOURCE, ConnState.SYNC_TARGET)
