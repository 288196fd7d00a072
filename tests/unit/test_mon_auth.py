"""hastack.mon.auth: auth.cf, logins (userfile, getpwnam, trustlocal) and clientallow, checked
against mon 1.3's rules and Debian's own auth.cf."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hastack.mon.auth import (
    AuthConfigError,
    Authenticator,
    check_authtypes,
    check_clientallow,
    client_allowed,
    crypt_matches,
    load_auth,
    parse_auth,
    read_userfile,
    verify_user,
)
from hastack.mon.model import MonConfig

# Hashes of "secret" made by `openssl passwd` (an implementation independent of libc crypt)
# and by Perl's crypt (DES, as old monusers.cf files hold).
MD5_SECRET = "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1"
SHA256_SECRET = "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA"
SHA512_SECRET = (
    "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN"
    ".Pq.H91p5hVO1"
)
DES_SECRET = "abNANd1rDfiNc"

DEBIAN_AUTH_CF = [Path("/etc/mon/auth.cf"), Path("/tmp/mon/x/etc/mon/auth.cf")]


def no_dns(name: str) -> str:
    raise OSError(f"no DNS in tests ({name})")


def test_command_section_rules() -> None:
    table = parse_auth(
        "# comment\n"
        "command section\n"
        "list: all\n"
        "Disable:  alice , bob\n"  # command names are case-insensitive, users are not
        "ack: AUTH_ANY\n"
        "stop: AUTH_ANY, !mallory\n"
        "term: alice, !AUTH_ANY\n",
        "auth.cf",
        no_dns,
    )
    assert table.allowed("list", None) and table.allowed("list", "anyone")
    assert table.allowed("disable", "alice") and table.allowed("disable", "bob")
    assert not table.allowed("disable", None) and not table.allowed("disable", "Alice")
    assert table.allowed("ack", "carol") and not table.allowed("ack", None)
    assert table.allowed("stop", "carol") and not table.allowed("stop", "mallory")
    # !AUTH_ANY denies every logged-in user, even one listed by name
    assert not table.allowed("term", "alice")
    # a command the file does not name is refused to everyone
    assert not table.allowed("reset", "alice") and not table.allowed("reset", None)


def test_debian_auth_cf_reads_as_mon_reads_it() -> None:
    path = next((p for p in DEBIAN_AUTH_CF if p.exists()), None)
    if path is None:
        pytest.skip("Debian's mon auth.cf not found (install the `mon` package)")
    table = load_auth(str(path), no_dns)
    assert table.allowed("list", None) and table.allowed("version", None)
    assert not table.allowed("disable", None) and table.allowed("disable", "someone")
    assert table.traps == {}  # its trap section is all comments: no traps accepted
    assert not table.trap_allowed("127.0.0.1", "mon", "x")


def test_bad_lines_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "auth.cf"
    path.write_text("list: all\n\nthis line has no colon\n")
    with pytest.raises(AuthConfigError, match=rf"{path}:3: expected `command: user"):
        load_auth(str(path), no_dns)
    path.write_text("trap section\n* mon\n")
    with pytest.raises(AuthConfigError, match=rf"{path}:2: a trap section line is"):
        load_auth(str(path), no_dns)
    with pytest.raises(AuthConfigError, match="cannot read the auth file"):
        load_auth(str(tmp_path / "missing.cf"), no_dns)


def test_unknown_command_names_warn() -> None:
    table = parse_auth("lsit: all\n", "a.cf", no_dns)
    assert table.warnings == ("a.cf:1: 'lsit' is not a mon command; the line grants nothing",)


def test_trap_section() -> None:
    text = (
        "trap section\n"
        f"10.0.0.5 mon {MD5_SECRET}\n"
        "127.0.0.1 * *\n"
        f"monhost relay {DES_SECRET}\n"
        "nowhere.invalid x y\n"
    )

    def resolve(name: str) -> str:
        if name == "monhost":
            return "10.0.0.9"
        raise OSError(f"{name}: unknown host")

    table = parse_auth(text, "auth.cf", resolve)
    assert table.trap_allowed("10.0.0.5", "mon", "secret")
    assert not table.trap_allowed("10.0.0.5", "mon", "wrong")
    assert not table.trap_allowed("10.0.0.5", "other", "secret")
    assert table.trap_allowed("::ffff:10.0.0.5", "mon", "secret")  # dual-stack socket
    assert table.trap_allowed("127.0.0.1", "", "")  # `*` user: no name or password needed
    assert table.trap_allowed("10.0.0.9", "relay", "secret")  # a host name, resolved
    assert not table.trap_allowed("10.0.0.6", "mon", "secret")
    assert table.warnings == (
        "auth.cf:5: trap host 'nowhere.invalid' is not an address or does not resolve; "
        "entry skipped",
    )
    # a `*` host entry makes mon consult it alone
    star = parse_auth(f"trap section\n* mon {MD5_SECRET}\n127.0.0.1 * *\n", "a", no_dns)
    assert star.trap_allowed("192.0.2.1", "mon", "secret")
    assert not star.trap_allowed("127.0.0.1", "", "")


@pytest.mark.parametrize("hashed", [MD5_SECRET, SHA256_SECRET, SHA512_SECRET, DES_SECRET])
def test_crypt_styles(hashed: str) -> None:
    assert crypt_matches("secret", hashed)
    assert not crypt_matches("Secret", hashed)
    assert not crypt_matches("secret\0", hashed)  # a NUL is refused, not an error
    assert not crypt_matches("secret", "")


def test_crypt_matches_perl_crypt() -> None:
    if shutil.which("perl") is None:
        pytest.skip("perl not installed: cannot compare with Perl's crypt")
    hashed = subprocess.run(
        ["perl", "-e", 'print crypt("p4ss word", q($6$perlsalt$))'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert hashed.startswith("$6$perlsalt$")
    assert crypt_matches("p4ss word", hashed) and not crypt_matches("p4ss", hashed)


def write_users(tmp_path: Path) -> MonConfig:
    (tmp_path / "monusers.cf").write_text(
        f"# mon users\n\nalice:{MD5_SECRET}\n bob : {SHA512_SECRET}\nnopass\n"
    )
    return MonConfig(cfbasedir=str(tmp_path), authtype=["userfile"], userfile="monusers.cf")


def test_userfile_logins(tmp_path: Path) -> None:
    cfg = write_users(tmp_path)
    assert read_userfile(str(tmp_path / "monusers.cf")) == {
        "alice": MD5_SECRET,
        "bob": SHA512_SECRET,
    }
    assert verify_user(cfg, "alice", "secret", "10.0.0.1")
    assert verify_user(cfg, "bob", "secret", "10.0.0.1")
    assert not verify_user(cfg, "alice", "wrong", "10.0.0.1")
    assert not verify_user(cfg, "carol", "secret", "10.0.0.1")
    assert not verify_user(cfg, "nopass", "", "10.0.0.1")
    assert not verify_user(cfg, "alice", "", "10.0.0.1")
    assert not verify_user(cfg, "", "secret", "10.0.0.1")
    # an absolute userfile is used as is; a missing one accepts nobody
    absolute = MonConfig(authtype=["userfile"], userfile=str(tmp_path / "monusers.cf"))
    assert verify_user(absolute, "alice", "secret", "10.0.0.1")
    missing = MonConfig(cfbasedir=str(tmp_path), authtype=["userfile"], userfile="none.cf")
    assert not verify_user(missing, "alice", "secret", "10.0.0.1")


def test_trustlocal_and_order(tmp_path: Path) -> None:
    cfg = write_users(tmp_path)
    cfg.authtype = ["trustlocal"]
    assert verify_user(cfg, "anyone", "", "127.0.0.1")
    assert verify_user(cfg, "anyone", "", "::ffff:127.0.0.1")
    assert not verify_user(cfg, "anyone", "secret", "10.0.0.1")
    assert not verify_user(cfg, "", "", "127.0.0.1")
    cfg.authtype = ["trustlocal", "userfile"]  # tried in order until one accepts
    assert verify_user(cfg, "alice", "secret", "10.0.0.1")
    assert not verify_user(cfg, "alice", "nope", "10.0.0.1")


def test_getpwnam_uses_the_system_hash() -> None:
    cfg = MonConfig(authtype=["getpwnam"])
    hashes = {"alice": SHA256_SECRET}
    assert verify_user(cfg, "alice", "secret", "10.0.0.1", system_hash=hashes.get)
    assert not verify_user(cfg, "alice", "other", "10.0.0.1", system_hash=hashes.get)
    assert not verify_user(cfg, "bob", "secret", "10.0.0.1", system_hash=hashes.get)
    # the real lookup: a user that does not exist is refused, not an error
    assert not verify_user(cfg, "no-such-user-hastack", "secret", "10.0.0.1")


def test_authtypes_supported_and_refused() -> None:
    assert check_authtypes(["getpwnam", "userfile", "trustlocal"]) == []
    warnings = check_authtypes(["shadow"], "mon.cf:7")
    assert len(warnings) == 1 and warnings[0].startswith("mon.cf:7: authtype shadow never")
    with pytest.raises(AuthConfigError, match=r"mon.cf:7: authtype pam is not supported"):
        check_authtypes(["userfile", "pam"], "mon.cf:7")
    with pytest.raises(AuthConfigError, match=r"unknown authtype 'kerberos'; allowed: getpwnam"):
        check_authtypes(["kerberos"], "mon.cf:7")
    # pam and shadow never accept a login (mon's shadow type is empty)
    cfg = MonConfig(authtype=["shadow", "pam"])
    assert not verify_user(cfg, "root", "x", "127.0.0.1")


def test_clientallow() -> None:
    default = MonConfig().clientallow
    assert client_allowed(default, "10.1.2.3")
    assert client_allowed(default, "::ffff:10.1.2.3")
    assert not client_allowed(default, "::1")
    # bare dots are literal (mon rewrites them), the whole address must match
    assert client_allowed("10.0.0.[0-9]+ 127.0.0.1", "10.0.0.42")
    assert client_allowed("10.0.0.[0-9]+ 127.0.0.1", "127.0.0.1")
    assert not client_allowed("10.0.0.[0-9]+", "10.0.0.42.7")
    assert not client_allowed("10.0.0.1", "10x0x0x1")
    assert not client_allowed("192.168.1.1", "10.0.0.1")
    assert not client_allowed("(unclosed 10.0.0.1", "192.0.2.1")  # bad pattern matches nothing
    assert client_allowed("(unclosed 10.0.0.1", "10.0.0.1")
    check_clientallow(default)
    with pytest.raises(AuthConfigError, match=r"mon.cf:3: clientallow pattern '\(unclosed'"):
        check_clientallow("10.0.0.1 (unclosed", "mon.cf:3")


def test_authenticator_sees_a_reloaded_table(tmp_path: Path) -> None:
    cfg = write_users(tmp_path)
    auth = Authenticator(parse_auth("list: all\n", "a", no_dns), cfg)
    assert auth.allowed("list", None) and not auth.allowed("stop", "alice")
    assert auth.login("alice", "secret", "10.0.0.1") and not auth.login("alice", "x", "10.0.0.1")
    auth.table = parse_auth("stop: alice\n", "a", no_dns)
    assert auth.allowed("stop", "alice") and not auth.allowed("list", None)


def test_no_deprecation_warning_escapes() -> None:
    # the crypt module's DeprecationWarning is silenced where it is imported, not globally
    result = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", "import hastack.mon.auth"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
