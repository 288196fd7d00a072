"""authkeys: methods, indexes, every error path, the mode check, Debian's sample."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from hastack.config.authkeys import load_authkeys, parse_authkeys, read_authkeys
from hastack.config.errors import ConfigError
from hastack.config.model import Source

SAMPLE_AUTHKEYS = "/usr/share/doc/heartbeat/authkeys"
KEY = "0123456789abcdef0123456789abcdef"


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_authkeys(text, "authkeys")
    return [str(p) for p in info.value.problems]


def test_every_method_and_the_active_key() -> None:
    text = f"# keys\n\nauth 2\n1 crc\n2 sha256 {KEY}\n3 sha1 {KEY}\n15 md5 {KEY}\n0 sha256 {KEY}\n"
    keys = parse_authkeys(text, "authkeys")
    assert keys.active == 2
    assert keys.signing.method == "sha256"
    assert keys.signing.key == KEY.encode()
    assert keys.signing.source == Source("authkeys", 5)
    assert {i: k.method for i, k in keys.keys.items()} == {
        1: "crc",
        2: "sha256",
        3: "sha1",
        15: "md5",
        0: "sha256",
    }
    assert keys.keys[1].key == b""
    assert keys.source_file == "authkeys"


def test_key_is_utf8_bytes_and_may_contain_hash() -> None:
    keys = parse_authkeys("auth 1\n1 sha256 schlüssel#0123456789\n", "authkeys")
    assert keys.signing.key == "schlüssel#0123456789".encode()


def test_trailing_comments_and_blanks_and_crlf() -> None:
    keys = parse_authkeys(
        f"  auth 1   # sign with 1\r\n\t1 sha256 {KEY}  # the key\r\n", "authkeys"
    )
    assert keys.signing.key == KEY.encode()


def test_crc_is_accepted_with_a_warning() -> None:
    keys = parse_authkeys("auth 1\n1 crc\n", "authkeys")
    (warning,) = keys.warnings
    assert str(warning).startswith("authkeys:2: warning: key 1: crc authenticates nothing")


def test_short_key_warns() -> None:
    keys = parse_authkeys("auth 1\n1 sha1 HI!\n", "authkeys")
    assert [str(w) for w in keys.warnings] == [
        "authkeys:2: warning: key 1: only 3 bytes long; use at least 16 random characters "
        "(hastack config init writes 64 hex digits)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"auth 1\n1 sha512 {KEY}\n",
            "authkeys:2: key 1: method 'sha512' is not one of crc, md5, sha1, sha256",
        ),
        ("auth 1\n1 sha256\n", "authkeys:2: key 1: sha256 requires a key"),
        (f"auth 1\n1 crc {KEY}\n", "authkeys:2: key 1: crc takes no key"),
        (
            "auth 1\n1 sha256 two words\n",
            "authkeys:2: key 1: the key must be one word without blanks",
        ),
        (
            f"auth 1\n16 sha256 {KEY}\n",
            "authkeys:2: '16' is neither 'auth N' nor a key line 'N METHOD [KEY]' with N "
            "from 0 to 15",
        ),
        ("auth 1\n1\n", "authkeys:2: key 1: no method"),
        (
            f"auth one\n1 sha256 {KEY}\n",
            "authkeys:1: auth: write 'auth N' with N a key index from 0 to 15",
        ),
        (
            f"auth 1\n1 sha256 {KEY}\nauth 1\n",
            "authkeys:3: auth: given twice (first at authkeys:1); keep one",
        ),
        (
            f"auth 3\n1 sha256 {KEY}\n2 md5 {KEY}\n",
            "authkeys:1: auth: key 3 is not defined (defined: 1, 2)",
        ),
        (
            f"1 sha256 {KEY}\n",
            "authkeys: no 'auth N' line: add one naming the key this node signs with",
        ),
        (
            f"auth 1\n1 sha256 {KEY}\n1 sha1 {KEY}\n",
            "authkeys:3: key 1: defined twice (first at authkeys:2)",
        ),
    ],
)
def test_errors_name_file_line_and_what_is_allowed(text: str, expected: str) -> None:
    found = errors(text)
    assert len(found) == 1, found
    assert found[0].startswith(expected)


def test_all_errors_are_collected_and_keys_never_quoted() -> None:
    secret = "verysecretkeymaterial"
    found = errors(f"auth 16\n1 sha512 {secret}\n2 sha256 {secret} {secret}\nbogus\n")
    assert [m.split(":")[1] for m in found] == ["1", "2", "3", "4"]
    assert not any(secret in m for m in found)


def test_read_authkeys_returns_problems_without_raising() -> None:
    keys, problems, warnings = read_authkeys("auth 1\n1 crc\n2 md5\n", "authkeys")
    assert keys is None
    assert [str(p) for p in problems] == ["authkeys:3: key 2: md5 requires a key"]
    assert len(warnings) == 1


def _write(path: Path, text: str, mode: int) -> str:
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


def test_load_authkeys_accepts_mode_0600_and_0400(tmp_path: Path) -> None:
    path = _write(tmp_path / "authkeys", f"auth 1\n1 sha256 {KEY}\n", 0o600)
    assert load_authkeys(path).signing.key == KEY.encode()
    os.chmod(path, 0o400)
    assert load_authkeys(path).active == 1


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o601, 0o610, 0o777])
def test_load_authkeys_refuses_group_or_other_bits_and_says_how_to_fix(
    tmp_path: Path, mode: int
) -> None:
    path = _write(tmp_path / "authkeys", f"auth 1\n1 sha256 {KEY}\n", mode)
    with pytest.raises(ConfigError) as info:
        load_authkeys(path)
    (problem,) = info.value.problems
    assert str(problem) == (
        f"{path}: mode {mode:04o} lets other users read or change the cluster key; hastack "
        f"refuses it. Fix: chmod 600 {path}"
    )


def test_bad_mode_and_bad_content_are_reported_together(tmp_path: Path) -> None:
    path = _write(tmp_path / "authkeys", "auth 2\n1 crc\n", 0o644)
    with pytest.raises(ConfigError) as info:
        load_authkeys(path)
    messages = [str(p) for p in info.value.problems]
    assert messages[0].endswith(f"Fix: chmod 600 {path}")
    assert messages[1] == f"{path}:1: auth: key 2 is not defined (defined: 1)"


def test_missing_and_non_regular_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: No such file or directory"):
        load_authkeys(str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="not a regular file"):
        load_authkeys(str(tmp_path))


def _sample() -> str:
    if not os.path.exists(SAMPLE_AUTHKEYS):
        pytest.skip(f"{SAMPLE_AUTHKEYS} is absent: install Debian's heartbeat package to run this")
    with open(SAMPLE_AUTHKEYS, encoding="utf-8") as f:
        return f.read()


def test_debian_sample_as_shipped_has_no_auth_line() -> None:
    # Everything in the shipped sample is commented out, so heartbeat too would refuse it.
    keys, problems, warnings = read_authkeys(_sample(), "authkeys")
    assert keys is None and warnings == []
    assert [p.message for p in problems] == [
        "authkeys: no 'auth N' line: add one naming the key this node signs with (like 'auth 1')"
    ]


def test_debian_sample_uncommented() -> None:
    text = re.sub(r"(?m)^#(auth |\d )", r"\1", _sample())
    keys = parse_authkeys(text, "authkeys")
    assert keys.active == 1 and keys.signing.method == "crc"
    assert keys.keys[2].method == "sha1" and keys.keys[2].key == b"HI!"
    assert keys.keys[3].method == "md5" and keys.keys[3].key == b"Hello!"
    assert [w.message.split(":")[0] for w in keys.warnings] == ["key 1", "key 2", "key 3"]
    assert "crc authenticates nothing" in keys.warnings[0].message


def test_auth_naming_an_unreadable_key_line_is_not_reported_twice() -> None:
    assert errors("auth 1\n1 sha512 x\n") == [
        "authkeys:2: key 1: method 'sha512' is not one of crc, md5, sha1, sha256"
    ]
    assert errors(f"auth 2\n1 sha256 {KEY}\n") == [
        "authkeys:1: auth: key 2 is not defined (defined: 1)"
    ]
