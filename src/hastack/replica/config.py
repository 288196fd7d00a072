"""drbd.conf, read as drbdadm 8.4 reads it (drbd.conf(5) for 8.4), into hastack.replica.model.

    conf = load_drbd_conf("/etc/drbd.conf")        # or parse_drbd_conf(text, file)
    mine, peer = select_host(conf, "r0", os.uname().nodename)

`global`, `common` and `resource` sections with their host sections (`on`, `floating`,
`stacked-on-top-of`), volumes, the disk/net/startup/options/handlers options with their units,
`include "glob";` and `skip { }`; 8.3 spellings drbdadm 8.4 still reads; hastack's own
`nbd-address`. The grammar is in hastack.replica.syntax, the option table in .options, the
checks in .build, the way back to text in .dump; docs/compat.md lists what hastack acts on.

Every problem of every file is collected and reported together as one ConfigError, each with
file:line:column; the DrbdConf is built only when there are none. Reading is sans-IO apart from
`include`, which goes through a `Files` object (the file system by default).
"""

from __future__ import annotations

from collections.abc import Iterable

from hastack.config.errors import ConfigError, ConfigProblem
from hastack.config.model import ConfigWarning
from hastack.replica.build import Builder, node_keys, normal_ip
from hastack.replica.model import DrbdConf, Host, Resource
from hastack.replica.syntax import DiskFiles, Files, Reader

__all__ = [
    "DiskFiles",
    "Files",
    "load_drbd_conf",
    "parse_drbd_conf",
    "read_drbd_conf",
    "select_host",
]


# --------------------------------------------------------------------------------------------
# Entry points


def _sort(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    def key(p: ConfigProblem) -> tuple[int, str, int, int]:
        s = p.source
        if s is None:
            return (1, "", 0, 0)
        return (0, s.file, s.line, getattr(s, "column", 0))

    return sorted(problems, key=key)


def read_drbd_conf(
    text: str, file: str, files: Files | None = None
) -> tuple[DrbdConf | None, list[ConfigProblem], list[ConfigWarning]]:
    """Parse without raising: (the DrbdConf or None, every problem, every warning)."""
    reader = Reader(files if files is not None else DiskFiles())
    reader.read_file(text, file)
    conf = Builder(reader, file).build()
    return conf, _sort(reader.problems), list(reader.warnings)


def parse_drbd_conf(text: str, file: str, files: Files | None = None) -> DrbdConf:
    """drbd.conf text -> DrbdConf; raises one ConfigError listing every problem. Includes are
    resolved relative to `file` through `files` (the file system by default)."""
    conf, problems, _ = read_drbd_conf(text, file, files)
    if problems or conf is None:
        raise ConfigError(problems or [ConfigProblem(None, f"{file}: not usable")])
    return conf


def load_drbd_conf(path: str, files: Files | None = None) -> DrbdConf:
    """Read drbd.conf (default /etc/drbd.conf in the CLI) and everything it includes."""
    files = files if files is not None else DiskFiles()
    try:
        text = files.read(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return parse_drbd_conf(text, path, files)


def select_host(
    conf: DrbdConf, resource: str | Resource, node: str, addresses: Iterable[str] = ()
) -> tuple[Host, Host]:
    """(this node's host section, the peer's) in a resource, as drbdadm picks them: an `on`
    section by the node's name (`uname -n`), a floating section by one of the node's
    `addresses`, a stacked section by the lower resource's host names."""
    if isinstance(resource, str):
        try:
            res = conf.resource(resource)
        except KeyError:
            known = ", ".join(r.name for r in conf.resources) or "none"
            raise ConfigError(
                f"{conf.file}: no resource {resource!r} (resources: {known})"
            ) from None
    else:
        res = resource
    local = {normal_ip(a) for a in addresses}
    lookup = {r.name: r for r in conf.resources}

    def matches(host: Host) -> bool:
        if host.floating:
            return normal_ip(host.address.host) in local
        if host.stacked_on is not None:
            return node in node_keys(host, lookup)
        return node in host.names

    mine = [h for h in res.hosts if matches(h)]
    sections = ", ".join(h.label for h in res.hosts)
    if len(mine) != 1:
        how = "no" if not mine else "more than one"
        shown = f"node {node!r}" + (f" (addresses {', '.join(sorted(local))})" if local else "")
        raise ConfigError(
            ConfigProblem(
                res.source,
                f"resource {res.name}: {how} host section for {shown}; its sections: {sections}",
            )
        )
    peer = next(h for h in res.hosts if h is not mine[0])
    return mine[0], peer
