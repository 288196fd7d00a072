"""drbd.conf's grammar, as drbdadm 8.4 reads it (drbd.conf(5) for 8.4): files -> raw sections.

The grammar, top down:

    file      := { global | common | resource | skip | include }
    global    := "global" "{" { option } "}"
    common    := "common" "{" { section | "protocol" X ";" | skip } "}"
    resource  := "resource" NAME "{" { host | volume | section | device-stmt | disk-stmt
                                       | meta-disk-stmt | "protocol" X ";" | skip } "}"
    host      := ( "on" NAME {NAME} | "floating" [AF] ADDR ":" PORT
                   | "stacked-on-top-of" RESOURCE ) "{" { address | volume | device-stmt
                   | disk-stmt | meta-disk-stmt | nbd-address | skip } "}"
               | "floating" [AF] ADDR ":" PORT ";"
    volume    := "volume" N "{" { device-stmt | disk-stmt | meta-disk-stmt | nbd-address
                                   | "disk" "{" { option } "}" | skip } "}"
    section   := ( "disk" | "net" | "startup" | "options" | "handlers" | "syncer" )
                 "{" { option } "}"
    option    := NAME { VALUE } ";"
    skip      := "skip" { anything but "{" } "{" balanced text "}"
    include   := "include" PATTERN ";"     (top level only; a glob, relative to the file)

`device`, `disk` and `meta-disk` written in a resource are inherited by its host sections (as
volume 0 when written outside `volume N {}`, "implicit"); a host's own value wins. Options of
`common` are inherited by every resource; a resource's own value wins. 8.3 spellings drbdadm
8.4 still reads (`syncer`, `no-disk-flushes`, `outdate-peer`, `flexible-meta-disk`) are read as
their 8.4 options, with a warning. hastack adds `nbd-address` to host and volume sections.

The reader keeps what each section says, as written, with where it was written; hastack.replica
.build makes the model of it. A statement that cannot be read is reported (file:line:column)
and skipped up to its `;` or past its `{ }` block, so one file yields all of its problems.
"""

from __future__ import annotations

import difflib
import glob as globlib
import ipaddress
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hastack.config.errors import ConfigProblem
from hastack.config.model import ConfigWarning, Source
from hastack.replica.model import Address, AddressFamily, MetaDisk, Position
from hastack.replica.options import (
    COMMAND_LINE_ONLY,
    DRBD9_ONLY,
    GLOBAL,
    OBSOLETE,
    OLD_SPELLINGS,
    SECTIONS,
    TABLES,
    BadValue,
    Spec,
    Value,
    format_value,
    read_value,
)
from hastack.replica.tokens import Token, tokenize

MAX_MINOR = (1 << 20) - 1  # DRBD 8.4's minor numbers are 20 bits
MAX_VOLUME = 65535
MAX_INCLUDE_DEPTH = 32  # beyond this an include chain is surely a loop through links
HOST_KINDS = ("on", "floating", "stacked-on-top-of")
_DEVICE_MINOR = re.compile(r"/dev/drbd([0-9]+)")
_GLOB_MAGIC = re.compile(r"[*?\[]")
NOT_ACTED = "read, not acted on by hastack"


class Files(Protocol):
    """How includes are read: the file system by default, a dict in tests."""

    def read(self, path: str) -> str:
        """The text of `path`; OSError or UnicodeDecodeError when it cannot be read."""
        ...

    def glob(self, pattern: str) -> list[str]:
        """The paths matching a shell pattern, sorted."""
        ...


class DiskFiles:
    """Includes from the file system."""

    def read(self, path: str) -> str:
        with open(path, encoding="utf-8") as f:
            return f.read()

    def glob(self, pattern: str) -> list[str]:
        return sorted(globlib.glob(pattern))


# --------------------------------------------------------------------------------------------
# What the parser collects, before the model is built


@dataclass
class Given:
    value: Value
    source: Position
    via: str  # the section it was written in (syncer, net, resource), for duplicate messages


Options = dict[str, Given]


@dataclass
class Block:
    """The option sections of common, a resource, or a volume's disk options, as written."""

    sections: dict[str, Options] = field(default_factory=lambda: {s: {} for s in SECTIONS})
    opened: dict[str, Position] = field(default_factory=dict)  # section -> where it opened


@dataclass
class RawVolume:
    number: int | None  # None: implicit
    source: Position
    device: tuple[str, int, Position] | None = None
    disk: tuple[str | None, Position] | None = None
    meta: tuple[MetaDisk, Position] | None = None
    nbd: tuple[Address, Position] | None = None
    options: Block = field(default_factory=Block)  # the volume's own `disk { }`


@dataclass
class RawHost:
    kind: str  # on, floating, stacked-on-top-of
    names: tuple[str, ...]
    source: Position
    address: tuple[Address, Position] | None = None
    stacked_on: str | None = None
    nbd: tuple[Address, Position] | None = None  # nbd-address of the implicit volume
    implicit: RawVolume | None = None
    volumes: dict[int, RawVolume] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.kind == "on":
            return "on " + " ".join(self.names)
        if self.kind == "floating":
            return f"floating {self.address[0].host_port}" if self.address else "floating"
        return f"stacked-on-top-of {self.stacked_on}"


@dataclass
class RawResource:
    name: str
    source: Position
    block: Block = field(default_factory=Block)
    implicit: RawVolume | None = None
    volumes: dict[int, RawVolume] = field(default_factory=dict)
    hosts: list[RawHost] = field(default_factory=list)
    broken: bool = False  # a statement of it could not be read


class _Syntax(Exception):
    """A statement that cannot be read; the reader reports it and skips the statement."""

    def __init__(self, token: Token, message: str) -> None:
        super().__init__(message)
        self.token = token
        self.message = message


class _Cursor:
    """One file's tokens and the position in them."""

    def __init__(self, text: str, file: str) -> None:
        self.tokens = tokenize(text)
        self.file = file
        self.pos = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        if token.kind != "eof":
            self.pos += 1
        return token

    def at(self, token: Token) -> Position:
        return Position(self.file, token.line, token.column)

    def expect_punct(self, char: str, after: str) -> Token:
        token = self.next()
        if not token.is_punct(char):
            raise _Syntax(token, f"expected '{char}' {after}, got {_bad_show(token)}")
        return token

    def values_until_semicolon(self, name: Token) -> list[Token]:
        """The tokens of a statement up to its `;`, which is consumed."""
        values: list[Token] = []
        while True:
            token = self.peek()
            if token.is_punct(";"):
                self.next()
                return values
            if token.kind == "eof" or token.is_punct("{") or token.is_punct("}"):
                raise _Syntax(
                    token,
                    f"expected ';' to end `{name.text}`, got {_bad_show(token)}",
                )
            if token.kind == "bad":
                raise _Syntax(token, f"{token.show()}: {token.error}")
            values.append(self.next())


def _bad_show(token: Token) -> str:
    return f"{token.show()} ({token.error})" if token.kind == "bad" else token.show()


# --------------------------------------------------------------------------------------------
# The reader: files -> raw sections, with every problem and warning


class Reader:
    def __init__(self, files: Files) -> None:
        self.files = files
        self.problems: list[ConfigProblem] = []
        self.warnings: list[ConfigWarning] = []
        self.read_files: list[str] = []
        self.stack: list[str] = []  # the include chain being read, for the cycle guard
        self.global_given: Options = {}
        self.global_at: Position | None = None
        self.common = Block()
        self.common_at: Position | None = None
        self.resources: list[RawResource] = []

    # -- reporting

    def error(self, source: Source | None, message: str) -> None:
        self.problems.append(ConfigProblem(source, message))

    def warn(self, source: Source | None, message: str) -> None:
        self.warnings.append(ConfigWarning(source, message))

    # -- files

    def read_file(self, text: str, file: str) -> None:
        self.read_files.append(file)
        self.stack.append(os.path.normpath(file))
        cursor = _Cursor(text, file)
        while cursor.peek().kind != "eof":
            self._statement(cursor, self._top_statement, "the top level")
        self.stack.pop()

    def _statement(self, cur: _Cursor, handle: Callable[[_Cursor], None], where: str) -> None:
        """Read one statement; on a syntax error report it and skip past the statement."""
        start = cur.pos
        try:
            handle(cur)
        except _Syntax as exc:
            self.error(cur.at(exc.token), f"{where}: {exc.message}")
            _recover(cur)
            if cur.pos == start:
                cur.next()

    def _body(self, cur: _Cursor, opened: Token, what: str, handle: Callable[[_Cursor], None]):
        """The statements of a section up to its `}`; `{` is already read."""
        while True:
            token = cur.peek()
            if token.is_punct("}"):
                cur.next()
                return
            if token.kind == "eof":
                self.error(
                    cur.at(token),
                    f"{what}: missing '}}' to close the section opened at line {opened.line}",
                )
                return
            self._statement(cur, handle, what)

    # -- top level

    def _top_statement(self, cur: _Cursor) -> None:
        token = cur.next()
        if token.is_word("global"):
            self._global(cur, token)
        elif token.is_word("common"):
            self._common(cur, token)
        elif token.is_word("resource"):
            self._resource(cur, token)
        elif token.is_word("skip"):
            _skip(cur, token)
        elif token.is_word("include"):
            self._include(cur, token)
        elif token.is_word(*DRBD9_ONLY):
            raise _Syntax(token, _drbd9(token.text))
        else:
            raise _Syntax(
                token,
                f"expected global, common, resource, skip or include, got {_bad_show(token)}",
            )

    def _include(self, cur: _Cursor, keyword: Token) -> None:
        values = cur.values_until_semicolon(keyword)
        if len(values) != 1:
            raise _Syntax(keyword, 'include takes one file pattern: include "drbd.d/*.res";')
        pattern = values[0].text
        here = cur.at(keyword)
        if not os.path.isabs(pattern):
            pattern = os.path.normpath(os.path.join(os.path.dirname(cur.file), pattern))
        # A pattern that matches nothing is fine (an empty drbd.d/); a missing file is not.
        paths = self.files.glob(pattern) if _GLOB_MAGIC.search(pattern) else [pattern]
        for path in paths:
            key = os.path.normpath(path)
            if key in self.stack:
                chain = " -> ".join([*self.stack[self.stack.index(key) :], key])
                self.error(here, f"include: an include cycle: {chain}")
                continue
            if len(self.stack) >= MAX_INCLUDE_DEPTH:
                self.error(here, f"include: includes nested deeper than {MAX_INCLUDE_DEPTH}")
                return
            try:
                text = self.files.read(path)
            except OSError as exc:
                self.error(here, f"include: cannot read {path}: {exc.strerror or exc}")
                continue
            except UnicodeDecodeError:
                self.error(here, f"include: {path} is not UTF-8 text")
                continue
            self.read_file(text, path)

    def _global(self, cur: _Cursor, keyword: Token) -> None:
        here = cur.at(keyword)
        if self.global_at is not None:
            raise _Syntax(keyword, f"a second global section (the first is at {self.global_at})")
        self.global_at = here
        opened = cur.expect_punct("{", "after global")
        self._body(cur, opened, "global", lambda c: self._global_option(c))

    def _global_option(self, cur: _Cursor) -> None:
        token = cur.next()
        if token.is_word("skip"):
            _skip(cur, token)
            return
        name = self._option_name(token, GLOBAL, "global")
        values = cur.values_until_semicolon(token)
        spec = GLOBAL[name]
        where = cur.at(token)
        try:
            value = read_value(spec, values)
        except BadValue as exc:
            self.error(where, f"global: {name}: {exc}")
            return
        self._store(self.global_given, name, Given(value, where, "global"), "global")
        self._warn_unacted(spec, value, where, "global")

    def _common(self, cur: _Cursor, keyword: Token) -> None:
        here = cur.at(keyword)
        if self.common_at is not None:
            raise _Syntax(keyword, f"a second common section (the first is at {self.common_at})")
        self.common_at = here
        opened = cur.expect_punct("{", "after common")
        self._body(cur, opened, "common", lambda c: self._common_statement(c))

    def _common_statement(self, cur: _Cursor) -> None:
        token = cur.next()
        if self._block_statement(cur, token, self.common, "common"):
            return
        if token.is_word(*HOST_KINDS, "volume", "device", "disk", "meta-disk", "nbd-address"):
            raise _Syntax(
                token,
                f"`{token.text}` belongs in a resource; common holds only the disk, net, "
                "startup, options and handlers sections (and protocol)",
            )
        raise _Syntax(token, _unknown(token, ("protocol", *SECTIONS, "syncer", "skip")))

    def _block_statement(self, cur: _Cursor, token: Token, block: Block, where: str) -> bool:
        """The statements common and resource share; False when `token` is none of them."""
        if token.is_word("skip"):
            _skip(cur, token)
        elif token.is_word("protocol"):
            # 8.3 wrote protocol in the resource; drbdadm 8.4 reads it as net's.
            self._option(cur, token, "net", block, where, via="protocol")
        elif token.is_word(*SECTIONS, "syncer") and cur.peek().is_punct("{"):
            self._section(cur, token, block, where)
        elif token.is_word("proxy"):
            raise _Syntax(token, "DRBD Proxy sections are not supported by hastack")
        elif token.is_word(*DRBD9_ONLY):
            raise _Syntax(token, _drbd9(token.text))
        else:
            return False
        return True

    def _section(self, cur: _Cursor, keyword: Token, block: Block, where: str) -> None:
        name = keyword.text
        here = cur.at(keyword)
        if name in block.opened:
            raise _Syntax(
                keyword, f"a second {name} section (the first is at {block.opened[name]})"
            )
        block.opened[name] = here
        if name == "syncer":
            self.warn(
                here,
                f"{where}: syncer: an 8.3 section; its options are read where drbdadm 8.4 "
                "moves them (disk, net, options)",
            )
        opened = cur.next()
        context = f"{where}, {name}"
        self._body(
            cur,
            opened,
            context,
            lambda c: self._section_statement(c, name, block, where),
        )

    def _section_statement(self, cur: _Cursor, section: str, block: Block, where: str) -> None:
        token = cur.next()
        if token.is_word("skip"):
            _skip(cur, token)
            return
        self._option(cur, token, section, block, where, via=section)

    def _option(
        self,
        cur: _Cursor,
        token: Token,
        section: str,
        block: Block,
        where: str,
        via: str,
    ) -> None:
        """One `NAME VALUE... ;` of `section`, stored under its 8.4 section and name."""
        context = f"{where}, {section}" if via != "protocol" else where
        if token.kind != "word":
            raise _Syntax(token, f"expected an option name, got {_bad_show(token)}")
        name = token.text
        here = cur.at(token)
        if (section, name) in OBSOLETE:
            cur.values_until_semicolon(token)
            self.warn(here, f"{context}: {name}: {OBSOLETE[section, name]}; ignored")
            return
        target, target_name, fixed = section, name, None
        renamed = (section, name) in OLD_SPELLINGS
        if renamed:
            target, target_name, fixed = OLD_SPELLINGS[section, name]
            written = f"{target_name} no" if fixed is False else target_name
            if section == "syncer":
                self.warn(here, f"{context}: {name}: read as `{written}` of the {target} section")
            else:
                self.warn(here, f"{context}: {name}: an 8.3 spelling, read as `{written}`")
        elif section == "syncer":
            syncer = sorted(n for s, n in OLD_SPELLINGS if s == "syncer")
            raise _Syntax(token, _unknown(token, syncer, "syncer option"))
        table = TABLES[target]
        if not renamed:
            self._option_name(token, table, section)
        values = cur.values_until_semicolon(token)
        spec = table[target_name]
        try:
            if fixed is not None:
                if values:
                    raise BadValue(f"takes no value (write `{name};`)")
                value: Value = fixed
            else:
                value = read_value(spec, values)
        except BadValue as exc:
            self.error(here, f"{context}: {name}: {exc}")
            return
        store = block.sections[target]
        self._store(store, target_name, Given(value, here, via), context)
        self._warn_unacted(spec, value, here, context)

    def _option_name(self, token: Token, table: dict[str, Spec], section: str) -> str:
        name = token.text
        if token.kind == "word" and name in table:
            return name
        if token.kind == "word" and name in DRBD9_ONLY:
            raise _Syntax(token, _drbd9(name))
        if section == "net" and name == "fencing":
            raise _Syntax(
                token, "fencing in net is DRBD 9 only, not supported: in 8.4 it is a disk option"
            )
        if name in COMMAND_LINE_ONLY:
            raise _Syntax(token, f"{name} is an option of drbdadm's command line, not of drbd.conf")
        words = [*table, *(n for s, n in OLD_SPELLINGS if s == section)]
        raise _Syntax(token, _unknown(token, words, f"{section} option"))

    def _store(self, store: Options, name: str, given: Given, context: str) -> None:
        old = store.get(name)
        if old is not None and old.via != given.via:
            self.error(
                given.source,
                f"{context}: {name} is also given in {old.via} at {old.source}; keep one",
            )
            return
        if old is not None:
            self.warn(
                given.source,
                f"{context}: {name} is given twice; this one wins over the one at {old.source}",
            )
        store[name] = given

    def _warn_unacted(self, spec: Spec, value: Value, where: Position, context: str) -> None:
        if spec.acted or value in spec.quiet:
            return
        shown = format_value(spec, value)
        self.warn(where, f"{context}: {spec.name} {shown}: {NOT_ACTED} ({spec.why})")

    # -- resources

    def _resource(self, cur: _Cursor, keyword: Token) -> None:
        name_token = cur.peek()  # left unread on error, so that recovery skips the { } block
        if not name_token.is_value or name_token.text == "":
            raise _Syntax(name_token, f"expected a resource name, got {_bad_show(name_token)}")
        cur.next()
        name = name_token.text
        here = cur.at(keyword)
        opened = cur.expect_punct("{", f"after resource {name}")
        resource = RawResource(name, here)
        where = f"resource {name}"
        problems = len(self.problems)
        self._body(cur, opened, where, lambda c: self._resource_statement(c, resource, where))
        resource.broken = len(self.problems) > problems
        for other in self.resources:
            if other.name == name:
                self.error(
                    here, f"{where}: a second resource {name} (the first is at {other.source})"
                )
                return
        self.resources.append(resource)

    def _resource_statement(self, cur: _Cursor, res: RawResource, where: str) -> None:
        token = cur.next()
        if self._block_statement(cur, token, res.block, where):
            return
        if token.is_word(*HOST_KINDS):
            res.hosts.append(self._host(cur, token, where))
        elif token.is_word("volume"):
            number, volume = self._volume(cur, token, where)
            if number in res.volumes:
                self.error(
                    volume.source,
                    f"{where}: a second volume {number} (the first is at "
                    f"{res.volumes[number].source})",
                )
            else:
                res.volumes[number] = volume
        elif token.is_word("device", "disk", "meta-disk", "flexible-meta-disk"):
            if res.implicit is None:
                res.implicit = RawVolume(None, cur.at(token))
            if res.hosts:
                # drbdadm passes these on only to host sections written after them.
                cur.values_until_semicolon(token)
                raise _Syntax(
                    token,
                    f"{token.text} must come before the first host section "
                    f"(line {res.hosts[0].source.line}): drbdadm gives it only to the "
                    "host sections after it",
                )
            self._volume_field(cur, token, res.implicit, where)
        elif token.is_word("nbd-address"):
            raise _Syntax(token, "nbd-address belongs in an `on` section or in a volume")
        elif token.is_word("ignore-on"):
            raise _Syntax(token, "ignore-on (deprecated in 8.4) is not supported by hastack")
        else:
            allowed = (
                "on",
                "floating",
                "stacked-on-top-of",
                "volume",
                "device",
                "disk",
                "meta-disk",
                "protocol",
                *SECTIONS,
                "syncer",
                "skip",
            )
            raise _Syntax(token, _unknown(token, allowed))

    def _host(self, cur: _Cursor, keyword: Token, where: str) -> RawHost:
        here = cur.at(keyword)
        if keyword.text == "on":
            names: list[str] = []
            while cur.peek().is_value:
                names.append(cur.next().text)
            if not names or any(n == "" for n in names):
                raise _Syntax(cur.peek(), "`on` needs a host name (as `uname -n` prints it)")
            host = RawHost("on", tuple(names), here)
            cur.expect_punct("{", f"after on {' '.join(names)}")
        elif keyword.text == "floating":
            address = self._address(cur, "floating")
            host = RawHost("floating", (), here, address=(address, here))
            if cur.peek().is_punct(";"):
                cur.next()
                return host  # the short form: everything inherited from the resource
            cur.expect_punct("{", f"or ';' after floating {address.host_port}")
        else:
            lower = cur.next()
            if not lower.is_value:
                raise _Syntax(lower, f"expected a resource name, got {_bad_show(lower)}")
            host = RawHost("stacked-on-top-of", (), here, stacked_on=lower.text)
            cur.expect_punct("{", f"after stacked-on-top-of {lower.text}")
        opened = cur.peek(-1)
        context = f"{where}, {host.label}"
        self._body(cur, opened, context, lambda c: self._host_statement(c, host, context))
        return host

    def _host_statement(self, cur: _Cursor, host: RawHost, where: str) -> None:
        token = cur.next()
        here = cur.at(token)
        if token.is_word("skip"):
            _skip(cur, token)
        elif token.is_word("address"):
            if host.kind == "floating":
                raise _Syntax(token, "a floating section's address is the one after `floating`")
            address = self._address(cur, "address")
            cur.expect_punct(";", "after the address")
            if host.address is not None:
                raise _Syntax(token, f"a second address (the first is at {host.address[1]})")
            host.address = (address, here)
        elif token.is_word("volume"):
            number, volume = self._volume(cur, token, where, stacked=host.stacked_on)
            if number in host.volumes:
                self.error(
                    here,
                    f"{where}: a second volume {number} (the first is at "
                    f"{host.volumes[number].source})",
                )
            else:
                host.volumes[number] = volume
        elif token.is_word("disk") and cur.peek().is_punct("{"):
            raise _Syntax(
                token,
                "a disk options section belongs in the resource, or in a `volume N { }` here",
            )
        elif token.is_word("nbd-address"):
            address = self._nbd_address(cur, token)
            if host.nbd is not None:
                raise _Syntax(token, f"a second nbd-address (the first is at {host.nbd[1]})")
            host.nbd = (address, here)
        elif token.is_word("device", "disk", "meta-disk", "flexible-meta-disk"):
            if host.implicit is None:
                host.implicit = RawVolume(None, here)
            self._volume_field(cur, token, host.implicit, where, stacked=host.stacked_on)
        elif token.is_word("proxy"):
            raise _Syntax(token, "DRBD Proxy sections are not supported by hastack")
        elif token.is_word(*DRBD9_ONLY):
            raise _Syntax(token, _drbd9(token.text))
        else:
            allowed = (
                "address",
                "volume",
                "device",
                "disk",
                "meta-disk",
                "nbd-address",
                "skip",
            )
            raise _Syntax(token, _unknown(token, allowed))

    def _volume(
        self, cur: _Cursor, keyword: Token, where: str, stacked: str | None = None
    ) -> tuple[int, RawVolume]:
        number_token = cur.next()
        if not (number_token.is_word() and number_token.text.isdigit()) or not (
            0 <= int(number_token.text) <= MAX_VOLUME
        ):
            raise _Syntax(
                number_token,
                f"expected a volume number from 0 to {MAX_VOLUME}, got {_bad_show(number_token)}",
            )
        number = int(number_token.text)
        volume = RawVolume(number, cur.at(keyword))
        opened = cur.expect_punct("{", f"after volume {number}")
        context = f"{where}, volume {number}"
        self._body(
            cur, opened, context, lambda c: self._volume_statement(c, volume, context, stacked)
        )
        return number, volume

    def _volume_statement(
        self, cur: _Cursor, volume: RawVolume, where: str, stacked: str | None
    ) -> None:
        token = cur.next()
        if token.is_word("skip"):
            _skip(cur, token)
        elif token.is_word("disk") and cur.peek().is_punct("{"):
            self._section(cur, token, volume.options, where)
        elif token.is_word("device", "disk", "meta-disk", "flexible-meta-disk", "nbd-address"):
            self._volume_field(cur, token, volume, where, stacked=stacked)
        else:
            allowed = ("device", "disk", "meta-disk", "nbd-address", "skip")
            raise _Syntax(token, _unknown(token, allowed))

    def _volume_field(
        self, cur: _Cursor, token: Token, volume: RawVolume, where: str, stacked: str | None = None
    ) -> None:
        here = cur.at(token)
        name = token.text
        if stacked is not None and name in ("disk", "meta-disk", "flexible-meta-disk"):
            cur.values_until_semicolon(token)
            raise _Syntax(
                token,
                f"a stacked-on-top-of section takes no {name}: it sits on the device of "
                f"resource {stacked}, with internal meta-data",
            )
        attr = {"flexible-meta-disk": "meta", "meta-disk": "meta", "nbd-address": "nbd"}.get(
            name, name
        )
        if name == "nbd-address":
            value: Any = (self._nbd_address(cur, token), here)
        else:
            values = cur.values_until_semicolon(token)
            try:
                if name == "device":
                    path, minor = _device(values)
                    value = (path, minor, here)
                elif name == "disk":
                    value = (_disk(values), here)
                else:
                    value = (_meta_disk(values, flexible=name == "flexible-meta-disk"), here)
            except BadValue as exc:
                self.error(here, f"{where}: {name}: {exc}")
                return
            if name == "flexible-meta-disk":
                self.warn(here, f"{where}: flexible-meta-disk: an 8.3 spelling, read as meta-disk")
        old = getattr(volume, attr)
        if old is not None:
            shown = "meta-disk" if attr == "meta" else name
            self.error(here, f"{where}: a second {shown} (the first is at {old[-1]})")
            return
        setattr(volume, attr, value)

    def _nbd_address(self, cur: _Cursor, token: Token) -> Address:
        address = self._address(cur, "nbd-address")
        cur.expect_punct(";", "after the address")
        if address.family not in ("ipv4", "ipv6"):
            raise _Syntax(token, "nbd-address takes an ipv4 or ipv6 address")
        return address

    def _address(self, cur: _Cursor, what: str) -> Address:
        """[AF] ADDR:PORT, with IPv6 in brackets; the `;` or `{` after it is left."""
        token = cur.next()
        family: AddressFamily = "ipv4"
        if token.is_word("ipv4", "ipv6", "ssocks", "sdp", "sci"):
            family = "ssocks" if token.text == "sci" else token.text  # type: ignore[assignment]
            token = cur.next()
        if family == "ipv6":
            if not token.is_punct("["):
                raise _Syntax(
                    token, f"an IPv6 address goes in brackets: {what} ipv6 [fd00::1]:7789"
                )
            parts: list[str] = []
            while not cur.peek().is_punct("]"):
                part = cur.peek()
                if part.kind in ("eof", "string") or (part.kind == "punct" and part.text in ";{}"):
                    raise _Syntax(part, f"expected ']' to end the IPv6 address, got {part.show()}")
                parts.append(cur.next().text)
            cur.next()
            host = "".join(parts)
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise _Syntax(token, f"'{host}' is not an IPv6 address") from None
        else:
            if token.is_punct("["):
                raise _Syntax(
                    token, f"an IPv6 address needs the ipv6 keyword: {what} ipv6 [...]:PORT"
                )
            host = token.text
            try:
                if token.kind != "word":
                    raise ValueError
                ipaddress.IPv4Address(host)
            except ValueError:
                raise _Syntax(
                    token,
                    f"expected an IPv4 address (drbd.conf takes literal addresses, like "
                    f"10.0.0.1:7789; IPv6 as ipv6 [fd00::1]:7789), got {_bad_show(token)}",
                ) from None
        cur.expect_punct(":", f"and a port after {host}")
        port_token = cur.next()
        if not (port_token.is_word() and port_token.text.isdigit()) or not (
            1 <= int(port_token.text) <= 65535
        ):
            raise _Syntax(
                port_token, f"expected a port from 1 to 65535, got {_bad_show(port_token)}"
            )
        return Address(family, host, int(port_token.text))


def _recover(cur: _Cursor) -> None:
    """Skip the rest of a statement that failed: to its `;`, or past its `{...}` block; stop
    before a `}` that closes the enclosing section."""
    depth = 0
    while True:
        token = cur.peek()
        if token.kind == "eof":
            return
        if token.is_punct("}"):
            if depth == 0:
                return
            depth -= 1
            cur.next()
            if depth == 0:
                return
            continue
        cur.next()
        if token.is_punct("{"):
            depth += 1
        elif token.is_punct(";") and depth == 0:
            return


def _skip(cur: _Cursor, keyword: Token) -> None:
    """`skip [anything] { balanced }`: drbd.conf's block comment."""
    while True:
        token = cur.next()
        if token.is_punct("{"):
            break
        if token.kind == "eof" or token.is_punct("}") or token.is_punct(";"):
            raise _Syntax(token, f"expected '{{' after skip, got {token.show()}")
    depth = 1
    while depth:
        token = cur.next()
        if token.kind == "eof":
            raise _Syntax(
                token, f"missing '}}' to close the skip block opened at line {keyword.line}"
            )
        if token.kind == "bad" and token.error.startswith("a quoted string without"):
            raise _Syntax(token, token.error)
        if token.is_punct("{"):
            depth += 1
        elif token.is_punct("}"):
            depth -= 1


def _unknown(token: Token, allowed: Iterable[str], what: str = "keyword") -> str:
    allowed = list(dict.fromkeys(allowed))
    if token.kind == "bad":
        return f"{token.show()}: {token.error}"
    if token.kind != "word":
        return f"expected a {what} ({', '.join(allowed)}), got {token.show()}"
    close = difflib.get_close_matches(token.text, allowed, n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown {what} '{token.text}'{hint} (allowed: {', '.join(allowed)})"


def _drbd9(name: str) -> str:
    hint = DRBD9_ONLY.get(name, "")
    return f"{name} is DRBD 9 only, not supported (hastack reads DRBD 8.4's drbd.conf)" + (
        f": {hint}" if hint else ""
    )


def _device(values: list[Token]) -> tuple[str, int]:
    """`device /dev/drbdN`, `device minor N`, `device /dev/drbd_NAME minor N`."""
    path: str | None = None
    minor: int | None = None
    rest = list(values)
    if rest and not rest[0].is_word("minor"):
        path = rest.pop(0).text
        if not path.startswith("/dev/"):
            path = "/dev/" + path  # drbdadm: "/dev/ is optional"
    if rest:
        if not rest[0].is_word("minor") or len(rest) != 2:
            raise BadValue(
                "write `device /dev/drbdN;`, `device minor N;` or `device NAME minor N;`"
            )
        text = rest[1].text
        if not re.fullmatch(r"[0-9]{1,8}", text) or int(text) > MAX_MINOR:
            raise BadValue(f"the minor '{text}' is not a number from 0 to {MAX_MINOR}")
        minor = int(text)
    if path is None:
        if minor is None:
            raise BadValue("needs a device name, a minor, or both")
        return f"/dev/drbd{minor}", minor
    match = _DEVICE_MINOR.fullmatch(path)
    if match is not None:
        named = int(match[1])
        if named > MAX_MINOR:
            raise BadValue(f"the minor {named} is above {MAX_MINOR}")
        if minor is not None and minor != named:
            raise BadValue(
                f"{path} and minor {minor} disagree: write `device /dev/drbd{minor} minor "
                f"{minor};`, or leave off the name or the minor"
            )
        return path, named
    if not path.startswith("/dev/drbd_") or len(path) == len("/dev/drbd_"):
        raise BadValue(
            f"'{path}' is neither /dev/drbdN nor /dev/drbd_NAME (other names must start with "
            "/dev/drbd_ and give `minor N`)"
        )
    if minor is None:
        raise BadValue(f"{path} needs its minor: `device {path} minor N;`")
    return path, minor


def _disk(values: list[Token]) -> str | None:
    if len(values) != 1:
        raise BadValue("takes one backing device (`disk /dev/sdb1;`) or `disk none;`")
    if values[0].is_word("none"):
        return None
    path = values[0].text
    if not path.startswith("/"):
        raise BadValue(f"'{path}' is not an absolute path (nor `none`, for a diskless volume)")
    return path


def _meta_disk(values: list[Token], *, flexible: bool) -> MetaDisk:
    usage = "write `meta-disk internal;`, `meta-disk DEVICE;` or `meta-disk DEVICE [INDEX];`"
    if values and values[0].is_word("internal"):
        if len(values) > 1:
            raise BadValue("internal takes no index (an index goes with a meta-data device)")
        return MetaDisk()
    if not values or not values[0].is_value:
        raise BadValue(usage)
    path = values[0].text
    if not path.startswith("/"):
        raise BadValue(f"'{path}' is not an absolute path, nor `internal`")
    if len(values) == 1:
        return MetaDisk(path)
    if flexible:
        raise BadValue("flexible-meta-disk takes no index")
    if (
        len(values) == 4
        and values[1].is_punct("[")
        and values[2].is_word()
        and values[2].text.isdigit()
        and values[3].is_punct("]")
    ):
        return MetaDisk(path, int(values[2].text))
    raise BadValue(usage)
