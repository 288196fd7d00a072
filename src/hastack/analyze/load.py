"""Read a configuration directory for `hastack analyze` with hastack's own parsers.

DIR/ha.cf and DIR/authkeys (hastack.config), DIR/cib.xml (hastack.crm.cib.xml) or, when there
is none, DIR/haresources converted as the daemon converts it (hastack.crm.haresources), and
DIR/drbd.conf (hastack.replica.config) and DIR/watchdog.conf (hastack.watchdog.config). Each may
be absent; the Configuration says which were read. A file that is present but cannot be read
or parsed is a `LoadError` carrying every problem the parsers reported, so the analysis never
runs on half a configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

from hastack.analyze.findings import Configuration, FileRead
from hastack.config.authkeys import read_authkeys_file
from hastack.config.errors import ConfigError
from hastack.config.hacf import read_hacf_file, read_text_file, split_lines
from hastack.config.model import HaCf, Source
from hastack.crm.cib.model import Cib, CibError
from hastack.crm.cib.xml import read_cib
from hastack.crm.cib_source import r1_scripts_in
from hastack.crm.haresources import build_cib, parse_haresources
from hastack.replica.config import read_drbd_conf
from hastack.replica.model import DrbdConf
from hastack.watchdog.config import WatchdogConfigError
from hastack.watchdog.config import load as load_watchdog
from hastack.watchdog.model import WatchdogConfig

HACF = "ha.cf"
AUTHKEYS = "authkeys"
CIB = "cib.xml"
HARESOURCES = "haresources"
DRBD = "drbd.conf"
WATCHDOG = "watchdog.conf"
FILES = (HACF, AUTHKEYS, CIB, HARESOURCES, DRBD, WATCHDOG)


class LoadError(Exception):
    """The directory could not be read; `problems` are the parsers' messages (file:line)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _hacf(path: str, problems: list[str]) -> tuple[HaCf | None, dict[str, Source]]:
    hacf, found, _ = read_hacf_file(path)
    problems.extend(str(p) for p in found)
    lines: dict[str, Source] = {}
    if hacf is not None:
        text, _ = read_text_file(path)
        # the parser's own line splitter: where each directive is first used, for file:line
        for line in split_lines(text or "", path):
            lines.setdefault(line.directive, line.source)
    return hacf, lines


def _r1_cib(
    path: str, hacf: HaCf | None, directory: str, problems: list[str]
) -> tuple[Cib | None, dict[str, Source]]:
    """haresources converted as the node daemon converts it, with each primitive mapped back
    to its haresources line (build_cib writes the resources in file order)."""
    text, problem = read_text_file(path)
    if text is None:
        problems.append(str(problem))
        return None, {}
    nodes = [n.name for n in hacf.nodes] if hacf is not None else []
    try:
        lines = parse_haresources(text, path, nodes, r1_scripts_in(Path(directory) / "resource.d"))
    except ConfigError as exc:
        problems.extend(str(p) for p in exc.problems)
        return None, {}
    fencing = hacf is not None and (hacf.stonith is not None or bool(hacf.stonith_hosts))
    data = build_cib(lines, hacf.auto_failback if hacf else "legacy", nodes, path, fencing)
    cib = read_cib(data, source=path)
    resources = [r for line in lines for r in line.resources]
    sources = {
        p.id: Source(path, r.line) for p, r in zip(cib.all_primitives(), resources, strict=True)
    }
    return cib, sources


def _drbd(path: str, problems: list[str]) -> DrbdConf | None:
    text, problem = read_text_file(path)
    if text is None:
        problems.append(str(problem))
        return None
    conf, found, _ = read_drbd_conf(text, path)
    problems.extend(str(p) for p in found)
    return conf if not found else None


def load_directory(directory: str) -> Configuration:
    """Every file of the directory that is there, parsed; raises LoadError (see the module)."""
    if not os.path.isdir(directory):
        raise LoadError([f"{directory}: not a directory (give the configuration directory)"])
    path = {name: os.path.join(directory, name) for name in FILES}
    present = {name for name in FILES if os.path.lexists(path[name])}
    if not present:
        raise LoadError([f"{directory}: none of {', '.join(FILES)} is there: nothing to analyse"])
    problems: list[str] = []
    hacf, hacf_lines = _hacf(path[HACF], problems) if HACF in present else (None, {})
    if AUTHKEYS in present:
        _, found, _ = read_authkeys_file(path[AUTHKEYS])
        problems.extend(str(p) for p in found)
    cib: Cib | None = None
    sources: dict[str, Source] = {}
    r1 = False
    cib_file: str | None = None
    if CIB in present:
        try:
            cib = read_cib(Path(path[CIB]), source=path[CIB])
        except CibError as exc:
            problems.extend(str(p) for p in exc.problems)
        cib_file = path[CIB]
    elif HARESOURCES in present:
        cib, sources = _r1_cib(path[HARESOURCES], hacf, directory, problems)
        r1, cib_file = True, path[HARESOURCES]
    drbd = _drbd(path[DRBD], problems) if DRBD in present else None
    watchdog: WatchdogConfig | None = None
    if WATCHDOG in present:
        try:
            watchdog = load_watchdog(path[WATCHDOG])
        except WatchdogConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise LoadError(problems)
    files: list[FileRead] = []
    for name in FILES:
        if name not in present:
            files.append(FileRead(name, path[name], "absent"))
        elif name == HARESOURCES and CIB in present:
            files.append(FileRead(name, path[name], "not used", "cib.xml takes precedence"))
        else:
            files.append(FileRead(name, path[name], "read"))
    return Configuration(
        directory=directory,
        files=tuple(files),
        hacf=hacf,
        hacf_lines=hacf_lines,
        cib=cib,
        cib_file=cib_file,
        r1=r1,
        resource_sources=sources,
        drbd=drbd,
        watchdog=watchdog,
    )
