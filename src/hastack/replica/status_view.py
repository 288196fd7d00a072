"""Render the status of replicated resources: /proc/drbd, drbdadm role/cstate/dstate,
a DRBD 9 style `status` for humans, and the JSON of `status --json`.

Pure functions over the dicts the daemon reports (no I/O, inputs are never mutated).
The daemon's dicts may lack optional keys or carry odd values after a version skew, so
every reader here falls back to a default instead of raising: a status command that
crashes is worse than one that shows "DUnknown".

Fidelity notes (the layouts follow DRBD 8.4's drbd_proc.c and drbdsetup, DRBD 9's
drbdsetup status):

* /proc/drbd's progress bar in DRBD is one character wider below 5% (it always prints
  the '>' and then 20 dots); here the bar always has exactly the requested width.
* Minors whose device is unconfigured (StandAlone, Diskless, Secondary; DRBD prints
  "cs:Unconfigured" for them) are left out, as if the minor did not exist.
* The "wo:" letter, the isp flags ('a', 'p', 'u'), the congestion letter, the
  activity-log-suspended flag and the "want:" rate are not in the daemon's schema;
  optional keys supply them and the defaults are DRBD's usual values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "CONNECTED_STATES",
    "SYNC_STATES",
    "cstate_line",
    "dstate_line",
    "format_duration",
    "json_status",
    "proc_drbd",
    "progress_bar",
    "role_line",
    "status_text",
]

Resource = Mapping[str, Any]
Volume = Mapping[str, Any]

# Connection states in which /proc/drbd prints the two progress lines.
SYNC_STATES: frozenset[str] = frozenset({"SyncSource", "SyncTarget", "VerifyS", "VerifyT"})
_VERIFY_STATES: frozenset[str] = frozenset({"VerifyS", "VerifyT"})
# drbd_proc.c adds " want: <c_sync_rate>" only where the local side paces the
# requests: the resync target and the verify source.
_WANT_STATES: frozenset[str] = frozenset({"SyncTarget", "VerifyS"})

# Connection states at or above DRBD's C_CONNECTED: the peer's role and disk are
# known, and DRBD 9 prints "role:" for the connection instead of "connection:".
CONNECTED_STATES: frozenset[str] = frozenset(
    {
        "Connected",
        "StartingSyncS",
        "StartingSyncT",
        "WFBitmap",
        "WFBitMapS",
        "WFBitMapT",
        "WFSyncUUID",
        "SyncSource",
        "SyncTarget",
        "VerifyS",
        "VerifyT",
        "PausedSyncS",
        "PausedSyncT",
        "Ahead",
        "Behind",
    }
)

# Peer disk states DRBD keeps across a disconnect (sanitize_state in drbd_state.c):
# an outdated or inconsistent peer stays so, anything else becomes DUnknown.
_KEPT_PEER_DISKS: frozenset[str] = frozenset({"Inconsistent", "Outdated"})

_STAT_KEYS: tuple[str, ...] = ("ns", "nr", "dw", "dr", "al", "bm", "lo", "pe", "ua", "ap", "ep")

# The bitmap granularity: one bit covers 4 KiB, and /proc/drbd's sizes are whole bits.
_BM_BLOCK_KIB = 4
# drbd_proc.c switches the "(left/total)" pair from K to M above 4 GiB of resync.
_MIB_THRESHOLD_BITS = 4 << 18

# drbd_proc.c's write_ordering_chars; the daemon may give the name or the letter.
_WRITE_ORDERING = {"none": "n", "drain": "d", "flush": "f", "n": "n", "d": "d", "f": "f"}

_UNKNOWN_DURATION = "-:--:--"


# --------------------------------------------------------------------------- readers


def _int(value: Any, default: int = 0) -> int:
    """An int from whatever the daemon sent; bools and non-finite floats are not numbers."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return default


def _float(value: Any) -> float | None:
    """A finite float, or None: NaN and inf would poison every comparison downstream."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an int beyond a double's range
            return None
        return number if math.isfinite(number) else None
    return None


def _str(value: Any, default: str) -> str:
    return value if isinstance(value, str) and value else default


def _resources(resources: Iterable[Resource] | None) -> list[Resource]:
    if resources is None:
        return []
    return [res for res in resources if isinstance(res, Mapping)]


def _volumes(resource: Resource) -> list[Volume]:
    """The resource's volumes in volume-number order, as drbdadm iterates them."""
    volumes = resource.get("volumes")
    if not isinstance(volumes, Sequence) or isinstance(volumes, str):
        return []
    found = [vol for vol in volumes if isinstance(vol, Mapping)]
    # Volumes without a number sort last instead of raising on a None comparison.
    return sorted(found, key=lambda vol: (_int(vol.get("volume"), -1) < 0, _int(vol.get("volume"))))


def _sync(volume: Volume) -> Mapping[str, Any] | None:
    sync = volume.get("sync")
    return sync if isinstance(sync, Mapping) else None


def _resource_cstate(resource: Resource) -> str:
    return _str(resource.get("cstate"), "Unknown")


def _volume_cstate(resource: Resource, volume: Volume) -> str:
    """The connection state of one volume.

    In DRBD 8.4 the connection state is per minor: one volume can be SyncSource while
    its sibling is Connected. The daemon reports cstate per resource and sync per
    volume, so a volume's own sync record decides its state while connected.
    """
    own = volume.get("cstate")
    if isinstance(own, str) and own:
        return own
    cstate = _resource_cstate(resource)
    if cstate not in CONNECTED_STATES:
        return cstate
    sync = _sync(volume)
    if sync is not None:
        kind = sync.get("kind")
        if isinstance(kind, str) and kind in SYNC_STATES:
            return kind
        return cstate
    if cstate in SYNC_STATES:
        # The resource is syncing, but not this volume: it is merely connected.
        return "Connected"
    return cstate


def _role(resource: Resource) -> str:
    return _str(resource.get("role"), "Unknown")


def _peer_role(resource: Resource, cstate: str) -> str:
    # A disconnected peer's role is not known, whatever the daemon remembered.
    if cstate not in CONNECTED_STATES:
        return "Unknown"
    return _str(resource.get("peer_role"), "Unknown")


def _disk(volume: Volume) -> str:
    return _str(volume.get("disk"), "DUnknown")


def _peer_disk(volume: Volume, cstate: str) -> str:
    peer_disk = _str(volume.get("peer_disk"), "DUnknown")
    if cstate not in CONNECTED_STATES and peer_disk not in _KEPT_PEER_DISKS:
        return "DUnknown"
    return peer_disk


def _flag(resource: Resource, volume: Volume, key: str) -> bool:
    """A per-volume flag that the daemon may also report once for the whole resource."""
    if key in volume:
        return bool(volume.get(key))
    return bool(resource.get(key))


def _unconfigured(resource: Resource, volume: Volume) -> bool:
    # drbdsetup 8.4 calls a minor that is StandAlone and Diskless "Unconfigured".
    return _volume_cstate(resource, volume) == "StandAlone" and _disk(volume) == "Diskless"


# --------------------------------------------------------------------------- numbers


def _permille(sync: Mapping[str, Any]) -> int:
    """Progress in tenths of a percent, truncated like DRBD's integer arithmetic."""
    percent = _float(sync.get("percent"))
    if percent is None:
        total = _int(sync.get("total_kib"))
        done = _int(sync.get("done_kib"))
        if total <= 0:
            # DRBD reports an empty resync as complete (its +1 divisor makes it 1000).
            return 1000
        return max(0, min(1000, done * 1000 // total))
    # Clamp first: a huge percent times ten would overflow to inf. The epsilon keeps
    # 28.1 (stored as 28.0999...) at 281 instead of 280.
    percent = max(0.0, min(100.0, percent))
    return max(0, min(1000, math.floor(percent * 10 + 1e-6)))


def _percent(sync: Mapping[str, Any]) -> float:
    percent = _float(sync.get("percent"))
    if percent is None:
        return _permille(sync) / 10
    return max(0.0, min(100.0, percent))


def _thousands(value: float | int | None) -> str:
    """drbd_proc.c's grouping: 1,234 and 1,234,567 (only the lowest two groups split)."""
    number = _float(value)
    v = max(0, int(number)) if number is not None else 0
    if v >= 1_000_000:
        rest = v % 1_000_000
        return f"{v // 1_000_000},{rest // 1000:03d},{rest % 1000:03d}"
    if v >= 1000:
        return f"{v // 1000},{v % 1000:03d}"
    return str(v)


def _eta(sync: Mapping[str, Any]) -> float | None:
    eta = _float(sync.get("eta_s"))
    if eta is not None:
        return eta
    # Without the daemon's estimate, derive one from the current rate if there is one.
    left = max(0, _int(sync.get("total_kib")) - _int(sync.get("done_kib")))
    for key in ("rate_kib_s", "avg_rate_kib_s"):
        rate = _float(sync.get(key))
        if rate is not None and rate > 0:
            # A vanishing rate gives inf, which is no estimate (and not JSON).
            return _float(left / rate)
    return None


def progress_bar(sync: Mapping[str, Any] | None, width: int = 20) -> str:
    """The inside of DRBD's progress bar, e.g. "====>..............." at 25%.

    Exactly `width` characters: '=' for the part done, '>' at the head, '.' for the rest.
    DRBD draws the head at cell permille*20/1000; below 5% that cell is 0 and DRBD's
    bar overflows by one, so here the head never sits left of the first cell.
    """
    if width < 1:
        return ""
    permille = _permille(sync) if isinstance(sync, Mapping) else 0
    head = max(1, min(width, permille * width // 1000))
    return "=" * (head - 1) + ">" + "." * (width - head)


def format_duration(seconds: float | int | None) -> str:
    """H:MM:SS as /proc/drbd's "finish:" prints it; hours are not padded or capped.

    Unknown durations (None, NaN, inf) render as "-:--:--" rather than a made-up number.
    """
    value = _float(seconds)
    if value is None:
        return _UNKNOWN_DURATION
    total = max(0, int(value))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


# --------------------------------------------------------------------------- /proc/drbd


def _proc_flags(resource: Resource, volume: Volume, cstate: str) -> str:
    """The "C r-----" after ds:, as drbd_proc.c prints it.

    The protocol letter is blank when there is no network configuration, which in 8.4
    is the case once a resource is StandAlone. Then: 'r' running or 's' I/O suspended,
    'a'/'p'/'u' resync paused by a sync-after dependency, the peer or the user, the
    congestion letter, and 's' when the activity log is suspended.
    """
    protocol = resource.get("protocol")
    has_net = cstate != "StandAlone" and protocol in ("A", "B", "C")
    wire = protocol if has_net else " "
    congestion = volume.get("congestion", resource.get("congestion"))
    congestion_char = congestion if isinstance(congestion, str) and len(congestion) == 1 else "-"
    return "".join(
        (
            wire,
            " ",
            "s" if bool(resource.get("suspended")) else "r",
            "a" if _flag(resource, volume, "aftr_isp") else "-",
            "p" if _flag(resource, volume, "peer_isp") else "-",
            "u" if _flag(resource, volume, "user_isp") else "-",
            congestion_char,
            "s" if _flag(resource, volume, "al_suspended") else "-",
        )
    )


def _write_ordering(resource: Resource) -> str:
    # 'f' (flush) is DRBD 8.4's default with a backing device that honours flushes.
    value = resource.get("write_ordering")
    return _WRITE_ORDERING.get(value, "f") if isinstance(value, str) else "f"


def _proc_progress(cstate: str, sync: Mapping[str, Any]) -> list[str]:
    """The two progress lines drbd_proc.c prints while resyncing or verifying."""
    permille = _permille(sync)
    label = "verified:" if cstate in _VERIFY_STATES else "sync'ed:"
    total_kib = max(0, _int(sync.get("total_kib")))
    left_kib = max(0, total_kib - max(0, _int(sync.get("done_kib"))))
    # DRBD counts in bitmap bits; a partly out-of-sync 4 KiB block is a whole bit.
    total_bits = -(-total_kib // _BM_BLOCK_KIB)
    left_bits = min(-(-left_kib // _BM_BLOCK_KIB), total_bits)
    if total_bits > _MIB_THRESHOLD_BITS:
        # Shifting bits by 10 before converting rounds M down to a multiple of 4.
        left = (left_bits >> 10) * _BM_BLOCK_KIB
        total = (total_bits >> 10) * _BM_BLOCK_KIB
        amount = f"({left}/{total})M"
    else:
        amount = f"({left_bits * _BM_BLOCK_KIB}/{total_bits * _BM_BLOCK_KIB})K"
    bar_line = f"\t[{progress_bar(sync)}] {label}{permille // 10:3d}.{permille % 10}% {amount}"
    speed = f"{_thousands(sync.get('rate_kib_s'))} ({_thousands(sync.get('avg_rate_kib_s'))})"
    want = _float(sync.get("want_kib_s"))
    if cstate in _WANT_STATES and want is not None:
        speed += f" want: {_thousands(want)}"
    stalled = " (stalled)" if sync.get("stalled") else ""
    finish_line = f"\tfinish: {format_duration(_eta(sync))} speed: {speed} K/sec{stalled}"
    return [bar_line, finish_line]


def _proc_volume(resource: Resource, volume: Volume, minor: int) -> list[str]:
    cstate = _volume_cstate(resource, volume)
    stats = volume.get("stats")
    stats = stats if isinstance(stats, Mapping) else {}
    counters = " ".join(f"{key}:{_int(stats.get(key))}" for key in _STAT_KEYS)
    lines = [
        f"{minor:2d}: cs:{cstate} ro:{_role(resource)}/{_peer_role(resource, cstate)}"
        f" ds:{_disk(volume)}/{_peer_disk(volume, cstate)}"
        f" {_proc_flags(resource, volume, cstate)}",
        f"    {counters} wo:{_write_ordering(resource)} oos:{max(0, _int(volume.get('oos')))}",
    ]
    sync = _sync(volume)
    if cstate in SYNC_STATES and sync is not None:
        lines.extend(_proc_progress(cstate, sync))
    return lines


def proc_drbd(resources: Iterable[Resource] | None, version_line: str) -> str:
    """The text of DRBD 8.4's /proc/drbd for these resources.

    `version_line` is printed as given (it may carry DRBD's second, GIT-hash line).
    Volumes follow in minor order; like DRBD, a gap in the minor numbers shows as an
    empty line. Volumes without a minor number cannot be placed and are left out.
    """
    entries: list[tuple[int, Resource, Volume]] = []
    for resource in _resources(resources):
        for volume in _volumes(resource):
            minor = _int(volume.get("minor"), -1)
            if minor < 0:
                continue
            if _unconfigured(resource, volume) and _role(resource) == "Secondary":
                continue
            entries.append((minor, resource, volume))
    # Stable sort: two resources claiming one minor keep the order they came in.
    entries.sort(key=lambda entry: entry[0])

    lines = [version_line.rstrip("\n")]
    previous = -1
    for minor, resource, volume in entries:
        if minor != previous + 1:
            lines.append("")
        previous = minor
        lines.extend(_proc_volume(resource, volume, minor))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- drbdadm


def _per_volume(resource: Resource, volume: int | None) -> list[Volume]:
    volumes = _volumes(resource)
    if volume is None:
        return volumes
    return [vol for vol in volumes if _int(vol.get("volume"), -1) == volume]


def role_line(resource: Resource, volume: int | None = None) -> str:
    """`drbdadm role r0` of DRBD 8.4: "Primary/Secondary", one line per volume.

    drbdadm 8.4 runs drbdsetup once per volume for role, cstate and dstate, so a
    two-volume resource prints two lines; a StandAlone diskless minor is "Unconfigured".
    """
    if not resource.get("volumes"):
        return "Unconfigured"  # down: drbdadm says so, not nothing
    lines = []
    for vol in _per_volume(resource, volume):
        if _unconfigured(resource, vol):
            lines.append("Unconfigured")
            continue
        cstate = _volume_cstate(resource, vol)
        lines.append(f"{_role(resource)}/{_peer_role(resource, cstate)}")
    return "\n".join(lines)


def cstate_line(resource: Resource, volume: int | None = None) -> str:
    """`drbdadm cstate r0` of DRBD 8.4: "Connected", one line per volume."""
    if not resource.get("volumes"):
        return "Unconfigured"  # down: drbdadm says so, not nothing
    lines = []
    for vol in _per_volume(resource, volume):
        lines.append(
            "Unconfigured" if _unconfigured(resource, vol) else _volume_cstate(resource, vol)
        )
    return "\n".join(lines)


def dstate_line(resource: Resource, volume: int | None = None) -> str:
    """`drbdadm dstate r0` of DRBD 8.4: "UpToDate/UpToDate", one line per volume."""
    if not resource.get("volumes"):
        return "Unconfigured"  # down: drbdadm says so, not nothing
    lines = []
    for vol in _per_volume(resource, volume):
        if _unconfigured(resource, vol):
            lines.append("Unconfigured")
            continue
        cstate = _volume_cstate(resource, vol)
        lines.append(f"{_disk(vol)}/{_peer_disk(vol, cstate)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- status


def _by_name(resources: Iterable[Resource] | None) -> list[Resource]:
    # drbdsetup status sorts resources by name; a missing name sorts first, as "".
    return sorted(_resources(resources), key=lambda res: _str(res.get("name"), ""))


def _suspended_text(value: Any) -> str | None:
    """DRBD 9 prints the reasons ("user", "no-data", "fencing", "quorum"); the daemon
    may give a reason, a list of them, or only a bool."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Sequence) and not isinstance(value, str):
        reasons = [reason for reason in value if isinstance(reason, str) and reason]
        return ",".join(reasons) if reasons else None
    return "yes" if value is True else None


def _status_resource(resource: Resource) -> list[str]:
    name = _str(resource.get("name"), "?")
    head = f"{name} role:{_role(resource)}"
    suspended = _suspended_text(resource.get("suspended"))
    if suspended:
        head += f" suspended:{suspended}"
    lines = [head]

    volumes = _volumes(resource)
    single = len(volumes) == 1

    def prefix(vol: Volume) -> str:
        # DRBD 9 leaves out "volume:N" only for a lone volume 0.
        number = _int(vol.get("volume"))
        return "" if single and number == 0 else f"volume:{number} "

    for vol in volumes:
        lines.append(f"  {prefix(vol)}disk:{_disk(vol)}")
        nbd = vol.get("nbd")
        if isinstance(nbd, str) and nbd:
            # hastack's addition: where this volume is exported over NBD.
            lines.append(f"  {prefix(vol)}nbd:{nbd}")

    peer = resource.get("peer")
    if not isinstance(peer, str) or not peer:
        # No peer configured: DRBD 9 would print no connection section either.
        return lines

    cstate = _resource_cstate(resource)
    connected = cstate in CONNECTED_STATES
    if connected:
        lines.append(f"  {peer} role:{_peer_role(resource, cstate)}")
    else:
        lines.append(f"  {peer} connection:{cstate}")

    for vol in volumes:
        oos = max(0, _int(vol.get("oos")))
        # DRBD 9 lists peer devices only while connected; an out-of-sync amount is
        # worth showing while disconnected too (as `status --statistics` would).
        if not connected and not oos:
            continue
        vcstate = _volume_cstate(resource, vol)
        tokens = []
        if connected and vcstate != "Connected":
            tokens.append(f"replication:{vcstate}")
        tokens.append(f"peer-disk:{_peer_disk(vol, vcstate)}")
        sync = _sync(vol)
        syncing = connected and vcstate in SYNC_STATES and sync is not None
        if syncing and sync is not None:
            tokens.append(f"done:{_percent(sync):.2f}")
        if oos:
            tokens.append(f"out-of-sync:{oos}")
        lines.append(f"    {prefix(vol)}{' '.join(tokens)}")
        if syncing and sync is not None:
            rate = _thousands(sync.get("rate_kib_s"))
            lines.append(
                f"        progress:[{progress_bar(sync)}]"
                f" finish:{format_duration(_eta(sync))} speed:{rate}K/sec"
            )
    return lines


def status_text(resources: Iterable[Resource] | None) -> str:
    """A status for humans in the layout of DRBD 9's `drbdadm status`.

    Resources in name order, each followed by an empty line as drbdsetup does; plus
    the NBD export of each volume, the out-of-sync KiB when nonzero, and a progress
    line under a volume that is resyncing or verifying.
    """
    blocks = [_status_resource(res) for res in _by_name(resources)]
    if not blocks:
        return "# No replicated resources configured.\n"
    return "".join("\n".join(block) + "\n\n" for block in blocks)


# --------------------------------------------------------------------------- JSON


def _json_sync(sync: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The sync record with JSON-safe values (NaN is not JSON) and a clamped percent."""
    if sync is None:
        return None
    kind = sync.get("kind")
    return {
        "kind": kind if isinstance(kind, str) else None,
        "total_kib": max(0, _int(sync.get("total_kib"))),
        "done_kib": max(0, _int(sync.get("done_kib"))),
        "percent": _percent(sync),
        "rate_kib_s": _float(sync.get("rate_kib_s")),
        "avg_rate_kib_s": _float(sync.get("avg_rate_kib_s")),
        "eta_s": _eta(sync),
    }


def _json_volume(resource: Resource, volume: Volume) -> dict[str, Any]:
    cstate = _volume_cstate(resource, volume)
    stats = volume.get("stats")
    stats = stats if isinstance(stats, Mapping) else {}
    minor = _int(volume.get("minor"), -1)
    number = _int(volume.get("volume"), -1)
    device = volume.get("device")
    nbd = volume.get("nbd")
    # Role and connection facts are copied in so that each volume reads on its own.
    return {
        "resource": _str(resource.get("name"), "?"),
        "volume": number if number >= 0 else None,
        "minor": minor if minor >= 0 else None,
        "device": device if isinstance(device, str) else None,
        "nbd": nbd if isinstance(nbd, str) and nbd else None,
        "size_kib": max(0, _int(volume.get("size_kib"))),
        "role": _role(resource),
        "peer_role": _peer_role(resource, cstate),
        "cstate": cstate,
        "disk": _disk(volume),
        "peer_disk": _peer_disk(volume, cstate),
        "oos": max(0, _int(volume.get("oos"))),
        "stats": {key: _int(stats.get(key)) for key in _STAT_KEYS},
        "sync": _json_sync(_sync(volume)) if cstate in SYNC_STATES else None,
    }


def json_status(resources: Iterable[Resource] | None) -> dict[str, Any]:
    """The machine-readable status: {"resources": [...]}, JSON-serialisable as is.

    Values are normalised the same way as in the text views, so `status` and
    `status --json` never disagree (a disconnected peer is Unknown/DUnknown in both).
    """
    out = []
    for resource in _by_name(resources):
        cstate = _resource_cstate(resource)
        peer = resource.get("peer")
        node = resource.get("node")
        protocol = resource.get("protocol")
        out.append(
            {
                "name": _str(resource.get("name"), "?"),
                "node": node if isinstance(node, str) and node else None,
                "peer": peer if isinstance(peer, str) and peer else None,
                "role": _role(resource),
                "peer_role": _peer_role(resource, cstate),
                "cstate": cstate,
                "protocol": protocol if protocol in ("A", "B", "C") else None,
                "suspended": _suspended_text(resource.get("suspended")) is not None,
                "volumes": [_json_volume(resource, vol) for vol in _volumes(resource)],
            }
        )
    return {"resources": out}
