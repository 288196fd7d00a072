"""The one timing model of hastack.

The user sets one or two of heartbeat's knobs (usually `keepalive` and/or `deadtime`); every
other timer of the stack is derived from them here, and nowhere else. The rules:

=================  ==========================================================================
keepalive          set, else min(1s, deadtime / 4) when only deadtime is set, else heartbeat's
                   default 1s.
deadtime           set, else 4 x keepalive when only keepalive is set, else heartbeat's
                   default 30s. Heartbeat requires deadtime > 2 x keepalive; 4 x keepalive
                   survives three heartbeats in a row lost on every link and still detects a
                   dead node quickly (50 ms / 200 ms is the issue's fast profile).
warntime           set, else deadtime / 2 (heartbeat's own default). keepalive < warntime <
                   deadtime.
initdead           set, else 2 x deadtime ("at least twice the normal dead time", heartbeat's
                   sample ha.cf). initdead >= deadtime.
deadping           set, else deadtime (heartbeat's default). deadping > 2 x keepalive.
lease              deadtime: a vote for a DC binds the voter this long after the last renewal
                   it received (its own clock).
dc_lease           lease x (1 - max_drift) / (1 + max_drift): how long the DC may act after
                   sending a renewal (its own clock). Shorter than any voter's lease even when
                   the DC's clock runs slow and the voter's fast by max_drift.
quiet              lease x (1 + max_drift): how long a restarted node refuses to vote, so a
                   vote it gave before it restarted has run out on every clock.
read_interval      min(keepalive, 100 ms, (dc_lease - keepalive) / 4): how often a node reads
                   the datagrams its UDP links received. A node does not wake up for each one:
                   on a busy cluster the wake-ups, not the messages, are most of its CPU. The
                   kernel's arrival time of each datagram is what failure detection uses, so
                   reading later delays only the answers: a DC's lease round is acknowledged
                   within read_interval, and the DC reads that within another, well inside the
                   renewal margin dc_lease - keepalive (hence the quarter).
election_timeout   keepalive + read_interval: how long a candidate waits for votes (a voter
                   reads the request up to read_interval after it arrived).
stall_threshold    keepalive: a loop iteration this late is reported as a stall.
=================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from hastack.config.errors import ConfigProblem
from hastack.config.model import Source, Timing

# heartbeat 3's compiled-in defaults (`heartbeat -D`: keepalive 1000ms, deadtime 30000ms)
HEARTBEAT_KEEPALIVE = 1.0
HEARTBEAT_DEADTIME = 30.0
# hastack's derivation factors (see the module docstring for why)
DEADTIME_PER_KEEPALIVE = 4.0
WARNTIME_FRACTION = 0.5
INITDEAD_PER_DEADTIME = 2.0
DEFAULT_MAX_DRIFT = 0.01
MAX_DRIFT_LIMIT = 0.5  # exclusive; beyond it a lease bound means nothing
# The longest a received datagram waits to be read: bounds what batching adds to elections
# and to answering a DC on slow keepalives.
MAX_READ_INTERVAL = 0.1

TIMING_DIRECTIVES = ("keepalive", "warntime", "deadtime", "initdead", "deadping")

SourceFor = Mapping[str, Source] | Callable[[str], Source | None] | None


def fmt_seconds(seconds: float) -> str:
    """A duration as people write it in ha.cf: 1s, 0.6s, 1.2s, 0.05s."""
    return f"{seconds:.6g}s"


def derive_timing(
    keepalive: float | None = None,
    deadtime: float | None = None,
    warntime: float | None = None,
    initdead: float | None = None,
    deadping: float | None = None,
    max_drift: float = DEFAULT_MAX_DRIFT,
) -> Timing:
    """Fill in every timer from the ones given (None = not set). Never raises; the result
    may violate the relations, which `check_timing` reports."""
    if keepalive is None and deadtime is None:
        keepalive, deadtime = HEARTBEAT_KEEPALIVE, HEARTBEAT_DEADTIME
    elif deadtime is None:
        assert keepalive is not None
        deadtime = DEADTIME_PER_KEEPALIVE * keepalive
    elif keepalive is None:
        keepalive = min(HEARTBEAT_KEEPALIVE, deadtime / DEADTIME_PER_KEEPALIVE)
    if warntime is None:
        warntime = deadtime * WARNTIME_FRACTION
    if initdead is None:
        initdead = INITDEAD_PER_DEADTIME * deadtime
    if deadping is None:
        deadping = deadtime
    lease = deadtime
    dc_lease = lease * (1 - max_drift) / (1 + max_drift)
    read_interval = max(0.0, min(keepalive, MAX_READ_INTERVAL, (dc_lease - keepalive) / 4))
    return Timing(
        keepalive=keepalive,
        warntime=warntime,
        deadtime=deadtime,
        initdead=initdead,
        deadping=deadping,
        max_drift=max_drift,
        lease=lease,
        dc_lease=dc_lease,
        quiet=lease * (1 + max_drift),
        election_timeout=keepalive + read_interval,
        stall_threshold=keepalive,
        read_interval=read_interval,
    )


def _lookup(source_for: SourceFor, name: str) -> Source | None:
    if source_for is None:
        return None
    if callable(source_for):
        return source_for(name)
    return source_for.get(name)


def check_timing(timing: Timing, source_for: SourceFor = None) -> list[ConfigProblem]:
    """Every violated relation, with the inequality and the numbers filled in.

    `source_for` maps a directive name to the Source of the line that set it (or None when the
    value was derived); each problem is attributed to the first named directive that was set.
    When `source_for` is given, warntime, initdead and deadping are only checked when they were
    set: derived, they hold whenever deadtime > 2 x keepalive does, so checking them again
    would only repeat that error.
    """
    t = timing
    problems: list[ConfigProblem] = []

    def checked(name: str) -> bool:
        return source_for is None or _lookup(source_for, name) is not None

    def report(names: tuple[str, ...], message: str) -> None:
        source = None
        for name in names:
            source = _lookup(source_for, name)
            if source is not None:
                break
        problems.append(ConfigProblem(source, message))

    s = fmt_seconds
    if not t.keepalive > 0:
        report(("keepalive",), f"keepalive ({s(t.keepalive)}) must be greater than 0")
    if not 0 <= t.max_drift < MAX_DRIFT_LIMIT:
        report(
            ("max_clock_drift",),
            f"max_clock_drift ({t.max_drift:g}) must be at least 0 and less than "
            f"{MAX_DRIFT_LIMIT:g} (50%)",
        )
    if not t.deadtime > 2 * t.keepalive:
        report(
            ("deadtime", "keepalive"),
            f"deadtime ({s(t.deadtime)}) must be greater than 2 x keepalive "
            f"(2 x {s(t.keepalive)} = {s(2 * t.keepalive)})",
        )
    if checked("warntime") and not t.warntime > t.keepalive:
        report(
            ("warntime", "keepalive"),
            f"warntime ({s(t.warntime)}) must be greater than keepalive ({s(t.keepalive)})",
        )
    if checked("warntime") and not t.warntime < t.deadtime:
        report(
            ("warntime", "deadtime"),
            f"warntime ({s(t.warntime)}) must be less than deadtime ({s(t.deadtime)})",
        )
    if checked("initdead") and not t.initdead >= t.deadtime:
        report(
            ("initdead", "deadtime"),
            f"initdead ({s(t.initdead)}) must be at least deadtime ({s(t.deadtime)})",
        )
    if checked("deadping") and not t.deadping > 2 * t.keepalive:
        report(
            ("deadping", "keepalive"),
            f"deadping ({s(t.deadping)}) must be greater than 2 x keepalive "
            f"(2 x {s(t.keepalive)} = {s(2 * t.keepalive)})",
        )
    # Only meaningful once the inputs are sane: the DC renews its lease every keepalive, so
    # its own lease must outlast one renewal interval or it could never act.
    if not problems and not t.dc_lease > t.keepalive:
        report(
            ("max_clock_drift", "deadtime", "keepalive"),
            f"dc_lease (deadtime x (1 - max_clock_drift) / (1 + max_clock_drift) = "
            f"{s(t.deadtime)} x {1 - t.max_drift:g} / {1 + t.max_drift:g} = {s(t.dc_lease)}) "
            f"must be greater than keepalive ({s(t.keepalive)})",
        )
    return problems


def describe_timing(timing: Timing) -> list[tuple[str, float, str]]:
    """(name, seconds, what it means and how it is derived), for `hastack config timing`."""
    t = timing
    drift = f"{t.max_drift:g}"
    return [
        ("keepalive", t.keepalive, "interval between heartbeats on every link (default 1s)"),
        (
            "warntime",
            t.warntime,
            "a heartbeat this late is logged as a late-heartbeat warning "
            "(default deadtime / 2; keepalive < warntime < deadtime)",
        ),
        (
            "deadtime",
            t.deadtime,
            "a node silent on every link this long is declared dead "
            "(default 4 x keepalive, or 30s when keepalive is not set either)",
        ),
        (
            "initdead",
            t.initdead,
            "deadtime used right after start, while networks come up (default 2 x deadtime)",
        ),
        ("deadping", t.deadping, "a ping node silent this long is unreachable (default deadtime)"),
        ("lease", t.lease, "a vote for a DC binds the voter this long (= deadtime)"),
        (
            "dc_lease",
            t.dc_lease,
            f"the DC acts at most this long after a renewal "
            f"(lease x (1 - {drift}) / (1 + {drift}))",
        ),
        (
            "quiet",
            t.quiet,
            f"a restarted node refuses to vote this long (lease x (1 + {drift}))",
        ),
        (
            "read_interval",
            t.read_interval,
            "received heartbeats are read this often, in one wake-up "
            "(min(keepalive, 100ms, (dc_lease - keepalive) / 4))",
        ),
        (
            "election_timeout",
            t.election_timeout,
            "a candidate waits this long for votes (keepalive + read_interval)",
        ),
        (
            "stall_threshold",
            t.stall_threshold,
            "an event-loop iteration this late is reported as a stall (= keepalive)",
        ),
    ]
