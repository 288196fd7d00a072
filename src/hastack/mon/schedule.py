"""When each monitor runs, as mon 1.3's main loop decides it: a sans-IO core.

The shell feeds it `now` and what happened (a monitor started, finished, was skipped or put off;
a client's disable/enable/test/stop/start) and asks `due(now)` for the services to start and
`next_wakeup()` for the time to sleep until. Randomness comes from the `random.Random` handed in.

mon 1.3's rules, kept here:
- at start a service first runs one `interval` after the server started, or, with `randstart`,
  after a random whole number of seconds in [0, randstart);
- at the start of a run, the next check is set one interval after the previous next check (one
  interval after now for the first run): the schedule does not drift with the monitor's duration;
- when a run ends, the service is due at that next check, or, if that is already past, one
  interval after the end; with `randskew`, one interval after the end plus or minus a whole
  number of seconds in [1, randskew];
- the first failure switches the interval to `failure_interval` (due one failure_interval after
  the end), the first success after failures switches it back the same way;
- a service is never started while its monitor runs; services with no interval (trap-only) or
  no monitor are never scheduled; `maxprocs` caps the monitors running at once, the others wait;
- `test monitor` makes the service due now (absorbed by a run already in progress, whose end
  sets the next time, as in mon); `stop` freezes every timer until `start`.

hastack's choices where mon is loose (see docs/compat.md): times are exact (mon counts whole
seconds in a loop that wakes about once a second); services waiting for a free process slot go in
the order they became due (mon: Perl's hash order); a disabled watch is not scheduled (as mon's
manual says; mon 1.3's code still runs it), a disabled service still is (mon: alerts only).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from hastack.mon.model import MonConfig

Key = tuple[str, str]  # (watch, service)


@dataclass
class _Entry:
    key: Key
    order: int  # position in the configuration: the tie-break
    interval: float  # the current one (failure_interval while failing)
    failure_interval: float | None
    randskew: float
    due: float  # when mon's countdown reaches zero
    next_check: float | None = None  # mon's _next_check; None when unset (mon: 0)
    old_interval: float | None = None  # the interval saved while failure_interval is in use
    running: bool = False
    not_before: float = -math.inf  # put off by the shell (exclude_period, depends, ...)
    disabled: bool = False


@dataclass
class LagStats:
    """How late monitors started: start time minus the time they were due."""

    count: int = 0
    total: float = 0.0
    max: float = 0.0

    def add(self, lag: float) -> None:
        self.count += 1
        self.total += lag
        self.max = max(self.max, lag)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


class Scheduler:
    def __init__(self, cfg: MonConfig, now: float, rng: random.Random) -> None:
        self._rng = rng
        self._maxprocs = cfg.maxprocs
        self._entries: dict[Key, _Entry] = {}
        self._disabled_watches: set[str] = set()
        self._stopped_at: float | None = None
        self._running = 0
        self.lag = LagStats()
        order = 0
        for watch in cfg.watches.values():
            for service in watch.services.values():
                if not service.interval or not service.monitor:
                    continue  # trap-only (or nothing to run): never scheduled
                if cfg.randstart:
                    first = float(int(rng.random() * cfg.randstart))
                else:
                    first = service.interval
                key = (watch.name, service.name)
                self._entries[key] = _Entry(
                    key,
                    order,
                    service.interval,
                    service.failure_interval,
                    service.randskew,
                    now + first,
                )
                order += 1

    # -- questions ------------------------------------------------------------------------------

    def services(self) -> list[Key]:
        """The scheduled services, in configuration order."""
        return list(self._entries)

    def due(self, now: float) -> list[Key]:
        """The services to start now, the longest waiting first, at most as many as maxprocs
        leaves room for. They stay due until reported started, skipped or deferred."""
        if self._stopped_at is not None:
            return []
        ready = sorted(
            (e for e in self._entries.values() if self._eligible(e) and self._ready_at(e) <= now),
            key=lambda e: (self._ready_at(e), e.order),
        )
        return [e.key for e in ready[: self._room()]]

    def next_wakeup(self) -> float:
        """The earliest time a service becomes due (possibly already past), or math.inf when
        nothing can start before some event arrives (stopped, all running, maxprocs reached)."""
        if self._stopped_at is not None or self._room() == 0:
            return math.inf
        return min(
            (self._ready_at(e) for e in self._entries.values() if self._eligible(e)),
            default=math.inf,
        )

    def running(self, key: Key) -> bool:
        return self._entry(key).running

    def timer(self, key: Key, now: float) -> float:
        """Seconds until the service is due (mon's `_timer`, as `list opstatus` shows it)."""
        entry = self._entry(key)
        base = self._stopped_at if self._stopped_at is not None else now
        return max(0.0, entry.due - base)

    def interval(self, key: Key) -> float:
        """The interval in use: failure_interval while the service fails."""
        return self._entry(key).interval

    # -- events ---------------------------------------------------------------------------------

    def started(self, key: Key, now: float) -> float:
        """The monitor was started; returns its lag (now minus the time it was due)."""
        entry = self._entry(key)
        if entry.running:
            raise ValueError(f"monitor for {key[0]}/{key[1]} is already running")
        lag = max(0.0, now - self._ready_at(entry))
        self.lag.add(lag)
        entry.running = True
        entry.not_before = -math.inf
        self._running += 1
        self._advance_next_check(entry, now)
        return lag

    def finished(self, key: Key, now: float, failed: bool) -> None:
        """The monitor exited; `failed` is a non-zero exit (or a timeout)."""
        entry = self._entry(key)
        if not entry.running:
            raise ValueError(f"monitor for {key[0]}/{key[1]} is not running")
        entry.running = False
        self._running -= 1
        if entry.failure_interval is not None:
            if failed and entry.old_interval is None:
                entry.old_interval, entry.interval = entry.interval, entry.failure_interval
                entry.next_check = None
            elif not failed and entry.old_interval is not None:
                entry.interval, entry.old_interval = entry.old_interval, None
                entry.next_check = None
        self._reset_timer(entry, now)

    def skipped(self, key: Key, now: float) -> None:
        """The monitor was due but not called for lack of hosts: due again as after a run."""
        entry = self._entry(key)
        entry.not_before = -math.inf
        self._reset_timer(entry, now)
        self._advance_next_check(entry, now)

    def defer(self, key: Key, until: float) -> None:
        """Not started now (exclude_period, a failed dependency, a missing monitor): it stays
        due and is offered again at `until` (mon looks again about every second)."""
        self._entry(key).not_before = until

    def force(self, key: Key, now: float) -> None:
        """`test monitor`: due now, the drift-free schedule restarted from the next run."""
        entry = self._entry(key)
        self._set_due(entry, now, now)
        entry.next_check = None
        entry.not_before = -math.inf

    def clear_timers(self, key: Key, now: float) -> None:
        """`clear timers`: the countdown restarts at a full interval."""
        entry = self._entry(key)
        self._set_due(entry, now + entry.interval, now)

    def disable(self, key: Key) -> None:
        self._entry(key).disabled = True

    def enable(self, key: Key) -> None:
        self._entry(key).disabled = False

    def disable_watch(self, watch: str) -> None:
        self._disabled_watches.add(watch)

    def enable_watch(self, watch: str) -> None:
        self._disabled_watches.discard(watch)

    def stop(self, now: float) -> None:
        """`stop` (or a global exclude_period): nothing starts, countdowns are frozen."""
        if self._stopped_at is None:
            self._stopped_at = now

    def start(self, now: float) -> None:
        """`start`: countdowns resume where `stop` froze them."""
        if self._stopped_at is None:
            return
        shift = now - self._stopped_at
        self._stopped_at = None
        for entry in self._entries.values():
            entry.due += shift

    # -- mon's timer rules ----------------------------------------------------------------------

    def _entry(self, key: Key) -> _Entry:
        try:
            return self._entries[key]
        except KeyError:
            raise KeyError(f"no scheduled service {key[0]}/{key[1]}") from None

    def _eligible(self, entry: _Entry) -> bool:
        return not (entry.running or entry.disabled or entry.key[0] in self._disabled_watches)

    @staticmethod
    def _ready_at(entry: _Entry) -> float:
        return max(entry.due, entry.not_before)

    def _room(self) -> int:
        if not self._maxprocs:
            return len(self._entries)
        return max(0, self._maxprocs - self._running)

    def _set_due(self, entry: _Entry, due: float, now: float) -> None:
        # While stopped a countdown does not run: keep what is left of it as if set at the stop,
        # so that start() resumes it with the right remainder.
        if self._stopped_at is not None:
            due = self._stopped_at + (due - now)
        entry.due = due

    @staticmethod
    def _advance_next_check(entry: _Entry, now: float) -> None:
        entry.next_check = (
            now + entry.interval if entry.next_check is None else entry.next_check + entry.interval
        )

    def _reset_timer(self, entry: _Entry, now: float) -> None:
        if entry.randskew:
            # mon: a coin, then a whole number of seconds in [1, ceil(randskew)], never 0.
            down = int(self._rng.random() * 2) == 0
            skew = int(self._rng.random() * entry.randskew + 1)
            delay = entry.interval - skew if down else entry.interval + skew
        elif entry.next_check is not None:
            delay = entry.next_check - now
            if delay < 0:
                delay = entry.interval
        else:
            delay = entry.interval
        self._set_due(entry, now + delay, now)
