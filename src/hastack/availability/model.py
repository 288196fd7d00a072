"""A series/parallel reliability-block model of a service, and default MTTF/MTTR figures.

A `Component` fails and is repaired independently of the others, each with its own repair
(no shared repair crew), so its steady-state availability is MTTF / (MTTF + MTTR). A `Series`
is up when all its parts are up; a `Parallel` when at least `need` of its parts are (k-of-n).
The formulas are exact under independence. One physical component that appears in several
places (one switch behind both heartbeat links) is written as components with the same name:
they are the same component, and `availability()` conditions on its state instead of counting it
as independent twice, which is what makes a shared switch show up as the SPOF it is.

Hours are the unit of MTTF and MTTR here (the unit of datasheets); downtimes are in seconds,
as in `hastack.availability.nines`.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from hastack.availability import nines as nn

# Conditioning on shared components costs 2^k evaluations; a real cluster shares a few.
MAX_SHARED = 16


class ModelError(ValueError):
    """A model or a figures file that cannot be used; the message says what is allowed."""


class Block(ABC):
    """A part of the model: a component or a series/parallel composition."""

    name: str

    @abstractmethod
    def components(self) -> Iterator[Component]:
        """Every component under this block, once per place it appears."""

    @abstractmethod
    def _availability_given(self, fixed: Mapping[str, bool]) -> float:
        """The availability with the components named in `fixed` held up (True) or down."""

    @abstractmethod
    def is_up(self, states: Mapping[str, bool]) -> bool:
        """Whether this block is up when each component (by name) is up or down."""

    @abstractmethod
    def to_dict(self) -> dict[str, object]:
        """The structure and the figures, for --json."""

    def availability(self) -> float:
        """The exact steady-state availability (independent failures and repairs)."""
        parts = unique_components(self)
        shared = sorted(
            name for name, count in Counter(c.name for c in self.components()).items() if count > 1
        )
        if len(shared) > MAX_SHARED:
            raise ModelError(
                f"{self.name}: {len(shared)} components appear in several places; "
                f"at most {MAX_SHARED} are supported"
            )
        total = 0.0
        for states in itertools.product((True, False), repeat=len(shared)):
            weight = 1.0
            for name, up in zip(shared, states, strict=True):
                single = parts[name].availability()
                weight *= single if up else 1 - single
            total += weight * self._availability_given(dict(zip(shared, states, strict=True)))
        return total

    def nines(self) -> float:
        """-log10(1 - A); infinite only if the model can never be down (no component)."""
        unavailability = 1 - self.availability()
        return math.inf if unavailability <= 0 else -math.log10(unavailability)

    def downtime_per_year(self) -> float:
        """Expected seconds of downtime in a 365-day year."""
        return (1 - self.availability()) * nn.YEAR


def unique_components(block: Block) -> dict[str, Component]:
    """Components by name; two different figures under one name is an error."""
    found: dict[str, Component] = {}
    for comp in block.components():
        known = found.setdefault(comp.name, comp)
        if known != comp:
            raise ModelError(
                f"two different components are named {comp.name!r} "
                f"({known.mttf_hours}h/{known.mttr_hours}h and {comp.mttf_hours}h/"
                f"{comp.mttr_hours}h): one name is one physical component"
            )
    return found


@dataclass(frozen=True)
class Component(Block):
    name: str
    mttf_hours: float
    mttr_hours: float

    def __post_init__(self) -> None:
        for label, value in (("MTTF", self.mttf_hours), ("MTTR", self.mttr_hours)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ModelError(
                    f"component {self.name!r}: {label} must be a number of hours > 0, not {value!r}"
                )

    def components(self) -> Iterator[Component]:
        yield self

    def availability(self) -> float:
        return self.mttf_hours / (self.mttf_hours + self.mttr_hours)

    def _availability_given(self, fixed: Mapping[str, bool]) -> float:
        if self.name in fixed:
            return 1.0 if fixed[self.name] else 0.0
        return self.availability()

    def is_up(self, states: Mapping[str, bool]) -> bool:
        return states[self.name]

    def to_dict(self) -> dict[str, object]:
        return {
            "component": self.name,
            "mttf_hours": self.mttf_hours,
            "mttr_hours": self.mttr_hours,
            "availability": self.availability(),
        }


def _check_parts(kind: str, name: str, parts: Sequence[Block]) -> tuple[Block, ...]:
    result = tuple(parts)
    if not result:
        raise ModelError(f"{kind} {name!r} has no parts: give at least one")
    for part in result:
        if not isinstance(part, Block):
            raise ModelError(
                f"{kind} {name!r}: a part must be a Component, Series or Parallel, not {part!r}"
            )
    return result


@dataclass(frozen=True)
class Series(Block):
    """Up when every part is up."""

    parts: tuple[Block, ...]
    name: str = "series"

    def __init__(self, parts: Sequence[Block], name: str = "series") -> None:
        object.__setattr__(self, "parts", _check_parts("series", name, parts))
        object.__setattr__(self, "name", name)

    def components(self) -> Iterator[Component]:
        for part in self.parts:
            yield from part.components()

    def _availability_given(self, fixed: Mapping[str, bool]) -> float:
        return math.prod(part._availability_given(fixed) for part in self.parts)

    def is_up(self, states: Mapping[str, bool]) -> bool:
        return all(part.is_up(states) for part in self.parts)

    def to_dict(self) -> dict[str, object]:
        return {"series": self.name, "parts": [part.to_dict() for part in self.parts]}


@dataclass(frozen=True)
class Parallel(Block):
    """Up when at least `need` of the parts are up (need=1: any one; need=n: all)."""

    parts: tuple[Block, ...]
    need: int = 1
    name: str = "parallel"

    def __init__(self, parts: Sequence[Block], need: int = 1, name: str = "parallel") -> None:
        checked = _check_parts("parallel", name, parts)
        if isinstance(need, bool) or not isinstance(need, int) or not 1 <= need <= len(checked):
            raise ModelError(
                f"parallel {name!r}: need must be a whole number from 1 to {len(checked)} "
                f"(the number of parts), not {need!r}"
            )
        object.__setattr__(self, "parts", checked)
        object.__setattr__(self, "need", need)
        object.__setattr__(self, "name", name)

    def components(self) -> Iterator[Component]:
        for part in self.parts:
            yield from part.components()

    def _availability_given(self, fixed: Mapping[str, bool]) -> float:
        # up_count[j]: probability that exactly j of the parts seen so far are up (the parts
        # differ, so this is the Poisson-binomial distribution, built one part at a time).
        up_count = [1.0]
        for part in self.parts:
            a = part._availability_given(fixed)
            nxt = [0.0] * (len(up_count) + 1)
            for j, p in enumerate(up_count):
                nxt[j] += p * (1 - a)
                nxt[j + 1] += p * a
            up_count = nxt
        return sum(up_count[self.need :])

    def is_up(self, states: Mapping[str, bool]) -> bool:
        return sum(1 for part in self.parts if part.is_up(states)) >= self.need

    def to_dict(self) -> dict[str, object]:
        return {
            "parallel": self.name,
            "need": self.need,
            "parts": [part.to_dict() for part in self.parts],
        }


# --- figures --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """Assumed MTTF and MTTR of a kind of component, with where the numbers come from."""

    mttf_hours: float
    mttr_hours: float
    note: str = field(default="", compare=False)

    def availability(self) -> float:
        return self.mttf_hours / (self.mttf_hours + self.mttr_hours)


# THESE ARE ASSUMPTIONS, not measurements: orders of magnitude for commodity servers in a
# staffed machine room, to compare configurations with each other. Replace them with your own
# figures (figures_from_dict, load_figures / --figures) before quoting an availability to anyone.
_DEFAULTS: dict[str, Figure] = {
    # Whole-server hardware other than disks and power supplies (board, CPU, memory, fans).
    # Vendor MTBFs for a 1U server are quoted around 50,000-100,000 h; take the low end.
    # MTTR: a next-business-day parts contract, diagnosed and swapped within a day.
    "server": Figure(50_000, 24, "server hardware: vendor MTBF 50k-100k h; NBD parts contract"),
    # Disk: datasheets say 1-1.5 M h, but field studies (Schroeder & Gibson, FAST 2007;
    # Backblaze's yearly reports) see 1-4% replaced per year: 3%/year is ~292,000 h.
    # MTTR: replace and rebuild/resync, about a day.
    "disk": Figure(300_000, 24, "disk: ~3%/year field replacement rate (not the datasheet)"),
    # Server power supply: vendor MTBFs around 100,000 h; a spare on site is swapped in hours.
    "power_supply": Figure(100_000, 8, "PSU: vendor MTBF ~100k h; spare on site"),
    # Network card: few moving parts; quoted MTBFs are in the millions of hours, halve it
    # for the driver and firmware. Replacing it means opening the server: 8 h.
    "nic": Figure(500_000, 8, "NIC: vendor MTBF 1M+ h, halved for driver/firmware"),
    # One network link: cable, transceiver and switch port; mostly unplugged or bent cables.
    # Repatching is quick once someone looks: 2 h.
    "network_link": Figure(200_000, 2, "link (cable, SFP, port): mostly human handling"),
    # A network switch, including its firmware and configuration; spare swapped in 4 h.
    "network_switch": Figure(150_000, 4, "switch: vendor MTBF ~150k h; spare in 4 h"),
    # The operating system hangs or panics about once a year of uptime; without a watchdog
    # someone must notice and reset it: 1 h. With a watchdog/panic reboot it is minutes
    # (override mttr to e.g. "5m").
    "os": Figure(8_760, 1, "OS hang/panic ~once a year; manual reset (watchdog: minutes)"),
    # The application crashes or hangs about every three months; restarted by hand in 30 min
    # (a monitor such as mon restarts it in a minute or two).
    "application": Figure(2_190, 0.5, "app crash ~every 3 months; manual restart"),
    # Operator mistakes that take the service down (wrong node rebooted, bad config pushed):
    # outage surveys attribute a large share of downtime to people; twice a year, 1 h to undo.
    "human_error": Figure(4_380, 1, "operator mistake ~twice a year; 1 h to undo"),
    # Utility power without a UPS: distribution utilities report on the order of one
    # interruption a year lasting an hour or two on average (SAIFI/SAIDI statistics).
    "utility_power": Figure(8_760, 2, "mains power: ~1 outage/year of ~2 h (no UPS)"),
}
DEFAULT_FIGURES: Mapping[str, Figure] = MappingProxyType(_DEFAULTS)

FIGURES_HELP = (
    'a table per component kind with mttf and mttr, each a duration ("2000h", "6 months") or a '
    'number of hours, and an optional note; e.g.\n[disk]\nmttf = "300000h"\nmttr = "8h"'
)


def _hours(value: object, where: str) -> float:
    if isinstance(value, bool):
        raise ModelError(f"{where}: write a duration such as '2000h' or a number of hours")
    if isinstance(value, int | float):
        hours = float(value)
    elif isinstance(value, str):
        try:
            hours = nn.parse_duration(value) / nn.HOUR
        except nn.NinesError as exc:
            raise ModelError(f"{where}: {exc}") from None
    else:
        raise ModelError(f"{where}: write a duration such as '2000h' or a number of hours")
    if not (math.isfinite(hours) and hours > 0):
        raise ModelError(f"{where}: must be longer than zero, not {value!r}")
    return hours


def figures_from_dict(
    overrides: Mapping[str, object],
    base: Mapping[str, Figure] = DEFAULT_FIGURES,
    source: str = "figures",
) -> dict[str, Figure]:
    """`base` with `overrides` applied: {kind: {"mttf": "2000h" | hours, "mttr": ..., "note"}}.

    An override may change only mttf or only mttr of a known kind; a new kind needs both.
    `source` (a file name) starts every error message.
    """
    result = dict(base)
    for kind, entry in overrides.items():
        where = f"{source}: [{kind}]"
        if not isinstance(entry, Mapping):
            raise ModelError(f"{where} must be a table with mttf and mttr; {FIGURES_HELP}")
        unknown = sorted(set(entry) - {"mttf", "mttr", "note"})
        if unknown:
            raise ModelError(
                f"{where}: unknown key(s) {', '.join(unknown)}; allowed: mttf, mttr, note"
            )
        old = result.get(kind)
        if old is None and not {"mttf", "mttr"} <= set(entry):
            raise ModelError(
                f"{where}: a new kind of component needs both mttf and mttr "
                f"(known kinds: {', '.join(sorted(result))})"
            )
        # A known kind keeps the figure that is not overridden (checked above for new kinds).
        mttf = _hours(entry["mttf"], f"{where} mttf") if "mttf" in entry else _old(old).mttf_hours
        mttr = _hours(entry["mttr"], f"{where} mttr") if "mttr" in entry else _old(old).mttr_hours
        note = entry.get("note", f"from {source}")
        result[kind] = Figure(mttf, mttr, str(note))
    return result


def _old(figure: Figure | None) -> Figure:
    assert figure is not None
    return figure


def load_figures(
    path: str | Path, base: Mapping[str, Figure] = DEFAULT_FIGURES
) -> dict[str, Figure]:
    """`base` overridden by a TOML file of figures (see FIGURES_HELP)."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the figures file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"{path}: not valid TOML ({exc}); {FIGURES_HELP}") from None
    return figures_from_dict(data, base, source=str(path))


def component(
    kind: str, figures: Mapping[str, Figure] = DEFAULT_FIGURES, name: str | None = None
) -> Component:
    """A component of a known kind ('disk', 'server', ...), named `name` (default: the kind)."""
    figure = figures.get(kind)
    if figure is None:
        raise ModelError(f"unknown kind of component {kind!r}; known: {', '.join(sorted(figures))}")
    return Component(name or kind, figure.mttf_hours, figure.mttr_hours)


# --- before / after -------------------------------------------------------------------------


@dataclass(frozen=True)
class Gain:
    """What a change (a fix, a cluster) adds: "a good HA clustering system adds a 9"."""

    before: float  # availability
    after: float
    before_nines: float
    after_nines: float
    added_nines: float
    downtime_saved_per_year: float  # seconds; negative if the change makes things worse

    def to_dict(self) -> dict[str, float]:
        return {
            "before": self.before,
            "after": self.after,
            "before_nines": self.before_nines,
            "after_nines": self.after_nines,
            "added_nines": self.added_nines,
            "downtime_saved_per_year_seconds": self.downtime_saved_per_year,
        }


def compare(before: Block, after: Block) -> Gain:
    """The gain in nines and in downtime a year from `before` to `after`."""
    a_before, a_after = before.availability(), after.availability()
    n_before, n_after = before.nines(), after.nines()
    return Gain(
        before=a_before,
        after=a_after,
        before_nines=n_before,
        after_nines=n_after,
        added_nines=n_after - n_before,
        downtime_saved_per_year=(a_after - a_before) * nn.YEAR,
    )
