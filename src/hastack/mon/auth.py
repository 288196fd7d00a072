"""Who may talk to the mon server and what they may do, as mon 1.3 decides it.

Three pieces, each read the way mon reads it:

- auth.cf (mon's load_auth): a `command section` of `command: user[,user...]` lines, where a
  user is a login name, `all` (anyone, logged in or not), `AUTH_ANY` (anyone logged in) or
  `!name` / `!AUTH_ANY` (denied, checked first); and a `trap section` of
  `host user crypt-password` lines saying who may send traps (`*` for any host or any user).
  A command not listed is refused to everyone.
- the login check (mon's auth): the `authtype` list is tried in order. hastack supports
  `getpwnam` (the system password; the shadow one when the server may read it, as Perl's
  getpwnam gives it to root), `userfile` (monusers.cf: `user : crypt-hash` lines) and
  `trustlocal` (any user name from 127.0.0.1, no password). mon 1.3's `shadow` type has an
  empty body and never accepts a login; hastack keeps that and warns. `pam` is not supported:
  `check_authtypes` refuses it with a clear message.
- clientallow (mon's client_accept): space-separated regular expressions, each matched against
  the whole dotted-quad client address after mon's rewrite of bare `.` into `\\.`.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import socket
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

from hastack.mon.model import MonConfig

# The stdlib crypt module is the libc crypt(3) mon's Perl `crypt` calls, so every hash style
# the system knows (DES, MD5, SHA-256/512, bcrypt, yescrypt) verifies exactly as under mon.
# It is deprecated in 3.11 and gone in 3.13: silence the warning here only, and fall back to
# libcrypt through ctypes where the module no longer exists.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import crypt as _crypt_module
    except ImportError:  # pragma: no cover - Python >= 3.13
        _crypt_module = None  # type: ignore[assignment]

SUPPORTED_AUTHTYPES = ("getpwnam", "userfile", "trustlocal")
# mon's own command names (its client_command); auth.cf may name others, which match nothing.
MON_COMMANDS = frozenset(
    [
        "ack",
        "checkauth",
        "clear",
        "disable",
        "dump",
        "enable",
        "get",
        "getview",
        "list",
        "loadstate",
        "login",
        "protid",
        "quit",
        "reload",
        "reset",
        "savestate",
        "servertime",
        "set",
        "setview",
        "start",
        "stop",
        "term",
        "test",
        "version",
    ]
)
ANYONE = "all"
ANY_USER = "AUTH_ANY"
_LOCAL_ADDRESSES = frozenset({"127.0.0.1", "::1"})


class AuthConfigError(ValueError):
    """An auth.cf, userfile, authtype or clientallow that cannot be used; str() names the file
    and line (or the option) and what is allowed."""


@dataclass(frozen=True)
class AuthTable:
    """auth.cf, read. `allow`/`deny` map a lower-case command name to user names (including
    `all` and `AUTH_ANY`); `traps` maps a host (`*` or a dotted quad) to user -> crypt hash."""

    source: str
    allow: Mapping[str, frozenset[str]] = field(default_factory=dict)
    deny: Mapping[str, frozenset[str]] = field(default_factory=dict)
    traps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # "FILE:LINE: text"

    def allowed(self, command: str, user: str | None) -> bool:
        """mon's check_auth: may `user` (None: not logged in) run `command`?"""
        if user is not None:
            denied = self.deny.get(command, frozenset())
            if user in denied or ANY_USER in denied:
                return False
        allowed = self.allow.get(command, frozenset())
        if ANYONE in allowed:
            return True
        return user is not None and (ANY_USER in allowed or user in allowed)

    def trap_allowed(self, peer: str, user: str, password: str) -> bool:
        """mon's handle_trap authentication: a `*` host entry, when present, is the only one
        consulted; a `*` user under the host needs no name or password."""
        host = "*" if "*" in self.traps else _plain_ipv4(peer)
        users = self.traps.get(host)
        if users is None:
            return False
        if "*" in users:
            return True
        hashed = users.get(user)
        return hashed is not None and crypt_matches(password, hashed)


def parse_auth(
    text: str, source: str, resolve: Callable[[str], str] = socket.gethostbyname
) -> AuthTable:
    """Read auth.cf text. `resolve` turns a trap-section host name into an address (mon
    resolves them when it loads the file); a name that does not resolve is skipped with a
    warning, as mon skips it, so that a DNS outage does not stop the server from starting."""
    allow: dict[str, set[str]] = {}
    deny: dict[str, set[str]] = {}
    traps: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    section = "command"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{number}"
        # mon matches the section headers as prefixes
        if re.match(r"command\s+section", line):
            section = "command"
            continue
        if re.match(r"trap\s+section", line):
            section = "trap"
            continue
        if section == "command":
            command, sep, users = line.partition(":")
            command = command.strip().lower()
            if not sep or not command:
                raise AuthConfigError(
                    f"{where}: expected `command: user[,user...]` (users: names, all, "
                    f"AUTH_ANY, !name), got {line!r}"
                )
            if command not in MON_COMMANDS:
                notes.append(f"{where}: {command!r} is not a mon command; the line grants nothing")
            for user in re.split(r"\s*,\s*", users.strip()):
                if user.startswith("!") and len(user) > 1:
                    deny.setdefault(command, set()).add(user[1:])
                elif user:
                    allow.setdefault(command, set()).add(user)
        else:
            fields = line.split()
            if len(fields) != 3:
                raise AuthConfigError(
                    f"{where}: a trap section line is `host user password` (host: * or an "
                    f"address or name; user: * or a name; password: a crypt hash), got {line!r}"
                )
            host, user, hashed = fields
            if host != "*":
                resolved = _trap_host(host, resolve)
                if resolved is None:
                    notes.append(
                        f"{where}: trap host {host!r} is not an address or does not resolve; "
                        "entry skipped"
                    )
                    continue
                host = resolved
            traps.setdefault(host, {})[user] = hashed
    return AuthTable(
        source=source,
        allow=MappingProxyType({k: frozenset(v) for k, v in allow.items()}),
        deny=MappingProxyType({k: frozenset(v) for k, v in deny.items()}),
        traps=MappingProxyType({k: MappingProxyType(v) for k, v in traps.items()}),
        warnings=tuple(notes),
    )


def load_auth(path: str, resolve: Callable[[str], str] = socket.gethostbyname) -> AuthTable:
    """Read an auth.cf file; AuthConfigError (naming the file) when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
    except OSError as err:
        raise AuthConfigError(
            f"{path}: cannot read the auth file ({err.strerror}); mon refuses every command "
            "without one"
        ) from err
    return parse_auth(text, path, resolve)


def _trap_host(host: str, resolve: Callable[[str], str]) -> str | None:
    if re.fullmatch(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}", host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            return None
    if not re.fullmatch(r"[A-Za-z\d][A-Za-z.\d-]*", host):
        return None
    try:
        return resolve(host)
    except (OSError, UnicodeError):
        return None


# --- clientallow -------------------------------------------------------------------------


def _plain_ipv4(peer: str) -> str:
    """An IPv4-mapped IPv6 peer (::ffff:a.b.c.d, from a dual-stack socket) as a dotted quad."""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return peer


@lru_cache(maxsize=64)
def _compile_pattern(pattern: str) -> re.Pattern[str]:
    # mon escapes every `.` not preceded by `[` or `\`, so `10.0.0.1` means literal dots
    return re.compile(re.sub(r"([^[\\])\.", r"\1\\.", pattern))


def check_clientallow(patterns: str, where: str = "clientallow") -> None:
    """Raise AuthConfigError when a clientallow pattern is not a valid regular expression."""
    for pattern in patterns.split():
        try:
            _compile_pattern(pattern)
        except re.error as err:
            raise AuthConfigError(
                f"{where}: clientallow pattern {pattern!r} is not a valid regular expression "
                f"({err}); write space-separated expressions over addresses like 10.0.0.*"
            ) from err


def client_allowed(patterns: str, peer: str) -> bool:
    """May a client at `peer` connect? Each pattern must match the whole address; an invalid
    pattern matches nothing (check_clientallow reports it when the configuration loads)."""
    address = _plain_ipv4(peer)
    for pattern in patterns.split():
        try:
            if _compile_pattern(pattern).fullmatch(address):
                return True
        except re.error:
            continue
    return False


# --- logins ------------------------------------------------------------------------------


def check_authtypes(authtypes: Sequence[str], where: str = "authtype") -> list[str]:
    """Refuse authtypes hastack cannot honour; return warnings for ones that never accept."""
    notes = []
    for authtype in authtypes:
        if authtype in SUPPORTED_AUTHTYPES:
            continue
        if authtype == "shadow":
            notes.append(
                f"{where}: authtype shadow never accepts a login (mon 1.3 does not implement "
                "it); getpwnam already reads the shadow password when the server runs as root"
            )
            continue
        if authtype == "pam":
            raise AuthConfigError(
                f"{where}: authtype pam is not supported by hastack; use "
                f"{', '.join(SUPPORTED_AUTHTYPES)}"
            )
        raise AuthConfigError(
            f"{where}: unknown authtype {authtype!r}; allowed: "
            f"{', '.join((*SUPPORTED_AUTHTYPES, 'shadow'))}"
        )
    return notes


def crypt_matches(password: str, hashed: str) -> bool:
    """crypt(password, hashed) == hashed, as mon checks passwords, in constant time."""
    if not hashed:
        return False
    try:
        computed = _crypt(password, hashed)
    except (ValueError, OSError, UnicodeError):  # NUL bytes, a setting libc rejects
        return False
    return computed is not None and hmac.compare_digest(
        computed.encode("utf-8", "surrogateescape"), hashed.encode("utf-8", "surrogateescape")
    )


def _crypt(password: str, setting: str) -> str | None:
    if _crypt_module is not None:
        return _crypt_module.crypt(password, setting)
    return _libcrypt(password, setting)  # pragma: no cover - Python >= 3.13


def _libcrypt(password: str, setting: str) -> str | None:  # pragma: no cover
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("crypt")
    if name is None:
        return None
    library = ctypes.CDLL(name)
    library.crypt.restype = ctypes.c_char_p
    library.crypt.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    result = library.crypt(password.encode(), setting.encode())
    return None if result is None else result.decode("utf-8", "surrogateescape")


def system_password_hash(user: str) -> str | None:
    """The user's crypt hash as Perl's getpwnam returns it: the passwd field, or the shadow
    one when the passwd field is a placeholder and the shadow file is readable (root)."""
    import pwd

    try:
        hashed = pwd.getpwnam(user).pw_passwd
    except (KeyError, ValueError):
        return None
    if hashed in ("x", "*", "!"):
        with warnings.catch_warnings():  # spwd: deprecated like crypt, same reason to keep it
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                import spwd

                hashed = spwd.getspnam(user).sp_pwdp
            except (ImportError, KeyError, PermissionError, OSError):
                return None
    return hashed


def read_userfile(path: str) -> dict[str, str]:
    """monusers.cf: `user : hash` lines; # comments and blank lines skipped. Missing file: {}."""
    users: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return users
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = re.split(r"\s*:\s*", line.strip(), maxsplit=1)
        if len(parts) == 2:  # mon: a line without `:` names a user with no password
            users[parts[0]] = parts[1]
    return users


def userfile_path(cfg: MonConfig) -> str:
    return os.path.join(cfg.cfbasedir, cfg.userfile)  # an absolute userfile stays as is


def verify_user(
    cfg: MonConfig,
    user: str,
    password: str,
    peer: str,
    *,
    system_hash: Callable[[str], str | None] = system_password_hash,
) -> bool:
    """mon's login check: try each of cfg.authtype in order; True at the first that accepts.
    Never raises: an unsupported type simply does not accept (check_authtypes refuses them when
    the configuration is loaded)."""
    if not user:
        return False
    for authtype in cfg.authtype:
        if authtype == "trustlocal":
            if _plain_ipv4(peer) in _LOCAL_ADDRESSES:
                return True
            continue
        if not password:
            continue
        if authtype == "getpwnam":
            hashed = system_hash(user)
            if hashed is not None and crypt_matches(password, hashed):
                return True
        elif authtype == "userfile":
            hashed = read_userfile(userfile_path(cfg)).get(user)
            if hashed is not None and crypt_matches(password, hashed):
                return True
    return False


@dataclass
class Authenticator:
    """What a client session asks about permissions: the current auth table (replace `table`
    on `reload auth`; every session sees the new one) and the login check for `cfg`."""

    table: AuthTable
    cfg: MonConfig

    def allowed(self, command: str, user: str | None) -> bool:
        return self.table.allowed(command, user)

    def login(self, user: str, password: str, peer: str) -> bool:
        return verify_user(self.cfg, user, password, peer)
