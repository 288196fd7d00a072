"""Configure a bond through sysfs, as the seed shows and the kernel's bonding.rst documents.

:func:`plan` is pure: a :class:`BondConfig` (what the operator wants) and the bond's
:class:`CurrentBond` (what sysfs says now, from :func:`read_current`; None when the bond does not
exist) in, the list of :class:`Write` s (path under the sysfs root, value) out, in the order the
kernel needs:

1. ``+BOND`` into ``class/net/bonding_masters`` to create the bond;
2. to change the mode (or fail_over_mac) of a bond that has slaves: release every slave and take
   the bond down (the kernel refuses a mode change with slaves or while the bond is up);
3. mode, then fail_over_mac (both only without slaves), miimon before updelay/downdelay (the
   delays are counted in miimon ticks), ARP targets before arp_interval (ARP monitoring with no
   target watches nothing), num_grat_arp;
4. the bond back up if step 2 took it down; then slaves released and enslaved, primary last
   (it names a slave).

:func:`validate` refuses what the kernel would refuse or silently change (an unknown mode, a
negative interval, miimon and arp_interval both set — the kernel turns one off —, delays that are
not a multiple of miimon, ARP monitoring in 802.3ad/balance-tlb/balance-alb, a primary in a mode
without one), with a message that says what is allowed. :func:`apply` writes a plan into a sysfs
root (``/sys``, or a fixture tree in tests), one value per write, stopping at the first error.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

SYSFS_ROOT = Path("/sys")
MASTERS = PurePosixPath("class/net/bonding_masters")
# index = the kernel's mode number (BOND_MODE_ROUNDROBIN = 0, ...)
MODES = (
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
)
PRIMARY_MODES = ("active-backup", "balance-tlb", "balance-alb")  # bond_uses_primary()
NO_ARP_MODES = ("802.3ad", "balance-tlb", "balance-alb")  # arp_interval's unsuppmodes
FAIL_OVER_MAC = ("none", "active", "follow")
MAX_ARP_TARGETS = 16  # BOND_MAX_ARP_TARGETS
MAX_GRAT_ARP = 255
IFF_UP = 0x1


class BondConfigError(ValueError):
    """A configuration the kernel would refuse, or a write that failed; says what is allowed."""


@dataclass(frozen=True)
class BondConfig:
    """What the operator asks for; None (or empty) leaves a setting as it is."""

    name: str
    mode: str | None = None
    miimon: int | None = None
    updelay: int | None = None
    downdelay: int | None = None
    arp_interval: int | None = None
    arp_ip_targets: tuple[str, ...] | None = None  # the whole set; None: leave as it is
    primary: str | None = None
    fail_over_mac: str | None = None
    num_grat_arp: int | None = None
    slaves: tuple[str, ...] = ()  # enslave these (those already enslaved are left)
    remove_slaves: tuple[str, ...] = ()  # release these


@dataclass(frozen=True)
class CurrentBond:
    """A bond as sysfs shows it now."""

    name: str
    mode: str
    miimon: int = 0
    arp_interval: int = 0
    arp_ip_targets: tuple[str, ...] = ()
    fail_over_mac: str = "none"
    slaves: tuple[str, ...] = ()
    flags: int = 0  # class/net/BOND/flags (IFF_UP = 0x1)

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


@dataclass(frozen=True)
class Write:
    path: PurePosixPath  # relative to the sysfs root
    value: str
    why: str = ""

    def shell(self, root: Path = SYSFS_ROOT) -> str:
        """The equivalent shell line (what the seed types)."""
        return f"echo {self.value} > {root / self.path}"


def bonding_path(bond: str, option: str) -> PurePosixPath:
    return PurePosixPath("class/net", bond, "bonding", option)


# --------------------------------------------------------------------------------------------
# Values


_IFNAME = re.compile(r"[^/:\s]{1,15}")  # the kernel's dev_valid_name(): < IFNAMSIZ, no / : space


def check_ifname(name: str, what: str) -> str:
    if not _IFNAME.fullmatch(name) or name in (".", ".."):
        raise BondConfigError(
            f"{what} {name!r} is not an interface name (1 to 15 characters, no '/', ':' or "
            "white space)"
        )
    return name


def parse_mode(text: str) -> str:
    """A mode by name or number (as modprobe and sysfs take it), as its name."""
    if text in MODES:
        return text
    if text.isdigit() and int(text) < len(MODES):
        return MODES[int(text)]
    allowed = ", ".join(f"{m} ({i})" for i, m in enumerate(MODES))
    raise BondConfigError(f"unknown bonding mode {text!r}; the modes are: {allowed}")


def parse_fail_over_mac(text: str) -> str:
    if text in FAIL_OVER_MAC:
        return text
    if text.isdigit() and int(text) < len(FAIL_OVER_MAC):
        return FAIL_OVER_MAC[int(text)]
    allowed = ", ".join(f"{m} ({i})" for i, m in enumerate(FAIL_OVER_MAC))
    raise BondConfigError(f"unknown fail_over_mac {text!r}; allowed: {allowed}")


def check_arp_target(text: str) -> str:
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise BondConfigError(f"arp_ip_target {text!r} is not an IPv4 address") from None
    # bond_is_ip_target_ok(): the kernel refuses 0.0.0.0/8 and the limited broadcast
    if address in ipaddress.IPv4Network("0.0.0.0/8") or address == ipaddress.IPv4Address(
        "255.255.255.255"
    ):
        raise BondConfigError(
            f"arp_ip_target {text}: the kernel refuses 0.0.0.0/8 and 255.255.255.255; give "
            "the address of a host that answers ARP on the bond's network (e.g. the gateway)"
        )
    return str(address)


def _milliseconds(name: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise BondConfigError(
            f"{name} must be 0 (off) or a positive number of milliseconds, not {value}"
        )


def validate(config: BondConfig, current: CurrentBond | None = None) -> BondConfig:
    """`config` with its values normalised (mode and fail_over_mac as names), or
    BondConfigError naming the first problem and what is allowed."""
    name = check_ifname(config.name, "bond")
    mode = parse_mode(config.mode) if config.mode is not None else None
    if current is None and mode is None:
        raise BondConfigError(f"bond {name} does not exist: give its mode to create it")
    mode = mode or (current.mode if current else "balance-rr")
    fail_over_mac = (
        parse_fail_over_mac(config.fail_over_mac) if config.fail_over_mac is not None else None
    )
    for option in ("miimon", "updelay", "downdelay", "arp_interval"):
        _milliseconds(option, getattr(config, option))
    if config.miimon and config.arp_interval:
        raise BondConfigError(
            "miimon and arp_interval are both set: the bond uses one link monitor, MII or ARP "
            "(the kernel turns the other off with a warning); give one of them"
        )
    miimon = config.miimon if config.miimon is not None else (current.miimon if current else 0)
    arp_interval = config.arp_interval
    if arp_interval is None and current is not None and not config.miimon:
        arp_interval = current.arp_interval
    for option in ("updelay", "downdelay"):
        delay = getattr(config, option)
        if not delay:
            continue
        if not miimon:
            raise BondConfigError(
                f"{option} needs MII monitoring: set miimon (e.g. 100) as well; the kernel "
                "refuses a delay while miimon is 0"
            )
        if delay % miimon:
            raise BondConfigError(
                f"{option} {delay} is not a multiple of miimon {miimon} (the kernel would round "
                f"it down to {delay - delay % miimon}); give a multiple of {miimon}"
            )
    if arp_interval and mode in NO_ARP_MODES:
        raise BondConfigError(
            f"ARP monitoring (arp_interval) is not supported in mode {mode}; use miimon, or a "
            f"mode that allows it: {', '.join(m for m in MODES if m not in NO_ARP_MODES)}"
        )
    targets = None
    if config.arp_ip_targets is not None:
        targets = tuple(check_arp_target(t) for t in config.arp_ip_targets)
        if len(set(targets)) != len(targets):
            raise BondConfigError(f"arp_ip_target lists an address twice: {', '.join(targets)}")
        if len(targets) > MAX_ARP_TARGETS:
            raise BondConfigError(
                f"{len(targets)} ARP targets: the kernel takes at most {MAX_ARP_TARGETS}"
            )
    effective_targets = (
        targets if targets is not None else (current.arp_ip_targets if current else ())
    )
    if arp_interval and not effective_targets:
        raise BondConfigError(
            "arp_interval without arp_ip_target: ARP monitoring needs at least one target "
            "address to probe (the seed uses two)"
        )
    if config.num_grat_arp is not None and not 0 <= config.num_grat_arp <= MAX_GRAT_ARP:
        raise BondConfigError(
            f"num_grat_arp must be 0 to {MAX_GRAT_ARP}, not {config.num_grat_arp}"
        )
    slaves = tuple(check_ifname(s, "slave") for s in config.slaves)
    removed = tuple(check_ifname(s, "slave") for s in config.remove_slaves)
    for slave in (*slaves, *removed):
        if slave == name:
            raise BondConfigError(f"bond {name} cannot be its own slave")
    if len(set(slaves)) != len(slaves):
        raise BondConfigError(f"a slave is named twice: {', '.join(slaves)}")
    both = sorted(set(slaves) & set(removed))
    if both:
        raise BondConfigError(f"{', '.join(both)} is both added and removed: give one")
    if config.primary is not None:
        check_ifname(config.primary, "primary")
        if mode not in PRIMARY_MODES:
            raise BondConfigError(
                f"primary is not used in mode {mode}; it applies to {', '.join(PRIMARY_MODES)}"
            )
        kept = (set(current.slaves) if current else set()) - set(removed)
        if config.primary not in kept | set(slaves):
            raise BondConfigError(
                f"primary {config.primary} is not one of the bond's slaves "
                f"({', '.join(sorted(kept | set(slaves))) or 'none'})"
            )
    return BondConfig(
        name=name,
        mode=config.mode and mode,
        miimon=config.miimon,
        updelay=config.updelay,
        downdelay=config.downdelay,
        arp_interval=config.arp_interval,
        arp_ip_targets=targets,
        primary=config.primary,
        fail_over_mac=fail_over_mac,
        num_grat_arp=config.num_grat_arp,
        slaves=slaves,
        remove_slaves=removed,
    )


# --------------------------------------------------------------------------------------------
# The plan


def plan(config: BondConfig, current: CurrentBond | None) -> list[Write]:
    """The sysfs writes that make the bond as `config` asks, in the kernel's order (see the
    module's docstring). Pure; validates first (BondConfigError)."""
    config = validate(config, current)
    name = config.name
    writes: list[Write] = []

    def write(option: str, value: object, why: str) -> None:
        writes.append(Write(bonding_path(name, option), str(value), why))

    if current is None:
        writes.append(Write(MASTERS, f"+{name}", f"create bond {name}"))
    slaves = list(current.slaves) if current else []
    mode_change = current is not None and config.mode not in (None, current.mode)
    fom_change = current is not None and config.fail_over_mac not in (None, current.fail_over_mac)
    took_down = False
    if (mode_change or fom_change) and slaves:
        for slave in slaves:
            write(
                "slaves",
                f"-{slave}",
                "release it: the kernel changes "
                f"{'the mode' if mode_change else 'fail_over_mac'} only with no slaves",
            )
    if mode_change and current is not None and current.up:
        writes.append(
            Write(
                PurePosixPath("class/net", name, "flags"),
                hex(current.flags & ~IFF_UP),
                "take the bond down: the kernel changes the mode only while it is down",
            )
        )
        took_down = True
    if config.mode is not None and (current is None or mode_change):
        write("mode", config.mode, "the mode comes before any slave")
    if config.fail_over_mac is not None and (current is None or fom_change):
        write("fail_over_mac", config.fail_over_mac, "set while the bond has no slaves")
    if config.miimon is not None:
        why = "MII link monitoring" if config.miimon else "MII link monitoring off"
        write("miimon", config.miimon, why)
    if config.updelay is not None:
        write("updelay", config.updelay, "after miimon: counted in miimon ticks")
    if config.downdelay is not None:
        write("downdelay", config.downdelay, "after miimon: counted in miimon ticks")
    if config.arp_ip_targets is not None:
        have = current.arp_ip_targets if current else ()
        for target in have:
            if target not in config.arp_ip_targets:
                write("arp_ip_target", f"-{target}", "no longer an ARP target")
        for target in config.arp_ip_targets:
            if target not in have:
                write("arp_ip_target", f"+{target}", "before arp_interval: something to probe")
    if config.arp_interval is not None:
        why = "ARP link monitoring" if config.arp_interval else "ARP link monitoring off"
        if config.arp_interval and (current is None or current.miimon):
            # a new bond starts with the driver's default miimon (100)
            why += " (the kernel turns MII monitoring off)"
        write("arp_interval", config.arp_interval, why)
    if config.num_grat_arp is not None:
        write("num_grat_arp", config.num_grat_arp, "gratuitous ARPs after a failover")
    if took_down and current is not None:
        writes.append(
            Write(
                PurePosixPath("class/net", name, "flags"),
                hex(current.flags),
                "bring the bond back up as it was",
            )
        )
    for slave in config.remove_slaves:
        if slave in slaves and not (mode_change or fom_change):
            write("slaves", f"-{slave}", "release it")
    released = set(config.remove_slaves)
    rejoin = [s for s in slaves if (mode_change or fom_change) and s not in released]
    for slave in [*rejoin, *(s for s in config.slaves if s not in slaves)]:
        write("slaves", f"+{slave}", "enslave it (the mode is set)")
    if config.primary is not None:
        write("primary", config.primary, "after the slaves: it names one of them")
    return writes


# --------------------------------------------------------------------------------------------
# Reading and writing sysfs


def _read(path: Path) -> str:
    return path.read_text().strip()


def read_current(root: Path, name: str) -> CurrentBond | None:
    """The bond as sysfs under `root` shows it, or None when bonding_masters does not list it.
    BondConfigError when the bonding driver is not there or the bond's files do not read."""
    masters = root / MASTERS
    try:
        listed = _read(masters).split()
    except FileNotFoundError:
        raise BondConfigError(
            f"{masters} does not exist: the bonding driver is not loaded (modprobe bonding)"
        ) from None
    except OSError as exc:
        raise BondConfigError(f"{masters}: {exc.strerror or exc}") from None
    if name not in listed:
        return None
    base = root / "class/net" / name / "bonding"
    path = base
    try:
        path = base / "mode"
        mode = _read(path).split()[0]  # "active-backup 1"
        values: dict[str, int] = {}
        for option in ("miimon", "arp_interval"):
            path = base / option
            values[option] = int(_read(path) or 0)
        path = base / "arp_ip_target"
        targets = tuple(_read(path).split())
        path = base / "fail_over_mac"
        fail_over_mac = (_read(path).split() or ["none"])[0]
        path = base / "slaves"
        slaves = tuple(_read(path).split())
        path = root / "class/net" / name / "flags"
        flags = int(_read(path), 16)
    except (OSError, ValueError, IndexError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else "unexpected content"
        raise BondConfigError(f"{path}: {detail or exc}") from None
    return CurrentBond(
        name=name,
        mode=parse_mode(mode),
        miimon=values["miimon"],
        arp_interval=values["arp_interval"],
        arp_ip_targets=targets,
        fail_over_mac=fail_over_mac,
        slaves=slaves,
        flags=flags,
    )


def write_value(path: Path, value: str) -> None:
    """One sysfs write: the value and a newline in one write(), as echo does; the file must
    exist (sysfs creates no files: a missing one is a missing bond or option)."""
    # O_TRUNC as the shell's ">" has it (sysfs ignores it; a fixture file keeps the last
    # value); no O_CREAT
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, (value + "\n").encode())
    finally:
        os.close(fd)


def apply(
    writes: Sequence[Write],
    root: Path = SYSFS_ROOT,
    writer: Callable[[Path, str], None] = write_value,
    on_write: Callable[[Write], None] | None = None,
) -> list[Write]:
    """Carry out `writes` under `root` in order; the writes done. On the first failure,
    BondConfigError names the path, the value, the kernel's reason and what was already done
    (sysfs has no transaction: the operator must know where it stopped)."""
    done: list[Write] = []
    for write in writes:
        path = root / write.path
        try:
            writer(path, write.value)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if isinstance(exc, FileNotFoundError):
                reason += " (is the bonding driver loaded, and does the bond exist?)"
            already = "; ".join(w.shell(root) for w in done) or "nothing"
            raise BondConfigError(
                f"{path}: writing {write.value!r} failed: {reason} (the kernel logs why in "
                f"dmesg). Done before it: {already}"
            ) from None
        done.append(write)
        if on_write is not None:
            on_write(write)
    return done
