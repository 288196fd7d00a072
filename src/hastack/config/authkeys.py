"""authkeys, read as heartbeat 3 reads it, plus hastack's `sha256` (HMAC-SHA256).

    auth 1              # the key used to sign what this node sends
    1 sha256 KEY        # every key listed is accepted on receive
    2 sha1 OLDKEY
    3 crc               # authenticates nothing (a warning says so)

As in heartbeat: a line whose first non-blank character is `#` is a comment (a `#` inside a
key is part of the key), indexes are 0..15 (heartbeat's MAXAUTH is 16), a key is one word,
crc takes no key and the others require one. hastack is stricter where heartbeat would
silently do something else: a second `auth` line or a second definition of an index is an
error (heartbeat keeps the last one), and so is a key with blanks in it (heartbeat would use
only its first word).

The file must not be readable or writable by group or other: hastack refuses it and says how
to fix it (heartbeat refuses group/other-readable files too).
"""

from __future__ import annotations

import os
import re
import stat

from hastack.config.errors import ConfigError, ConfigProblem
from hastack.config.hacf import read_text_file
from hastack.config.model import AuthKey, AuthKeys, AuthMethod, ConfigWarning, Source

METHODS: tuple[AuthMethod, ...] = ("crc", "md5", "sha1", "sha256")
MAX_INDEX = 15
MIN_KEY_LENGTH = 16  # shorter keys get a warning; `hastack config init` writes 64 hex digits
_BLANKS = re.compile(r"[ \t\f\v]+")


def _words(line: str) -> list[str]:
    return [w for w in _BLANKS.split(line.strip(" \t\f\v")) if w]


def _drop_comment(words: list[str], keep: int) -> list[str]:
    """Words after the first `keep` that start a `#` comment are dropped (heartbeat reads
    only the words it needs; hastack accepts trailing comments and refuses other extras)."""
    for i in range(keep, len(words)):
        if words[i].startswith("#"):
            return words[:i]
    return words


def _index(token: str) -> int | None:
    if re.fullmatch(r"[0-9]{1,3}", token) and int(token) <= MAX_INDEX:
        return int(token)
    return None


def _key_line(
    words: list[str],
    index: int | None,
    source: Source,
    keys: dict[int, AuthKey],
    problems: list[ConfigProblem],
    warnings: list[ConfigWarning],
) -> None:
    """One `N METHOD [KEY]` line into `keys`, or a problem."""

    def bad(message: str) -> None:
        problems.append(ConfigProblem(source, message))

    if index is None:
        bad(
            f"{words[0][:20]!r} is neither 'auth N' nor a key line 'N METHOD [KEY]' "
            f"with N from 0 to {MAX_INDEX}"
        )
        return
    if len(words) < 2:
        bad(
            f"key {index}: no method: write '{index} METHOD [KEY]' with METHOD one of "
            f"{', '.join(METHODS)}"
        )
        return
    method = words[1]
    # the word after the method is the key even when it starts with '#', as in heartbeat
    words = _drop_comment(words, 2 if method == "crc" else 3)
    key_words = words[2:]
    if method not in METHODS:
        bad(f"key {index}: method {method[:20]!r} is not one of {', '.join(METHODS)}")
    elif method == "crc" and key_words:
        bad(f"key {index}: crc takes no key")
    elif method != "crc" and not key_words:
        bad(f"key {index}: {method} requires a key")
    elif len(key_words) > 1:
        bad(
            f"key {index}: the key must be one word without blanks (heartbeat would use only "
            "its first word)"
        )
    elif index in keys:
        bad(f"key {index}: defined twice (first at {keys[index].source})")
    else:
        key = key_words[0].encode("utf-8", "surrogatepass") if key_words else b""
        keys[index] = AuthKey(index, method, key, source)  # type: ignore[arg-type]
        if method == "crc":
            warnings.append(
                ConfigWarning(
                    source,
                    f"key {index}: crc authenticates nothing: anyone who can send to the "
                    "cluster's links can forge its messages; use sha256 with a random key",
                )
            )
        elif len(key) < MIN_KEY_LENGTH:
            warnings.append(
                ConfigWarning(
                    source,
                    f"key {index}: only {len(key)} bytes long; use at least {MIN_KEY_LENGTH} "
                    "random characters (hastack config init writes 64 hex digits)",
                )
            )


def read_authkeys(
    text: str, file: str
) -> tuple[AuthKeys | None, list[ConfigProblem], list[ConfigWarning]]:
    """Parse without raising: (the AuthKeys or None, every problem, every warning).

    Messages never quote a key."""
    problems: list[ConfigProblem] = []
    warnings: list[ConfigWarning] = []
    keys: dict[int, AuthKey] = {}
    active: tuple[int, Source] | None = None
    bad_auth_line = False
    bad_keys: set[int | None] = set()  # indexes of key lines with a problem (None: unreadable)
    for number, raw in enumerate(text.split("\n"), start=1):
        source = Source(file, number)
        stripped = raw.split("\r", 1)[0].lstrip(" \t\f\v")
        if not stripped or stripped.startswith("#"):
            continue
        words = _words(stripped)
        if words[0] == "auth":
            words = _drop_comment(words, 1)
            if len(words) != 2 or _index(words[1]) is None:
                problems.append(
                    ConfigProblem(
                        source, f"auth: write 'auth N' with N a key index from 0 to {MAX_INDEX}"
                    )
                )
                bad_auth_line = True
            elif active is not None:
                problems.append(
                    ConfigProblem(source, f"auth: given twice (first at {active[1]}); keep one")
                )
            else:
                active = (int(words[1]), source)
            continue
        index = _index(words[0])
        before = len(problems)
        _key_line(words, index, source, keys, problems, warnings)
        if len(problems) > before:
            bad_keys.add(index)
    if active is None and not bad_auth_line:
        problems.append(
            ConfigProblem(
                None,
                f"{file}: no 'auth N' line: add one naming the key this node signs with "
                "(like 'auth 1')",
            )
        )
    elif active is not None and active[0] not in keys and not bad_keys & {active[0], None}:
        defined = ", ".join(str(i) for i in sorted(keys)) or "none"
        problems.append(
            ConfigProblem(active[1], f"auth: key {active[0]} is not defined (defined: {defined})")
        )
    problems.sort(key=lambda p: (p.source is None, p.source.line if p.source else 0))
    if problems or active is None:
        return None, problems, warnings
    return AuthKeys(active[0], keys, file, tuple(warnings)), problems, warnings


def parse_authkeys(text: str, file: str) -> AuthKeys:
    """authkeys text -> AuthKeys (warnings in .warnings); raises one ConfigError with every
    problem."""
    authkeys, problems, _ = read_authkeys(text, file)
    if problems or authkeys is None:
        raise ConfigError(problems or [ConfigProblem(None, f"{file}: not usable")])
    return authkeys


def mode_problem(path: str, mode: int) -> ConfigProblem | None:
    """The problem with a key file's permissions, or None when it is private to its owner."""
    if not stat.S_ISREG(mode):
        return ConfigProblem(None, f"{path}: not a regular file")
    if mode & 0o077:
        return ConfigProblem(
            None,
            f"{path}: mode {stat.S_IMODE(mode):04o} lets other users read or change the "
            f"cluster key; hastack refuses it. Fix: chmod 600 {path}",
        )
    return None


def read_authkeys_file(
    path: str,
) -> tuple[AuthKeys | None, list[ConfigProblem], list[ConfigWarning]]:
    """Check the mode, then parse; every problem of both is returned."""
    problems: list[ConfigProblem] = []
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return None, [ConfigProblem(None, f"{path}: cannot read: {exc.strerror or exc}")], []
    bad_mode = mode_problem(path, mode)
    if bad_mode is not None:
        problems.append(bad_mode)
        if not stat.S_ISREG(mode):
            return None, problems, []
    text, problem = read_text_file(path)
    if text is None:
        assert problem is not None
        return None, [*problems, problem], []
    authkeys, more, warnings = read_authkeys(text, path)
    problems.extend(more)
    return (None if problems else authkeys), problems, warnings


def load_authkeys(path: str) -> AuthKeys:
    authkeys, problems, _ = read_authkeys_file(path)
    if problems or authkeys is None:
        raise ConfigError(problems or [ConfigProblem(None, f"{path}: not usable")])
    return authkeys
