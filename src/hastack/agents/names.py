"""Agent names (``ocf:heartbeat:IPaddr2``, ``lsb:nginx``, ...) and where their executables are."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

Standard = Literal["ocf", "lsb", "heartbeat", "systemd", "service", "stonith"]
STANDARDS: tuple[Standard, ...] = ("ocf", "lsb", "heartbeat", "systemd", "service", "stonith")

FORMS = "ocf:PROVIDER:TYPE, lsb:NAME, heartbeat:NAME, systemd:UNIT, service:NAME or stonith:TYPE"
# fence device types: fence_NAME, a cluster-glue plugin (null, external/ssh), hastack/KIND
_STONITH_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*(/[A-Za-z0-9_][A-Za-z0-9_.+-]*)?")

# Providers and types become path components (or a systemctl argument): no "/", no leading
# "." or "-" (hidden files, "..", options), no whitespace or control characters.
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]*")
# systemd unit names may also hold "\" escapes and ":" (e.g. "dev-disk-by\x2duuid-....device").
_UNIT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+:\\-]*")
_NAME_ALLOWED = "letters, digits and _ . @ + - (not starting with . or -)"

SANE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class AgentError(Exception):
    """A bad agent name or an agent that cannot be found or run; the message says why."""


class AgentNotFound(AgentError):
    """The agent is not installed on this host (Pacemaker's "not installed": a hard error
    here, which says nothing about other nodes)."""


@dataclass(frozen=True)
class AgentSpec:
    """A parsed agent name."""

    standard: Standard
    provider: str | None
    type: str

    def __str__(self) -> str:
        if self.provider is not None:
            return f"{self.standard}:{self.provider}:{self.type}"
        return f"{self.standard}:{self.type}"


def _check_name(text: str, what: str, value: str, pattern: re.Pattern[str]) -> None:
    if not pattern.fullmatch(value):
        raise AgentError(f"bad agent name {text!r}: {what} {value!r} may hold only {_NAME_ALLOWED}")


def parse_agent(text: str) -> AgentSpec:
    """Parse ``STANDARD:[PROVIDER:]TYPE``; raise AgentError saying what is wrong and allowed.

    The standard is case-insensitive (Pacemaker compares it so); provider and type are kept.
    """
    if not isinstance(text, str):
        raise AgentError(f"bad agent name {text!r}: expected a string like {FORMS}")
    standard_text, sep, rest = text.partition(":")
    if not sep:
        raise AgentError(f"bad agent name {text!r}: no standard; use {FORMS}")
    standard = standard_text.lower()
    if standard not in STANDARDS:
        raise AgentError(
            f"bad agent name {text!r}: unknown standard {standard_text!r}; "
            f"known: {', '.join(STANDARDS)} (as {FORMS})"
        )
    if standard == "ocf":
        provider, sep, type_ = rest.partition(":")
        if not sep:
            raise AgentError(
                f"bad agent name {text!r}: ocf needs a provider: ocf:PROVIDER:TYPE "
                "(e.g. ocf:heartbeat:IPaddr2)"
            )
        if not provider:
            raise AgentError(f"bad agent name {text!r}: empty provider; use ocf:PROVIDER:TYPE")
        if not type_:
            raise AgentError(f"bad agent name {text!r}: empty type; use ocf:PROVIDER:TYPE")
        _check_name(text, "provider", provider, _NAME_RE)
        if ":" in type_:
            raise AgentError(f"bad agent name {text!r}: too many ':'; use ocf:PROVIDER:TYPE")
        _check_name(text, "type", type_, _NAME_RE)
        return AgentSpec("ocf", provider, type_)
    if not rest:
        raise AgentError(f"bad agent name {text!r}: empty name; use {standard}:NAME")
    if standard == "systemd":
        _check_name(text, "unit", rest, _UNIT_RE)
        return AgentSpec("systemd", None, rest)
    if standard == "stonith":
        # fence devices run through the fencer (hastack.fencing), not as resource agents
        if not _STONITH_RE.fullmatch(rest):
            raise AgentError(
                f"bad agent name {text!r}: a fence device type is fence_NAME, a cluster-glue "
                "plugin (null, external/ssh) or hastack/KIND"
            )
        return AgentSpec("stonith", None, rest)
    if ":" in rest:
        raise AgentError(
            f"bad agent name {text!r}: {standard} agents have no provider; use {standard}:NAME"
        )
    _check_name(text, "name", rest, _NAME_RE)
    return AgentSpec(cast(Standard, standard), None, rest)


@dataclass(frozen=True)
class AgentPaths:
    """Where agents are looked up; tests pass temporary directories."""

    ocf_root: Path = Path("/usr/lib/ocf")
    init_d: Path = Path("/etc/init.d")
    ha_resource_d: Path = Path("/etc/ha.d/resource.d")
    systemd_run: Path = Path("/run/systemd/system")  # exists only while systemd runs
    systemd_unit_dirs: tuple[Path, ...] = (
        Path("/etc/systemd/system"),
        Path("/run/systemd/system"),
        Path("/usr/lib/systemd/system"),
        Path("/lib/systemd/system"),
    )

    def systemd_running(self) -> bool:
        """Whether systemd is the running init (sd_booted's test)."""
        return self.systemd_run.is_dir()


DEFAULT_PATHS = AgentPaths()


def _executable(path: Path, spec: AgentSpec) -> Path:
    if not path.is_file():
        raise AgentError(f"agent {spec}: {path} is not a regular file")
    if not os.access(path, os.X_OK):
        raise AgentError(f"agent {spec}: not executable: chmod +x {path}")
    return path


def _find_script(spec: AgentSpec, candidates: list[Path]) -> Path:
    for path in candidates:
        if path.exists():
            return _executable(path, spec)
    searched = ", ".join(str(p) for p in candidates)
    raise AgentNotFound(f"agent {spec} not found: searched {searched}")


def resolve_service(spec: AgentSpec, paths: AgentPaths = AgentPaths()) -> AgentSpec:
    """Resolve Pacemaker's ``service:`` alias: an LSB script when one exists in init.d, else a
    systemd unit when systemd runs, else LSB (whose lookup then fails with a clear error)."""
    if spec.standard != "service":
        return spec
    if (paths.init_d / spec.type).exists() or not paths.systemd_running():
        return AgentSpec("lsb", None, spec.type)
    return AgentSpec("systemd", None, spec.type)


def systemctl_path() -> Path | None:
    """systemctl, looked up on the sane PATH only."""
    found = shutil.which("systemctl", path=SANE_PATH)
    return Path(found) if found else None


def locate(spec: AgentSpec, paths: AgentPaths = AgentPaths()) -> Path:
    """The executable that runs `spec` (for systemd: systemctl); AgentError naming every place
    searched, a file that is not executable, or that systemd is not running."""
    spec = resolve_service(spec, paths)
    if spec.standard == "ocf":
        assert spec.provider is not None
        return _find_script(spec, [paths.ocf_root / "resource.d" / spec.provider / spec.type])
    if spec.standard == "lsb":
        return _find_script(spec, [paths.init_d / spec.type])
    if spec.standard == "heartbeat":
        # heartbeat's ResourceManager (scriptpath) looks in resource.d, then init.d.
        return _find_script(spec, [paths.ha_resource_d / spec.type, paths.init_d / spec.type])
    if spec.standard == "systemd":
        if not paths.systemd_running():
            raise AgentNotFound(
                f"agent {spec}: systemd is not running (no {paths.systemd_run}); "
                "use an lsb: or ocf: agent on this host"
            )
        systemctl = systemctl_path()
        if systemctl is None:
            raise AgentNotFound(f"agent {spec}: systemctl not found in {SANE_PATH}")
        return systemctl
    raise AgentError(f"agent {spec}: unknown standard {spec.standard!r}; use {FORMS}")


def _executables(directory: Path) -> list[str]:
    """Names of the executable regular files in a directory (Pacemaker lists the same)."""
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return []
    return [
        entry.name
        for entry in entries
        if _NAME_RE.fullmatch(entry.name) and entry.is_file() and os.access(entry, os.X_OK)
    ]


def _providers(paths: AgentPaths) -> list[str]:
    root = paths.ocf_root / "resource.d"
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    return [e.name for e in entries if _NAME_RE.fullmatch(e.name) and e.is_dir()]


_UNIT_SUFFIXES = (".service",)


def _systemd_units(paths: AgentPaths) -> list[str]:
    names: set[str] = set()
    for directory in paths.systemd_unit_dirs:
        try:
            entries = list(directory.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith(_UNIT_SUFFIXES) and not entry.name.endswith("@.service"):
                names.add(entry.name.removesuffix(".service"))
    return sorted(n for n in names if _UNIT_RE.fullmatch(n))


def list_agents(
    paths: AgentPaths = AgentPaths(), standard: str | None = None, provider: str | None = None
) -> list[AgentSpec]:
    """The agents that exist: OCF providers' types, LSB scripts, heartbeat R1 scripts and
    (only while systemd runs) systemd services. ``standard`` and ``provider`` filter; an
    unknown standard, or a provider with a standard other than ocf, is an AgentError."""
    if standard is not None:
        standard = standard.lower()
        if standard not in STANDARDS:
            raise AgentError(f"unknown standard {standard!r}; known: {', '.join(STANDARDS)}")
    if provider is not None and standard not in (None, "ocf"):
        raise AgentError(f"only ocf agents have providers, not {standard}")
    found: list[AgentSpec] = []
    if standard in (None, "ocf"):
        for prov in _providers(paths):
            if provider is None or prov == provider:
                root = paths.ocf_root / "resource.d" / prov
                found.extend(AgentSpec("ocf", prov, name) for name in _executables(root))
    if provider is not None:
        return found
    if standard in (None, "lsb"):
        found.extend(AgentSpec("lsb", None, n) for n in _executables(paths.init_d))
    if standard in (None, "heartbeat"):
        found.extend(AgentSpec("heartbeat", None, n) for n in _executables(paths.ha_resource_d))
    if standard in (None, "systemd") and paths.systemd_running():
        found.extend(AgentSpec("systemd", None, n) for n in _systemd_units(paths))
    if standard == "service":
        names = set(_executables(paths.init_d))
        if paths.systemd_running():
            names.update(_systemd_units(paths))
        found.extend(AgentSpec("service", None, n) for n in sorted(names))
    return found


_IPV4_RE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+(/.*)?")


def parse_r1_resource(text: str) -> tuple[str, tuple[str, ...]]:
    """Split a haresources entry ``name::arg1::arg2`` into (script name, args).

    As heartbeat's ResourceManager: a bare IPv4 address (optionally ``/mask/if/bcast``) means
    ``IPaddr::ADDRESS``. ``"IPaddr2::10.0.0.1/24/eth0"`` -> ``("IPaddr2", ("10.0.0.1/24/eth0",))``.
    """
    text = text.strip()
    if not text:
        raise AgentError("empty haresources entry; use NAME or NAME::ARG1::ARG2 ...")
    if any(c.isspace() for c in text):
        raise AgentError(f"bad haresources entry {text!r}: no spaces allowed; use NAME::ARG::ARG")
    if _IPV4_RE.fullmatch(text):
        return "IPaddr", (text,)
    name, _, rest = text.partition("::")
    if not _NAME_RE.fullmatch(name):
        raise AgentError(
            f"bad haresources entry {text!r}: script name {name!r} may hold only {_NAME_ALLOWED}"
        )
    # heartbeat passes the args unquoted through the shell, so empty ones vanish.
    args = tuple(a for a in rest.split("::") if a)
    return name, args
