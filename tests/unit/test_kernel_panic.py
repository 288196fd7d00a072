"""hastack kernel panic: the profile, the diff, apply on a temporary proc-like tree, the sysctl.d
file, and `check` (only) on the real /proc/sys, which these tests never write."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.kernel import panic as pn
from hastack.kernel.cli_panic_kexec import add_commands

ALL_KEYS = {
    "panic": "0",
    "panic_on_oops": "0",
    "panic_on_unrecovered_nmi": "0",
    "softlockup_panic": "0",
    "hung_task_panic": "0",
    "panic_on_warn": "0",
}


def make_tree(root: Path, values: dict[str, str] | None = None) -> Path:
    """A proc/sys-like tree: root/kernel/<name> holding "value\\n", as /proc/sys prints it."""
    kernel = root / "kernel"
    kernel.mkdir(parents=True)
    for name, value in (ALL_KEYS if values is None else values).items():
        (kernel / name).write_text(value + "\n")
    return root


def read(root: Path, name: str) -> str:
    return (root / "kernel" / name).read_text()


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make a write to `path` fail with a real OS error. Root ignores mode bits, so as root the
    file is made immutable (EPERM), as a read-only sysctl refuses root (EACCES)."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield
        return
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make {path} immutable here (chattr: {made.stderr.strip()})")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hastack kernel")
    add_commands(parser.add_subparsers(dest="kernel_command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


# --- the profile and the diff (pure) ------------------------------------------------------------


def test_default_profile_is_the_seeds() -> None:
    assert pn.Profile().wanted() == {
        "kernel.panic": "5",
        "kernel.panic_on_oops": "1",
        "kernel.panic_on_unrecovered_nmi": "1",
    }


def test_options_add_their_keys_as_required() -> None:
    profile = pn.Profile(timeout=10, softlockup=True, hung_task=True, on_warn=True)
    wanted = profile.wanted()
    assert wanted["kernel.panic"] == "10"
    for key in ("kernel.softlockup_panic", "kernel.hung_task_panic", "kernel.panic_on_warn"):
        assert wanted[key] == "1"
    required = {s.key: s.required for s in profile.settings()}
    assert required["kernel.softlockup_panic"] and required["kernel.panic_on_warn"]
    assert not required["kernel.panic_on_unrecovered_nmi"]  # x86 only


def test_timeout_zero_is_refused_with_why() -> None:
    with pytest.raises(ValueError, match="never reboots"):
        pn.Profile(timeout=0)
    assert pn.Profile(timeout=-1).wanted()["kernel.panic"] == "-1"


def test_diff_lists_only_what_differs_and_missing_keys() -> None:
    current: dict[str, str | None] = {
        "kernel.panic": "5",
        "kernel.panic_on_oops": "0",
        "kernel.panic_on_unrecovered_nmi": None,
    }
    assert pn.diff(pn.Profile(), current) == [
        pn.Change("kernel.panic_on_oops", "0", "1", True),
        pn.Change("kernel.panic_on_unrecovered_nmi", None, "1", False),
    ]


def test_diff_compares_as_the_kernel_prints() -> None:
    current = {
        "kernel.panic": " 5\n",
        "kernel.panic_on_oops": "01",
        "kernel.panic_on_unrecovered_nmi": "1",
    }
    assert pn.diff(pn.Profile(), current) == []


# --- check and apply on a temporary tree --------------------------------------------------------


def test_check_finds_the_differences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = make_tree(tmp_path / "sys", {**ALL_KEYS, "panic": "5"})
    assert cli(["panic", "check", "--proc-sys", str(tree), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    status = {row["key"]: row["status"] for row in doc["settings"]}
    assert status == {
        "kernel.panic": "ok",
        "kernel.panic_on_oops": "differs",
        "kernel.panic_on_unrecovered_nmi": "differs",
    }
    assert doc["differs"] is True


def test_check_text_report_names_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = make_tree(tmp_path / "sys")
    assert cli(["panic", "check", "--proc-sys", str(tree)]) == 1
    out = capsys.readouterr().out
    assert "kernel.panic_on_oops" in out and "differs" in out


def test_apply_writes_verifies_and_then_check_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = make_tree(tmp_path / "sys")
    assert cli(["panic", "apply", "--proc-sys", str(tree), "--timeout", "7", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(o["key"], o["status"], o["after"]) for o in doc["outcomes"]] == [
        ("kernel.panic", "written", "7"),
        ("kernel.panic_on_oops", "written", "1"),
        ("kernel.panic_on_unrecovered_nmi", "written", "1"),
    ]
    assert read(tree, "panic") == "7\n"
    assert read(tree, "panic_on_oops") == "1\n"
    assert read(tree, "softlockup_panic") == "0\n"  # not asked for: untouched
    assert cli(["panic", "check", "--proc-sys", str(tree), "--timeout", "7"]) == 0


def test_apply_options(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "sys")
    argv = ["panic", "apply", "--proc-sys", str(tree), "--softlockup", "--hung-task", "--on-warn"]
    assert cli(argv) == 0
    for name in ("softlockup_panic", "hung_task_panic", "panic_on_warn"):
        assert read(tree, name) == "1\n"


def test_unsupported_optional_key_is_reported_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = {k: v for k, v in ALL_KEYS.items() if k != "panic_on_unrecovered_nmi"}
    tree = make_tree(tmp_path / "sys", values)
    assert cli(["panic", "apply", "--proc-sys", str(tree), "--json"]) == 0
    outcomes = {o["key"]: o["status"] for o in json.loads(capsys.readouterr().out)["outcomes"]}
    assert outcomes["kernel.panic_on_unrecovered_nmi"] == "unsupported"
    assert not (tree / "kernel" / "panic_on_unrecovered_nmi").exists()  # never created
    assert cli(["panic", "check", "--proc-sys", str(tree), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["settings"]
    assert {r["key"]: r["status"] for r in rows}["kernel.panic_on_unrecovered_nmi"] == "unsupported"


def test_missing_required_key_stops_before_any_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = {k: v for k, v in ALL_KEYS.items() if k != "softlockup_panic"}
    tree = make_tree(tmp_path / "sys", values)
    assert cli(["panic", "apply", "--proc-sys", str(tree), "--softlockup"]) == 1
    err = capsys.readouterr().err
    assert "kernel.softlockup_panic" in err and "nothing was written" in err
    assert read(tree, "panic") == "0\n"


def test_read_only_key_names_it_and_rolls_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = make_tree(tmp_path / "sys")
    oops = tree / "kernel" / "panic_on_oops"
    with read_only(oops):
        assert cli(["panic", "apply", "--proc-sys", str(tree)]) == 1
        err = capsys.readouterr().err
    assert "kernel.panic_on_oops" in err
    assert str(oops) in err
    assert "not permitted" in err or "denied" in err  # the OS error, in words
    assert "restored kernel.panic=0" in err
    assert read(tree, "panic") == "0\n"  # kernel.panic had been written: it is put back
    assert read(tree, "panic_on_unrecovered_nmi") == "0\n"  # never reached


def test_value_that_does_not_read_back_is_an_error(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "sys")
    # A key whose writes vanish, like a kernel that ignores the value: /dev/null reads back "".
    target = tree / "kernel" / "panic_on_unrecovered_nmi"
    target.unlink()
    target.symlink_to("/dev/null")
    profile = pn.Profile()
    changes = pn.diff(profile, pn.read_current(profile, tree))
    with pytest.raises(pn.PanicError, match=r"panic_on_unrecovered_nmi.*reads back ''"):
        pn.apply_changes(changes, tree)
    assert read(tree, "panic") == "0\n" and read(tree, "panic_on_oops") == "0\n"


def test_dry_run_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = make_tree(tmp_path / "sys")
    before = {p: (p.read_text(), p.stat().st_mtime_ns) for p in (tree / "kernel").iterdir()}
    conf = tmp_path / "90-hastack-panic.conf"
    argv = ["panic", "apply", "--dry-run", "--proc-sys", str(tree), "--sysctl-file", str(conf)]
    assert cli(argv) == 0
    out = capsys.readouterr().out
    assert "would write" in out and "kernel.panic = 5" in out
    after = {p: (p.read_text(), p.stat().st_mtime_ns) for p in (tree / "kernel").iterdir()}
    assert after == before
    assert not conf.exists()
    assert list(tmp_path.iterdir()) == [tree]


def test_bad_proc_sys_and_timeout_are_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["panic", "check", "--proc-sys", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert cli(["panic", "check", "--proc-sys", str(tmp_path), "--timeout", "0"]) == 2
    assert "0 means" in capsys.readouterr().err


# --- the sysctl.d file --------------------------------------------------------------------------


def test_sysctl_file_content(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "sys")
    conf = tmp_path / "90-hastack-panic.conf"
    assert cli(["panic", "apply", "--proc-sys", str(tree), "--sysctl-file", str(conf)]) == 0
    text = conf.read_text()
    assert text.startswith("# Written by `hastack kernel panic apply`")
    assert pn.parse_sysctl_conf(text) == pn.Profile().wanted()
    assert conf.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == [conf.name, "sys"]  # no temp file left
    assert cli(["panic", "check", "--proc-sys", str(tree), "--sysctl-file", str(conf)]) == 0


def test_sysctl_file_leaves_out_unsupported_keys() -> None:
    text = pn.render_sysctl_conf(pn.Profile(), ["kernel.panic_on_unrecovered_nmi"])
    assert "# kernel.panic_on_unrecovered_nmi = 1  (not supported by this kernel" in text
    assert "kernel.panic_on_unrecovered_nmi" not in pn.parse_sysctl_conf(text)


def test_check_reports_a_stale_sysctl_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = make_tree(tmp_path / "sys", {**ALL_KEYS, "panic": "5", "panic_on_oops": "1"})
    (tree / "kernel" / "panic_on_unrecovered_nmi").write_text("1\n")
    conf = tmp_path / "old.conf"
    conf.write_text("kernel.panic = 30\nkernel/panic_on_oops=1\n")
    assert (
        cli(["panic", "check", "--proc-sys", str(tree), "--sysctl-file", str(conf), "--json"]) == 1
    )
    doc = json.loads(capsys.readouterr().out)
    ok = {row["key"]: row["ok"] for row in doc["sysctl_file"]["settings"]}
    assert ok == {
        "kernel.panic": False,
        "kernel.panic_on_oops": True,
        "kernel.panic_on_unrecovered_nmi": False,
    }


def test_sysctl_file_in_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(pn.PanicError, match="does not exist"):
        pn.write_sysctl_file(pn.Profile(), tmp_path / "no" / "x.conf")


def test_parse_sysctl_conf_rules_and_errors() -> None:
    text = "; c\n# c\n-kernel.panic = 5\nkernel/panic_on_oops=1\nkernel.panic = 6\n"
    assert pn.parse_sysctl_conf(text) == {"kernel.panic": "6", "kernel.panic_on_oops": "1"}
    with pytest.raises(ValueError, match=r"f.conf:2: .*expected 'key = value'"):
        pn.parse_sysctl_conf("a.b=1\njunk\n", "f.conf")


_keys = st.from_regex(r"\A[a-z_]{1,8}(\.[a-z_]{1,8}){1,3}\Z")
_values = st.from_regex(r"\A[0-9a-z_ -]{0,12}\Z").map(str.strip)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=8))
def test_parse_sysctl_conf_reads_what_was_written(values: dict[str, str]) -> None:
    text = "# header\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
    assert pn.parse_sysctl_conf(text) == values


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parse_sysctl_conf_fuzz_only_value_errors(text: str) -> None:
    with contextlib.suppress(ValueError):
        pn.parse_sysctl_conf(text)


def test_key_path_refuses_escapes(tmp_path: Path) -> None:
    assert pn.key_path(tmp_path, "kernel.panic") == tmp_path / "kernel" / "panic"
    for bad in ("../etc.passwd", "kernel", "kernel./x", "/kernel.panic"):
        with pytest.raises(pn.PanicError, match="not a sysctl key"):
            pn.key_path(tmp_path, bad)


# --- the real /proc/sys: read only --------------------------------------------------------------


def test_check_on_the_real_proc_sys_only_reads(capsys: pytest.CaptureFixture[str]) -> None:
    real = Path("/proc/sys/kernel/panic")
    if not real.exists():
        pytest.skip("no /proc/sys/kernel/panic on this machine")
    profile = pn.Profile(softlockup=True, hung_task=True, on_warn=True)
    direct = {}
    for s in profile.settings():
        path = Path("/proc/sys", *s.key.split("."))
        direct[s.key] = path.read_text().strip() if path.exists() else None
    assert pn.read_current(profile) == direct
    rc = cli(["panic", "check", "--json", "--softlockup", "--hung-task", "--on-warn"])
    doc = json.loads(capsys.readouterr().out)
    assert {r["key"]: r["current"] for r in doc["settings"]} == direct
    assert rc == (1 if doc["differs"] else 0)
    assert pn.read_current(profile) == direct  # nothing changed by the check
