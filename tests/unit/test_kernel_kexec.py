"""hastack kernel kexec: argv for each form and the defaults (from a fixture /boot and /proc),
the checks, the dry run, and the `run` callable receiving exactly the argv. Nothing here runs
kexec: an autouse fixture makes any subprocess.run fail the test."""

from __future__ import annotations

import argparse
import gzip
import io
import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.kernel import kexec as kx
from hastack.kernel.cli_panic_kexec import add_commands, kexec_command

R = "6.1.0-test-amd64"
CMDLINE = "BOOT_IMAGE=/vmlinuz-6.1.0-test-amd64 root=UUID=abcd ro quiet panic=5"
WANTED_APPEND = "root=UUID=abcd ro quiet panic=5"


@pytest.fixture(autouse=True)
def no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The safety net: these tests must never start kexec (or anything else)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a test tried to run a process: {args!r}")

    monkeypatch.setattr(subprocess, "run", refuse)


class Recorder:
    """The `run` callable tests pass: records each argv, answers with scripted exit codes."""

    def __init__(self, codes: list[int] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.codes = list(codes or [])

    def __call__(self, argv: list[str]) -> int:
        self.calls.append(argv)
        return self.codes.pop(0) if self.codes else 0


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Path]:
    """A fixture /boot (kernel, initrd, config with CONFIG_KEXEC=y), /proc (cmdline) and a
    stand-in kexec binary that is never run."""
    boot, proc, sbin = tmp_path / "boot", tmp_path / "proc", tmp_path / "sbin"
    for d in (boot, proc, sbin):
        d.mkdir()
    (boot / f"vmlinuz-{R}").write_bytes(b"MZ kernel")
    (boot / f"initrd.img-{R}").write_bytes(b"initrd")
    (boot / f"config-{R}").write_text("CONFIG_KEXEC=y\nCONFIG_KEXEC_FILE=y\n")
    (proc / "cmdline").write_text(CMDLINE + "\n")
    kexec = sbin / "kexec"
    kexec.write_text("#!/bin/sh\nexit 99\n")
    kexec.chmod(0o755)
    return {"boot": boot, "proc": proc, "kexec": kexec}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hastack kernel")
    add_commands(parser.add_subparsers(dest="kernel_command", required=True))
    return parser.parse_args(argv)


def host_args(host: dict[str, Path]) -> list[str]:
    return [
        "--boot",
        str(host["boot"]),
        "--proc",
        str(host["proc"]),
        "--kexec",
        str(host["kexec"]),
        "--release",
        R,
    ]


# --- building commands (pure) -------------------------------------------------------------------


def test_defaults_are_the_running_kernel(host: dict[str, Path]) -> None:
    image = kx.default_image(R, kx.running_cmdline(host["proc"]), host["boot"])
    assert image == kx.Image(
        kernel=host["boot"] / f"vmlinuz-{R}",
        initrd=host["boot"] / f"initrd.img-{R}",
        append=WANTED_APPEND,  # BOOT_IMAGE= names the old image: dropped
    )


def test_load_argv_is_the_seeds_form() -> None:
    image = kx.Image(Path("/boot/vmlinuz-x"), Path("/boot/initrd.img-x"), "root=/dev/sda1 ro")
    assert kx.load_argv(image, "/usr/sbin/kexec") == [
        "/usr/sbin/kexec",
        "-l",
        "/boot/vmlinuz-x",
        "--initrd=/boot/initrd.img-x",
        "--append=root=/dev/sda1 ro",  # one argv element, spaces and all: no shell
    ]
    no_initrd = kx.Image(Path("/k"), None, "")
    assert kx.load_argv(no_initrd) == ["kexec", "-l", "/k", "--append="]


def test_exec_argv() -> None:
    assert kx.exec_argv("/usr/sbin/kexec") == ["/usr/sbin/kexec", "-e"]


def test_reboot_plan_with_and_without_systemd() -> None:
    image = kx.Image(Path("/k"), Path("/i"), "ro")
    load = ["kexec", "-l", "/k", "--initrd=/i", "--append=ro"]
    with_systemd = kx.reboot_plan(image, systemd=True)
    assert [s.argv for s in with_systemd.steps] == [load, ["systemctl", "kexec"]]
    without = kx.reboot_plan(image, systemd=False)
    assert [s.argv for s in without.steps] == [load, ["sync"], ["kexec", "-e"]]
    fallback = kx.reboot_plan(image, systemd=False, fallback=True)
    assert fallback.steps[-1] == kx.Step(["/sbin/reboot"], "an ordinary reboot instead", True)
    assert kx.reboot_plan(image, systemd=True, fallback=True).steps[-1].argv == [
        "systemctl",
        "reboot",
    ]


def test_kexec_reboot_command_for_the_watchdog() -> None:
    assert kx.kexec_reboot_command() == "hastack kernel kexec reboot --fallback"
    assert kx.kexec_reboot_command(fallback=False) == "hastack kernel kexec reboot"
    line = kx.kexec_reboot_command(
        kernel=Path("/boot/vmlinuz-new"), append="root=/dev/sda1 ro", program="/usr/bin/hastack"
    )
    assert shlex.split(line) == [
        "/usr/bin/hastack",
        "kernel",
        "kexec",
        "reboot",
        "--kernel=/boot/vmlinuz-new",
        "--append=root=/dev/sda1 ro",
        "--fallback",
    ]
    # The line is one the CLI accepts (the watchdog splits it with shlex, as hastack does).
    args = parse(shlex.split(line)[2:])
    assert (args.kexec_command, args.kernel, args.append, args.fallback) == (
        "reboot",
        "/boot/vmlinuz-new",
        "root=/dev/sda1 ro",
        True,
    )


# --- the checks ---------------------------------------------------------------------------------


def test_config_kexec_y() -> None:
    check = kx.config_kexec_check("CONFIG_KEXEC=y\n", "/boot/config-x")
    assert check == kx.Check("CONFIG_KEXEC", True, "CONFIG_KEXEC=y in /boot/config-x")


def test_config_kexec_not_set_says_which_file() -> None:
    check = kx.config_kexec_check("# CONFIG_KEXEC is not set\n", "/proc/config.gz")
    assert not check.ok
    assert check.detail == "CONFIG_KEXEC is not set in /proc/config.gz"
    absent = kx.config_kexec_check("CONFIG_SMP=y\n", "/boot/config-x")
    assert not absent.ok and "not in /boot/config-x" in absent.detail


def test_config_kexec_file_only_is_mentioned() -> None:
    check = kx.config_kexec_check("# CONFIG_KEXEC is not set\nCONFIG_KEXEC_FILE=y\n", "f")
    assert not check.ok and "kexec -s" in check.detail


def test_no_config_file_is_a_clear_message(tmp_path: Path) -> None:
    text, source = kx.read_kernel_config(R, tmp_path / "proc", tmp_path / "boot")
    assert (text, source) == (None, None)
    check = kx.config_kexec_check(text, source)
    assert not check.ok
    assert "/proc/config.gz" in check.detail and "/boot/config-RELEASE" in check.detail


def test_proc_config_gz_answers_first(host: dict[str, Path]) -> None:
    (host["proc"] / "config.gz").write_bytes(gzip.compress(b"# CONFIG_KEXEC is not set\n"))
    text, source = kx.read_kernel_config(R, host["proc"], host["boot"])
    assert source == str(host["proc"] / "config.gz")
    assert kx.config_kexec_check(text, source).ok is False
    (host["proc"] / "config.gz").unlink()
    text, source = kx.read_kernel_config(R, host["proc"], host["boot"])
    assert source == str(host["boot"] / f"config-{R}")
    assert kx.config_kexec_check(text, source).ok is True


def test_image_and_tools_checks(tmp_path: Path) -> None:
    image = kx.Image(tmp_path / "vmlinuz", tmp_path / "initrd", "")
    checks = kx.image_checks(image)
    assert [c.ok for c in checks] == [False, False]
    assert checks[0].detail == f"{tmp_path / 'vmlinuz'}: no such file"
    (tmp_path / "vmlinuz").write_bytes(b"k")
    assert kx.image_checks(kx.Image(tmp_path / "vmlinuz", None, ""))[0].ok
    assert not kx.kexec_tools_check(None).ok
    assert "apt-get install kexec-tools" in kx.kexec_tools_check(None).detail
    assert kx.kexec_tools_check("/usr/sbin/kexec").ok


def test_check_command_json(host: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["kexec", "check", "--json", *host_args(host)])
    assert args.func(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True
    assert doc["image"]["append"] == WANTED_APPEND
    assert {c["name"]: c["detail"] for c in doc["checks"]}["CONFIG_KEXEC"] == (
        f"CONFIG_KEXEC=y in {host['boot'] / ('config-' + R)}"
    )


def test_check_command_reports_each_failure(
    host: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (host["boot"] / f"config-{R}").write_text("# CONFIG_KEXEC is not set\n")
    (host["boot"] / f"initrd.img-{R}").unlink()
    args = parse(["kexec", "check", *host_args(host)])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert "CONFIG_KEXEC is not set in" in out and "no such file" in out
    assert "NOT ready" in out


def test_real_machine_config_says_which_file_answered() -> None:
    release = kx.running_release()
    text, source = kx.read_kernel_config(release)
    if source is None:
        pytest.skip(f"neither /proc/config.gz nor /boot/config-{release} is readable here")
    assert source in ("/proc/config.gz", f"/boot/config-{release}")
    check = kx.config_kexec_check(text, source)
    assert source in check.detail  # the operator is told which file answered


def test_decide() -> None:
    plan = kx.reboot_plan(kx.Image(Path("/k"), None, ""), systemd=True, fallback=True)
    good = [kx.Check("a", True, "")]
    bad = [kx.Check("CONFIG_KEXEC", False, "not set")]
    assert kx.decide(plan, good, force=False) == (plan, [])
    assert kx.decide(plan, bad, force=True) == (plan, ["CONFIG_KEXEC: not set"])
    chosen, _ = kx.decide(plan, bad, force=False)
    assert chosen is not None and [s.argv for s in chosen.steps] == [["systemctl", "reboot"]]
    load_only = kx.Plan([kx.Step(["kexec", "-l", "/k"], "load")])
    assert kx.decide(load_only, bad, force=False)[0] is None


# --- running: the run callable, the dry run -----------------------------------------------------


def test_run_plan_gives_run_exactly_the_argv() -> None:
    plan = kx.reboot_plan(kx.Image(Path("/k"), Path("/i"), "a b"), systemd=False, fallback=True)
    rec = Recorder()
    assert kx.run_plan(plan, rec, dry_run=False) == 0
    assert rec.calls == [
        ["kexec", "-l", "/k", "--initrd=/i", "--append=a b"],
        ["sync"],
        ["kexec", "-e"],
    ]  # the fallback is not run when all went well


def test_run_plan_stops_at_a_failure_and_falls_back() -> None:
    plan = kx.reboot_plan(kx.Image(Path("/k"), None, ""), systemd=True, fallback=True)
    rec = Recorder([1, 0])
    assert kx.run_plan(plan, rec, dry_run=False) == 0
    assert rec.calls == [["kexec", "-l", "/k", "--append="], ["systemctl", "reboot"]]
    no_fallback = kx.reboot_plan(kx.Image(Path("/k"), None, ""), systemd=True)
    rec = Recorder([3])
    assert kx.run_plan(no_fallback, rec, dry_run=False) == 3
    assert rec.calls == [["kexec", "-l", "/k", "--append="]]


def test_dry_run_prints_and_runs_nothing() -> None:
    plan = kx.reboot_plan(kx.Image(Path("/k"), None, "x y"), systemd=False, fallback=True)
    rec, out = Recorder(), io.StringIO()
    assert kx.run_plan(plan, rec, dry_run=True, out=out) == 0
    assert rec.calls == []
    assert out.getvalue().splitlines() == [
        "dry run: would run",
        "  kexec -l /k '--append=x y'    # load the new kernel",
        "  sync    # flush the page cache: kexec -e shuts nothing down",
        "  kexec -e    # boot the loaded kernel now",
        "  if that fails: /sbin/reboot    # an ordinary reboot instead",
    ]


def test_cli_load_defaults_reach_run(host: dict[str, Path]) -> None:
    rec = Recorder()
    assert kexec_command(parse(["kexec", "load", *host_args(host)]), run=rec) == 0
    assert rec.calls == [
        [
            str(host["kexec"]),
            "-l",
            str(host["boot"] / f"vmlinuz-{R}"),
            f"--initrd={host['boot'] / f'initrd.img-{R}'}",
            f"--append={WANTED_APPEND}",
        ]
    ]


def test_cli_load_explicit_image(host: dict[str, Path], tmp_path: Path) -> None:
    new = tmp_path / "vmlinuz-new"
    new.write_bytes(b"k")
    argv = ["kexec", "load", *host_args(host), "--kernel", str(new), "--no-initrd"]
    rec = Recorder()
    assert kexec_command(parse([*argv, "--append", "root=/dev/vdb ro"]), run=rec) == 0
    assert rec.calls == [[str(host["kexec"]), "-l", str(new), "--append=root=/dev/vdb ro"]]


def test_cli_reboot_without_systemd(host: dict[str, Path]) -> None:
    rec = Recorder()
    args = parse(["kexec", "reboot", *host_args(host), "--init", "other", "--no-initrd"])
    assert kexec_command(args, run=rec) == 0
    k = str(host["kexec"])
    assert rec.calls == [
        [k, "-l", str(host["boot"] / f"vmlinuz-{R}"), f"--append={WANTED_APPEND}"],
        ["sync"],
        [k, "-e"],
    ]


def test_cli_reboot_dry_run_under_systemd(
    host: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse(["kexec", "reboot", "--dry-run", *host_args(host), "--init", "systemd"])
    rec = Recorder()
    assert kexec_command(args, run=rec) == 0
    assert rec.calls == []
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "dry run: would run"
    assert lines[1].startswith(f"  {host['kexec']} -l {host['boot'] / ('vmlinuz-' + R)}")
    assert lines[2] == "  systemctl kexec    # stop services, then boot the loaded kernel"


def test_cli_exec(host: dict[str, Path]) -> None:
    rec = Recorder()
    assert kexec_command(parse(["kexec", "exec", *host_args(host)]), run=rec) == 0
    assert rec.calls == [[str(host["kexec"]), "-e"]]


def test_cli_refuses_when_a_check_fails(
    host: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (host["boot"] / f"config-{R}").write_text("# CONFIG_KEXEC is not set\n")
    rec = Recorder()
    assert kexec_command(parse(["kexec", "exec", *host_args(host)]), run=rec) == 1
    assert rec.calls == []
    err = capsys.readouterr().err
    assert "CONFIG_KEXEC is not set" in err and "refusing" in err
    # --fallback turns "cannot kexec" into an ordinary reboot: a watchdog repair still reboots.
    args = parse(["kexec", "reboot", *host_args(host), "--init", "other", "--fallback"])
    assert kexec_command(args, run=rec) == 0
    assert rec.calls == [["/sbin/reboot"]]
    rec.calls.clear()
    assert kexec_command(parse(["kexec", "load", "--force", *host_args(host)]), run=rec) == 0
    assert rec.calls[0][1] == "-l"


def test_cli_missing_kexec_binary_is_named(
    host: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["kexec", "load", *host_args(host), "--kexec", str(tmp_path / "no-kexec")]
    rec = Recorder()
    assert kexec_command(parse(argv), run=rec) == 1
    assert rec.calls == []
    assert "no executable kexec" in capsys.readouterr().err


def test_cli_unreadable_cmdline_asks_for_append(
    host: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (host["proc"] / "cmdline").unlink()
    assert kexec_command(parse(["kexec", "load", *host_args(host)]), run=Recorder()) == 2
    err = capsys.readouterr().err
    assert "cmdline" in err and "--append" in err


# --- the kernel config parser -------------------------------------------------------------------

_names = st.from_regex(r"\ACONFIG_[A-Z0-9_]{1,20}\Z")
_vals = st.one_of(st.sampled_from(["y", "m", "n"]), st.integers(0, 99999).map(str))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_names, _vals, max_size=10))
def test_parse_kernel_config_reads_what_was_written(values: dict[str, str]) -> None:
    lines = ["#", "# Automatically generated file; DO NOT EDIT.", ""]
    for name, value in values.items():
        lines.append(f"# {name} is not set" if value == "n" else f"{name}={value}")
    assert kx.parse_kernel_config("\n".join(lines)) == values


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_parse_kernel_config_never_raises(text: str) -> None:
    result = kx.parse_kernel_config(text)
    assert all(name.startswith("CONFIG_") for name in result)
