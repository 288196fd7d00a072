"""A DrbdConf written back as drbd.conf text, canonical like `drbdadm dump`.

One file (includes are resolved), four-space indents, the `global` and `common` sections with
what differs from DRBD's defaults, each resource with its host sections first (explicit volumes
in `volume N { }`), then the option sections with what differs from `common`. Numbers are
written in each option's own unit, without a suffix. Reading the text back gives an equal model.
The text is also drbdadm 8.4's, except for hastack's `nbd-address` where a model has one.
"""

from __future__ import annotations

import re
from typing import Any

from hastack.replica.model import Disk, DrbdConf, Global, Host, Resource, Settings, Volume
from hastack.replica.options import GLOBAL, SECTIONS, TABLES, Spec, Value, format_value

__all__ = ["dump", "quote"]

_BARE = re.compile(r"[A-Za-z0-9/._-]{1,128}")
INDENT = "    "


def quote(text: str) -> str:
    """A value as drbd.conf reads it back: bare when it can be, else double-quoted."""
    if _BARE.fullmatch(text):
        return text
    if "\n" in text:
        raise ValueError(f"drbd.conf cannot hold a line break in a value: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dump(conf: DrbdConf) -> str:
    out: list[str] = [f"# {conf.file}, as hastack reads it", ""]
    lines = _global(conf.global_)
    if lines:
        out += ["global {", *lines, "}", ""]
    lines = _settings(conf.common, Settings(), 1)
    if lines:
        out += ["common {", *lines, "}", ""]
    for resource in conf.resources:
        out += _resource(resource, conf.common)
        out.append("")
    return "\n".join(out)


def _global(section: Global) -> list[str]:
    lines = []
    default = Global()
    for spec in GLOBAL.values():
        assert spec.field is not None
        value = getattr(section, spec.field)
        if value != getattr(default, spec.field):
            lines.append(_line(1, spec, value))
    return lines


def _line(depth: int, spec: Spec, value: Value) -> str:
    indent = INDENT * depth
    if spec.kind == "flag":
        return f"{indent}{spec.name};"
    if isinstance(value, tuple):
        return f"{indent}{spec.name} {' '.join(quote(v) for v in value)};"
    text = format_value(spec, value)
    return f"{indent}{spec.name} {text if spec.kind in ('bool', 'int') else quote(text)};"


def _section_values(section: Any, name: str) -> dict[str, Value]:
    """The options of a typed section by drbd.conf name, the `other` ones included."""
    values: dict[str, Value] = {}
    for option_name, spec in TABLES[name].items():
        if spec.field is not None:
            values[option_name] = getattr(section, spec.field)
    for option in section.other:
        values[option.name] = option.value
    return values


def _section_lines(section: Any, base: Any, name: str, depth: int) -> list[str]:
    """`name { ... }` with the options of `section` that differ from `base`'s."""
    mine, theirs = _section_values(section, name), _section_values(base, name)
    lines = []
    for option_name, spec in TABLES[name].items():
        if option_name not in mine:
            continue
        value = mine[option_name]
        if option_name in theirs and theirs[option_name] == value:
            continue
        if value is None or value == () or (spec.kind == "flag" and value is False):
            continue  # only reachable where base has no such option: nothing to write
        lines.append(_line(depth + 1, spec, value))
    if not lines:
        return []
    indent = INDENT * depth
    return [f"{indent}{name} {{", *lines, f"{indent}}}"]


def _settings(settings: Settings, base: Settings, depth: int) -> list[str]:
    lines: list[str] = []
    for name in SECTIONS:
        lines += _section_lines(getattr(settings, name), getattr(base, name), name, depth)
    return lines


def _resource(resource: Resource, common: Settings) -> list[str]:
    out = [f"resource {quote(resource.name)} {{"]
    for host in resource.hosts:
        out += _host(host, resource.settings.disk)
    out += _settings(resource.settings, common, 1)
    out.append("}")
    return out


def _host(host: Host, resource_disk: Disk) -> list[str]:
    if host.floating:
        head = f"floating {host.address}"
    elif host.stacked_on is not None:
        head = f"stacked-on-top-of {quote(host.stacked_on)}"
    else:
        head = "on " + " ".join(quote(n) for n in host.names)
    out = [f"{INDENT}{head} {{"]
    stacked = host.stacked_on is not None
    for volume in host.volumes:
        if volume.implicit:
            if volume.disk_options is not None:
                raise ValueError("an implicit volume cannot have disk options of its own")
            out += _volume_fields(volume, 2, stacked)
        else:
            out.append(f"{INDENT * 2}volume {volume.number} {{")
            out += _volume_fields(volume, 3, stacked)
            if volume.disk_options is not None:
                out += _section_lines(volume.disk_options, resource_disk, "disk", 3)
            out.append(f"{INDENT * 2}}}")
    if not host.floating:
        out.append(f"{INDENT * 2}address {host.address};")
    out.append(f"{INDENT}}}")
    return out


def _volume_fields(volume: Volume, depth: int, stacked: bool) -> list[str]:
    """device, disk, meta-disk (a stacked section has only its device), nbd-address."""
    indent = INDENT * depth
    disk = "none" if volume.disk is None else quote(volume.disk)
    meta = "internal"
    if volume.meta_disk.device is not None:
        meta = quote(volume.meta_disk.device)
        if volume.meta_disk.index is not None:
            meta += f" [{volume.meta_disk.index}]"
    lines = [f"{indent}device {quote(volume.device)} minor {volume.minor};"]
    if not stacked:
        lines += [f"{indent}disk {disk};", f"{indent}meta-disk {meta};"]
    if volume.nbd_address is not None:
        lines.append(f"{indent}nbd-address {volume.nbd_address};")
    return lines
