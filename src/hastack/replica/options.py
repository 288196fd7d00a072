"""Every option of drbd.conf 8.4's sections: its type, unit, range and default, and whether
hastack acts on it.

Ranges and defaults are DRBD 8.4's own (drbdsetup 8.4's option table, which carries the kernel
module's limits); the startup and global options, which only drbdadm reads, are drbdadm 8.4's.
An option with a `field` is acted on and becomes a typed field of hastack.replica.model; every
other option is read, checked and kept by name, and its use is warned about ("read, not acted on
by hastack") unless its value is one hastack behaves as anyway (`quiet`).

Numbers take drbd's suffixes: K, M, G (powers of 1024, either case) and s (512-byte sectors),
scaled to the option's own unit the way drbdsetup scales them: `resync-rate 10M` is 10240 KiB/s,
`size 1G` is 2097152 sectors, and `timeout 1K` really is 1024 tenths of a second.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from hastack.replica.activitylog import MAX_AL_EXTENTS, RING_SIZE
from hastack.replica.tokens import Token

Value = bool | int | str | tuple[str, ...]
Kind = Literal["bool", "flag", "int", "choice", "string", "digest", "names", "resource", "cpumask"]
Scale = Literal["1", "k", "s"]  # the option's unit: as is, KiB, 512-byte sectors

SECTIONS = ("disk", "net", "startup", "options", "handlers")

# Digest algorithms hastack implements, by the kernel crypto names drbd.conf uses.
DIGESTS = ("crc32c", "crc32", "md5", "sha1", "sha224", "sha256", "sha384", "sha512")
HMAC_DIGESTS = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
SHARED_SECRET_MAX = 64  # the kernel's SHARED_SECRET_MAX


class BadValue(ValueError):
    """A value that does not fit its option; the message says what is allowed."""


@dataclass(frozen=True)
class Spec:
    name: str
    kind: Kind
    default: Value | None = None  # None: not set (no algorithm, no handler, ...)
    low: int = 0
    high: int = 0
    scale: Scale = "1"
    unit: str = ""  # for messages: "KiB/s", "0.1 s", ...
    choices: tuple[str, ...] = ()
    field: str | None = None  # the typed field, when hastack acts on the option
    why: str = ""  # when it does not: the reason the warning gives
    quiet: tuple[Value, ...] = ()  # values hastack behaves as anyway: no warning
    fold_case: bool = False  # protocol: drbdadm reads `c` as `C`
    prefix: str = ""  # a choice may also be PREFIX + a host name (discard-node-NAME)
    # hastack's own ceiling, below drbd's `high`, and why: a value above it is an error that
    # says both (al-extents: what hastack's on-disk activity log holds)
    cap: int | None = None
    cap_why: str = ""

    @property
    def acted(self) -> bool:
        # The global section's options are typed fields too, but each has its `why`.
        return self.field is not None and not self.why

    def describe_range(self) -> str:
        unit = f"in {self.unit}; " if self.unit else ""
        return f"{self.low} to {self.high} ({unit}default {self.default})"


def _int(
    name: str,
    low: int,
    high: int,
    default: int,
    unit: str = "",
    scale: Scale = "1",
    field: str | None = None,
    why: str = "",
    quiet: tuple[Value, ...] = (),
) -> Spec:
    return Spec(name, "int", default, low, high, scale, unit, (), field, why, quiet)


def _bool(
    name: str, default: bool, field: str | None = None, why: str = "", quiet: tuple[Value, ...] = ()
) -> Spec:
    return Spec(name, "bool", default, field=field, why=why, quiet=quiet)


def _choice(
    name: str,
    choices: tuple[str, ...],
    field: str | None = None,
    why: str = "",
    quiet: tuple[Value, ...] = (),
    prefix: str = "",
) -> Spec:
    return Spec(
        name,
        "choice",
        choices[0],
        choices=choices,
        field=field,
        why=why,
        quiet=quiet,
        prefix=prefix,
    )


def _handler(name: str) -> Spec:
    return Spec(name, "string", None, field=name.replace("-", "_"))


_TENTHS = "0.1 s"
_AFTER_SB_0PRI = (
    "disconnect",
    "discard-younger-primary",
    "discard-older-primary",
    "discard-zero-changes",
    "discard-least-changes",
    "discard-local",
    "discard-remote",
)
_AFTER_SB_1PRI = (
    "disconnect",
    "consensus",
    "discard-secondary",
    "call-pri-lost-after-sb",
    "violently-as0p",
)
_AFTER_SB_2PRI = ("disconnect", "call-pri-lost-after-sb", "violently-as0p")

DISK: dict[str, Spec] = {
    s.name: s
    for s in (
        _int("size", 0, 2199023255552, 0, "sectors", "s", field="size"),
        _int(
            "max-bio-bvecs",
            0,
            128,
            0,
            why="hastack serves I/O in user space; there are no BIOs to limit",
            quiet=(0,),
        ),
        # detach first: DRBD 8.4's default
        _choice("on-io-error", ("detach", "pass_on", "call-local-io-error"), field="on_io_error"),
        _choice("fencing", ("dont-care", "resource-only", "resource-and-stonith"), field="fencing"),
        _bool("disk-barrier", False, field="disk_barrier"),
        _bool("disk-flushes", True, field="disk_flushes"),
        _bool(
            "disk-drain",
            True,
            why="hastack orders writes with flushes (disk-flushes), never by draining alone",
            quiet=(True,),
        ),
        _bool("md-flushes", True, field="md_flushes"),
        _int("resync-rate", 1, 4194304, 250, "KiB/s", "k", field="resync_rate"),
        Spec(
            "resync-after",
            "resource",
            None,
            why="hastack resynchronises every resource on its own, without ordering them",
        ),
        Spec(
            "al-extents",
            "int",
            1237,
            67,
            65534,
            unit="extents of 4 MiB",
            field="al_extents",
            cap=MAX_AL_EXTENTS,
            cap_why=f"what hastack's {RING_SIZE // 1024} KiB on-disk activity log holds",
        ),
        _bool(
            "al-updates",
            True,
            why="hastack always writes activity-log transactions",
            quiet=(True,),
        ),
        _bool(
            "discard-zeroes-if-aligned",
            True,
            why="a setting of the kernel's block layer; hastack handles NBD TRIM itself",
        ),
        _bool(
            "disable-write-same",
            False,
            why="NBD has no WRITE_SAME; hastack never issues one",
            quiet=(False,),
        ),
        _int("c-plan-ahead", 0, 300, 20, _TENTHS, field="c_plan_ahead"),
        _int("c-delay-target", 1, 100, 10, _TENTHS, field="c_delay_target"),
        _int("c-fill-target", 0, 1048576, 100, "sectors", "s", field="c_fill_target"),
        _int("c-max-rate", 250, 4194304, 102400, "KiB/s", "k", field="c_max_rate"),
        _int("c-min-rate", 0, 4194304, 250, "KiB/s", "k", field="c_min_rate"),
        _int(
            "disk-timeout",
            0,
            6000,
            0,
            _TENTHS,
            why="hastack does not abort I/O the backing device has not finished",
            quiet=(0,),
        ),
        _choice(
            "read-balancing",
            (
                "prefer-local",
                "prefer-remote",
                "round-robin",
                "least-pending",
                "when-congested-remote",
                "32K-striping",
                "64K-striping",
                "128K-striping",
                "256K-striping",
                "512K-striping",
                "1M-striping",
            ),
            why="hastack always reads from the local disk while it has one",
            quiet=("prefer-local",),
        ),
        _int(
            "rs-discard-granularity",
            0,
            1048576,
            0,
            "bytes",
            why="hastack's resync always sends the data, never discards",
            quiet=(0,),
        ),
    )
}

NET: dict[str, Spec] = {
    s.name: s
    for s in (
        Spec("protocol", "choice", "C", choices=("A", "B", "C"), field="protocol", fold_case=True),
        _int("timeout", 1, 600, 60, _TENTHS, field="timeout"),
        _int(
            "max-epoch-size",
            1,
            20000,
            2048,
            why="hastack sizes its write epochs itself",
        ),
        _int("max-buffers", 32, 131072, 2048, "pages of 4 KiB", field="max_buffers"),
        _int(
            "unplug-watermark",
            1,
            131072,
            128,
            why="it has no effect on current kernels either (drbd.conf(5))",
        ),
        _int("connect-int", 1, 120, 10, "s", field="connect_int"),
        _int("ping-int", 1, 120, 10, "s", field="ping_int"),
        _int("sndbuf-size", 0, 10485760, 0, "bytes", field="sndbuf_size"),
        _int("rcvbuf-size", 0, 10485760, 0, "bytes", field="rcvbuf_size"),
        _int("ko-count", 0, 200, 7, field="ko_count"),
        _bool("allow-two-primaries", False, field="allow_two_primaries"),
        Spec("cram-hmac-alg", "digest", None, choices=HMAC_DIGESTS, field="cram_hmac_alg"),
        Spec("shared-secret", "string", None, field="shared_secret"),
        _choice("after-sb-0pri", _AFTER_SB_0PRI, field="after_sb_0pri", prefix="discard-node-"),
        _choice("after-sb-1pri", _AFTER_SB_1PRI, field="after_sb_1pri"),
        _choice("after-sb-2pri", _AFTER_SB_2PRI, field="after_sb_2pri"),
        _bool(
            "always-asbp",
            False,
            why="hastack applies the after-sb policies only where DRBD does by default",
            quiet=(False,),
        ),
        _choice(
            "rr-conflict",
            ("disconnect", "call-pri-lost", "violently"),
            why="hastack always disconnects when a resync would change a Primary's data",
            quiet=("disconnect",),
        ),
        _int("ping-timeout", 1, 300, 5, _TENTHS, field="ping_timeout"),
        Spec("data-integrity-alg", "digest", None, choices=DIGESTS, field="data_integrity_alg"),
        _bool("tcp-cork", True, why="hastack sets its own socket options"),
        _choice(
            "on-congestion",
            ("block", "pull-ahead", "disconnect"),
            why="hastack has no Ahead/Behind mode: a full send buffer always blocks",
            quiet=("block",),
        ),
        _int(
            "congestion-fill",
            0,
            20971520,
            0,
            "sectors",
            "s",
            why="used only with on-congestion pull-ahead, which hastack does not have",
            quiet=(0,),
        ),
        _int(
            "congestion-extents",
            67,
            65534,
            1237,
            "extents of 4 MiB",
            why="used only with on-congestion pull-ahead, which hastack does not have",
            quiet=(1237,),
        ),
        Spec("csums-alg", "digest", None, choices=DIGESTS, field="csums_alg"),
        _bool(
            "csums-after-crash-only",
            False,
            why="hastack uses csums-alg for every resync once it is set",
            quiet=(False,),
        ),
        Spec("verify-alg", "digest", None, choices=DIGESTS, field="verify_alg"),
        _bool("use-rle", True, why="hastack's bitmap exchange has its own encoding"),
        _int(
            "socket-check-timeout",
            0,
            300,
            0,
            _TENTHS,
            why="a DRBD Proxy setting; hastack connects to its peer directly",
            quiet=(0,),
        ),
    )
}

STARTUP: dict[str, Spec] = {
    s.name: s
    for s in (
        _int("wfc-timeout", 0, 300000, 0, "s", field="wfc_timeout"),
        _int("degr-wfc-timeout", 0, 300000, 0, "s", field="degr_wfc_timeout"),
        _int("outdated-wfc-timeout", 0, 300000, 0, "s", field="outdated_wfc_timeout"),
        _bool(
            "wait-after-sb",
            False,
            why="after a split brain hastack stops waiting for the peer, as by default",
            quiet=(False,),
        ),
        Spec(
            "stacked-timeouts",
            "flag",
            False,
            why="hastack does not run stacked resources",
        ),
        Spec("become-primary-on", "names", (), field="become_primary_on"),
    )
}

OPTIONS: dict[str, Spec] = {
    s.name: s
    for s in (
        Spec(
            "cpu-mask",
            "cpumask",
            "0",
            why="hastack is one process: pin it with systemd's CPUAffinity= or taskset",
            quiet=("0",),
        ),
        _choice(
            "on-no-data-accessible",
            ("io-error", "suspend-io"),
            why="with no disk reachable hastack always fails the I/O",
            quiet=("io-error",),
        ),
    )
}

HANDLERS: dict[str, Spec] = {
    s.name: s
    for s in (
        _handler("pri-on-incon-degr"),
        _handler("pri-lost-after-sb"),
        _handler("pri-lost"),
        _handler("fence-peer"),
        _handler("unfence-peer"),
        _handler("local-io-error"),
        _handler("initial-split-brain"),
        _handler("split-brain"),
        _handler("before-resync-target"),
        _handler("after-resync-target"),
        _handler("before-resync-source"),
        _handler("out-of-sync"),
    )
}

GLOBAL: dict[str, Spec] = {
    s.name: s
    for s in (
        Spec(
            "usage-count",
            "choice",
            "ask",
            choices=("yes", "no", "ask"),
            field="usage_count",
            why="hastack never reports usage to anyone",
            quiet=("no",),
        ),
        _int(
            "minor-count",
            1,
            255,
            32,
            field="minor_count",
            why="hastack loads no kernel module",
        ),
        _int(
            "dialog-refresh",
            0,
            2147483647,
            1,
            "s",
            field="dialog_refresh",
            why="hastack has no boot-time dialog",
        ),
        Spec(
            "disable-ip-verification",
            "flag",
            False,
            field="disable_ip_verification",
            why="hastack never checks addresses against the local interfaces",
            quiet=(True,),
        ),
        Spec(
            "udev-always-use-vnr",
            "flag",
            False,
            field="udev_always_use_vnr",
            why="hastack makes no device nodes or udev links; volumes are reached over NBD",
        ),
        _int(
            "cmd-timeout-short",
            0,
            900,
            5,
            "s",
            field="cmd_timeout_short",
            why="hastack's commands have their own timeouts",
        ),
        _int(
            "cmd-timeout-medium",
            0,
            900,
            121,
            "s",
            field="cmd_timeout_medium",
            why="hastack's commands have their own timeouts",
        ),
        _int(
            "cmd-timeout-long",
            0,
            900,
            600,
            "s",
            field="cmd_timeout_long",
            why="hastack's commands have their own timeouts",
        ),
    )
}

TABLES: dict[str, dict[str, Spec]] = {
    "disk": DISK,
    "net": NET,
    "startup": STARTUP,
    "options": OPTIONS,
    "handlers": HANDLERS,
}

# 8.3 spellings drbdadm 8.4 still reads, each read as its 8.4 option:
# (section, old name) -> (section, 8.4 name, the value the old flag stands for or None).
OLD_SPELLINGS: dict[tuple[str, str], tuple[str, str, bool | None]] = {
    ("disk", "no-disk-barrier"): ("disk", "disk-barrier", False),
    ("disk", "no-disk-flushes"): ("disk", "disk-flushes", False),
    ("disk", "no-disk-drain"): ("disk", "disk-drain", False),
    ("disk", "no-md-flushes"): ("disk", "md-flushes", False),
    ("net", "no-tcp-cork"): ("net", "tcp-cork", False),
    ("handlers", "outdate-peer"): ("handlers", "fence-peer", None),
    ("syncer", "rate"): ("disk", "resync-rate", None),
    ("syncer", "after"): ("disk", "resync-after", None),
    **{
        ("syncer", name): ("disk", name, None)
        for name in (
            "al-extents",
            "c-plan-ahead",
            "c-delay-target",
            "c-fill-target",
            "c-max-rate",
            "c-min-rate",
        )
    },
    **{("syncer", name): ("options", name, None) for name in ("cpu-mask", "on-no-data-accessible")},
    **{("syncer", name): ("net", name, None) for name in ("verify-alg", "csums-alg", "use-rle")},
}

# 8.3 options drbdadm 8.4 reads and drops.
OBSOLETE: dict[tuple[str, str], str] = {
    ("disk", "use-bmbv"): "an 8.3 setting without effect since DRBD 8.4",
}

# Keywords of DRBD 9's drbd.conf that 8.4 does not have, with the 8.4 way where there is one.
DRBD9_ONLY: dict[str, str] = {
    "connection": "DRBD 8.4 connects the two `on` sections of a resource by itself",
    "connection-mesh": "DRBD 8.4 connects the two `on` sections of a resource by itself",
    "path": "give each `on` section its `address`",
    "host": "give each `on` section its `address`",
    "node-id": "DRBD 8.4 has no node ids",
    "quorum": "DRBD 8.4 has no quorum; use the cluster's",
    "on-no-quorum": "DRBD 8.4 has no quorum; use the cluster's",
    "quorum-minimum-redundancy": "DRBD 8.4 has no quorum; use the cluster's",
    "on-suspended-primary-outdated": "",
    "auto-promote": "the cluster promotes the resource (ocf:hastack:replica)",
    "auto-promote-timeout": "the cluster promotes the resource (ocf:hastack:replica)",
    "peer-ack-window": "",
    "peer-ack-delay": "",
    "twopc-timeout": "",
    "twopc-retry-timeout": "",
    "max-io-depth": "",
    "transport": "DRBD 8.4 replicates over TCP (or the address family's socket type)",
    "allow-remote-read": "",
    "load-balance-paths": "",
    "bitmap": "",
    "quorum-lost": "",
    "disconnected": "",
    "peer-device-options": "",
    "require-drbd-module-version-eq": "",
    "require-drbd-module-version-ge": "",
}

# Options of `drbdadm connect`'s command line, which drbd.conf does not take.
COMMAND_LINE_ONLY = ("discard-my-data", "tentative", "set-defaults")


# --------------------------------------------------------------------------------------------
# Reading a value

_NUMBER = re.compile(r"([0-9]+)([kKmMgGs]?)")
_SUFFIX_BYTES = {"s": 512, "k": 1024, "m": 1 << 20, "g": 1 << 30}
_SCALE_BYTES = {"1": 1, "k": 1024, "s": 512}
_CPUMASK = re.compile(r"[0-9a-fA-F]+(,[0-9a-fA-F]+)*")


def read_number(spec: Spec, token: Token) -> int:
    """A number with drbd's optional suffix, in the option's unit, range-checked."""
    match = _NUMBER.fullmatch(token.text)
    if match is None:
        raise BadValue(
            f"{token.show()} is not a number: write digits, optionally followed by "
            f"K, M, G or s ({spec.describe_range()})"
        )
    number, suffix = int(match[1]), match[2].lower()
    if suffix:
        scaled, rest = divmod(number * _SUFFIX_BYTES[suffix], _SCALE_BYTES[spec.scale])
        if rest:
            raise BadValue(f"{token.show()} is not a whole number of {spec.unit}")
        number = scaled
    if not spec.low <= number <= spec.high:
        unit = f" {spec.unit}" if spec.unit else ""
        shown = token.show() + (f" (= {number}{unit})" if suffix else "")
        raise BadValue(f"{shown} is out of range: {spec.describe_range()}")
    if spec.cap is not None and number > spec.cap:
        unit = f" {spec.unit}" if spec.unit else ""
        shown = token.show() + (f" (= {number}{unit})" if suffix else "")
        raise BadValue(
            f"{shown} is more than hastack allows: {spec.low} to {spec.cap}, {spec.cap_why} "
            f"(drbd.conf(5) allows up to {spec.high}; DRBD 8.4 lowers it to what its own "
            "activity log holds)"
        )
    return number


def read_value(spec: Spec, values: Sequence[Token]) -> Value:
    """The value of `spec` written as `values` (the tokens between its name and the `;`)."""
    if spec.kind == "flag":
        if values:
            raise BadValue(f"takes no value (write `{spec.name};`), got {values[0].show()}")
        return True
    if spec.kind == "bool":
        if not values:
            return True
        if len(values) == 1 and values[0].is_word("yes", "no"):
            return values[0].text == "yes"
        raise BadValue(f"{values[0].show()} is not yes or no (or nothing, which means yes)")
    if spec.kind == "names":
        if not values:
            raise BadValue("needs a host name, several, or `both`")
        bad = next((t for t in values if not t.is_value), None)
        if bad is not None:
            raise BadValue(f"{bad.show()} is not a host name")
        names = tuple(t.text for t in values)
        if "both" in names and len(names) > 1:
            raise BadValue("`both` stands alone: it already names both hosts")
        return names
    if not values:
        raise BadValue(f"needs a value ({_allowed(spec)})")
    if len(values) > 1:
        raise BadValue(
            f"takes one value, got {len(values)}: put a value with blanks in double quotes"
        )
    token = values[0]
    if not token.is_value:
        raise BadValue(f"{token.show()} is not a value ({_allowed(spec)})")
    if spec.kind == "int":
        return read_number(spec, token)
    if spec.kind == "choice":
        return _read_choice(spec, token)
    if spec.kind == "digest":
        if token.text not in spec.choices:
            raise BadValue(
                f"{token.show()} is not a digest algorithm hastack implements: "
                f"{', '.join(spec.choices)}"
            )
        return token.text
    if spec.kind == "cpumask":
        if not _CPUMASK.fullmatch(token.text):
            raise BadValue(
                f"{token.show()} is not a CPU mask: hexadecimal digits, in 32-bit groups "
                "separated by commas (ff, 0,ffff0000)"
            )
        return token.text
    if spec.name == "shared-secret" and len(token.text) > SHARED_SECRET_MAX:
        raise BadValue(f"is {len(token.text)} characters long; at most {SHARED_SECRET_MAX}")
    if spec.kind == "resource" and not token.text:
        raise BadValue("needs a resource name")
    return token.text


def _read_choice(spec: Spec, token: Token) -> str:
    text = token.text.upper() if spec.fold_case else token.text
    if text in spec.choices:
        return text
    if spec.prefix and text.startswith(spec.prefix) and len(text) > len(spec.prefix):
        return text  # discard-node-NAME: NAME is checked against the resource's hosts
    raise BadValue(f"{token.show()} is not {_allowed(spec)}")


def _allowed(spec: Spec) -> str:
    if spec.kind in ("choice", "digest"):
        extra = [f"{spec.prefix}NODENAME"] if spec.prefix else []
        return "one of " + ", ".join([*spec.choices, *extra])
    if spec.kind == "int":
        return spec.describe_range()
    if spec.kind == "resource":
        return "a resource name"
    return "a word or a double-quoted string"


def format_value(spec: Spec, value: Value) -> str:
    """A value as a message or dump shows it (without quoting)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return " ".join(value)
    return str(value)
