"""hastack kernel livepatch on fixture trees shaped like /sys/kernel/livepatch and /proc.

No module is ever loaded: insmod/modprobe go through a recording `run`; the Ksplice test runs a
fake `uptrack-show` script from a temporary PATH directory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hastack.kernel_livepatch.cli import EXIT_REFUSED, EXIT_STUCK, add_commands
from hastack.kernel_livepatch.livepatch import (
    NO_SUPPORT,
    LivepatchError,
    LivepatchState,
    PatchedFunction,
    Runner,
    RunResult,
    blocking_tasks,
    check_disable,
    check_enable,
    default_run,
    load,
    parse_flag,
    parse_function_dir,
    plan_load,
    probe_tools,
    read_state,
    wait_for_transition,
    write_enabled,
)

# ---------------------------------------------------------------------------------------------
# fixtures


def make_patch(
    root: Path,
    name: str,
    *,
    enabled: bool = True,
    transition: bool = False,
    replace: bool | None = None,
    stack_order: int | None = None,
    objects: dict[str, tuple[bool | None, Sequence[str]]] | None = None,
) -> Path:
    """A patch directory as core.c lays it out."""
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "enabled").write_text(f"{int(enabled)}\n")
    (directory / "transition").write_text(f"{int(transition)}\n")
    (directory / "force").write_text("")  # write-only in the kernel; a plain file here
    if replace is not None:
        (directory / "replace").write_text(f"{int(replace)}\n")
    if stack_order is not None:
        (directory / "stack_order").write_text(f"{stack_order}\n")
    if objects is None:
        objects = {"vmlinux": (True, ["cmdline_proc_show,1"])}
    for obj, (patched, functions) in objects.items():
        obj_dir = directory / obj
        obj_dir.mkdir()
        if patched is not None:
            (obj_dir / "patched").write_text(f"{int(patched)}\n")
        for func in functions:
            (obj_dir / func).mkdir()
    return directory


def make_task(proc: Path, pid: int, comm: str, patch_state: int) -> None:
    task = proc / str(pid)
    task.mkdir(parents=True)
    (task / "comm").write_text(comm + "\n")
    (task / "patch_state").write_text(f"{patch_state}\n")


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    root = tmp_path / "livepatch"
    root.mkdir()
    return root


class Recorder:
    """A `run` that records argv and answers as told; never runs anything."""

    def __init__(self, result: RunResult | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.result = result or RunResult(0)

    def __call__(self, argv: Sequence[str]) -> RunResult:
        self.calls.append(tuple(argv))
        return self.result


def cli(argv: list[str], run: Runner | None = None, search_path: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hastack kernel")
    add_commands(parser.add_subparsers(), run=run or Recorder(), search_path=search_path)
    args = parser.parse_args(argv)
    return args.func(args)


def empty_path(tmp_path: Path) -> str:
    directory = tmp_path / "emptybin"
    directory.mkdir(exist_ok=True)
    return str(directory)


# ---------------------------------------------------------------------------------------------
# reading the state


def test_missing_root_is_no_support_and_status_says_so_without_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = read_state(tmp_path / "absent")
    assert not state.supported and state.patches == ()
    code = cli(["livepatch", "status", "--sysfs", str(tmp_path / "absent")], None, "")
    out = capsys.readouterr().out
    assert code == 0
    assert NO_SUPPORT in out and "does not exist" in out
    code = cli(["livepatch", "status", "--json", "--sysfs", str(tmp_path / "absent")], None, "")
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["supported"] is False and report["message"] == NO_SUPPORT


def test_no_patches(sysfs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = read_state(sysfs)
    assert state.supported and state.patches == () and state.in_transition() is None
    assert cli(["livepatch", "status", "--sysfs", str(sysfs)], None, empty_path(tmp_path)) == 0
    assert "no live patches loaded" in capsys.readouterr().out


def test_one_enabled_patch_with_objects_and_functions(
    sysfs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_patch(
        sysfs,
        "livepatch_sample",
        replace=True,
        stack_order=1,
        objects={
            "vmlinux": (True, ["cmdline_proc_show,1", "meminfo_proc_show,2"]),
            "nfsd": (False, ["nfsd_open,1"]),
        },
    )
    state = read_state(sysfs)
    (patch,) = state.patches
    assert (patch.name, patch.enabled, patch.transition) == ("livepatch_sample", True, False)
    assert patch.replace is True and patch.stack_order == 1
    objects = {o.name: o for o in patch.objects}
    assert objects["vmlinux"].patched is True and objects["nfsd"].patched is False
    assert objects["vmlinux"].functions == (
        PatchedFunction("cmdline_proc_show", 1),
        PatchedFunction("meminfo_proc_show", 2),
    )

    path = empty_path(tmp_path)
    assert cli(["livepatch", "status", "--json", "--sysfs", str(sysfs)], None, path) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["in_transition"] is None
    (jpatch,) = report["patches"]
    assert jpatch["enabled"] is True and jpatch["replace"] is True
    assert {f["name"] for o in jpatch["objects"] for f in o["functions"]} == {
        "cmdline_proc_show",
        "meminfo_proc_show",
        "nfsd_open",
    }
    assert cli(["livepatch", "status", "--sysfs", str(sysfs)], None, path) == 0
    out = capsys.readouterr().out
    assert "livepatch_sample" in out and "cmdline_proc_show" in out and "nfsd_open" in out


def test_optional_attributes_of_older_kernels_read_as_unknown(sysfs: Path) -> None:
    directory = make_patch(sysfs, "old", objects={"vmlinux": (None, ["f,1"])})
    (directory / "transition").unlink()  # before 4.12
    (patch,) = read_state(sysfs).patches
    assert patch.transition is False and patch.replace is None and patch.stack_order is None
    assert patch.objects[0].patched is None


def test_patches_are_listed_in_stack_order(sysfs: Path) -> None:
    make_patch(sysfs, "a_second", stack_order=2)
    make_patch(sysfs, "b_first", stack_order=1)
    assert [p.name for p in read_state(sysfs).patches] == ["b_first", "a_second"]


def test_a_bad_flag_names_the_file(sysfs: Path, tmp_path: Path) -> None:
    directory = make_patch(sysfs, "p")
    (directory / "enabled").write_text("2\n")
    with pytest.raises(LivepatchError, match=r"p/enabled: '2' is not a flag: 0 or 1"):
        read_state(sysfs)
    assert cli(["livepatch", "status", "--sysfs", str(sysfs)], None, empty_path(tmp_path)) == 1


def test_a_patch_directory_without_enabled_is_an_error(sysfs: Path) -> None:
    (make_patch(sysfs, "p") / "enabled").unlink()
    with pytest.raises(LivepatchError, match=r"enabled.*missing"):
        read_state(sysfs)


def test_patch_in_transition_and_the_tasks_blocking_it(
    sysfs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_patch(sysfs, "done", stack_order=1)
    make_patch(sysfs, "moving", transition=True, stack_order=2)
    proc = tmp_path / "proc"
    make_task(proc, 1, "systemd", 1)  # already patched
    make_task(proc, 42, "nfsd", 0)  # still unpatched: blocks an enable
    make_task(proc, 43, "kworker/0:1", -1)  # -1 only outside a transition; not counted
    (proc / "self").mkdir()  # not a pid
    state = read_state(sysfs)
    assert state.in_transition() is not None and state.in_transition().name == "moving"
    assert [t.pid for t in blocking_tasks(True, proc)] == [42]
    assert [t.pid for t in blocking_tasks(False, proc)] == [1]

    args = ["livepatch", "status", "--sysfs", str(sysfs), "--proc", str(proc)]
    assert cli(args, None, empty_path(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "moving is in transition" in out and "42 (nfsd)" in out
    assert cli([*args, "--json"], None, empty_path(tmp_path)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["in_transition"] == "moving"
    assert report["blocking_tasks"] == [{"pid": 42, "comm": "nfsd", "patch_state": 0}]


# ---------------------------------------------------------------------------------------------
# enable / disable: the kernel's checks, then the write


def enabled_of(sysfs: Path, name: str) -> str:
    return (sysfs / name / "enabled").read_text().strip()


def test_disable_writes_0(sysfs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_patch(sysfs, "p")
    assert cli(["livepatch", "disable", "p", "--sysfs", str(sysfs), "--wait", "1"]) == 0
    assert enabled_of(sysfs, "p") == "0"
    captured = capsys.readouterr()
    assert "wrote 0" in captured.out and "transition finished" in captured.out
    assert "cannot be enabled again" in captured.err  # the documented one-way street


def test_disable_dry_run_writes_nothing(sysfs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_patch(sysfs, "p")
    assert cli(["livepatch", "disable", "p", "--sysfs", str(sysfs), "--dry-run"]) == 0
    assert enabled_of(sysfs, "p") == "1"
    assert "would write 0" in capsys.readouterr().out


def test_enable_reverses_a_pending_disable(sysfs: Path) -> None:
    make_patch(sysfs, "p", enabled=False, transition=True)
    decision = check_enable(read_state(sysfs), "p")
    assert decision.allowed and "reverses the pending disable" in decision.reason
    write_enabled(decision, sysfs)
    assert enabled_of(sysfs, "p") == "1"


def test_disable_reverses_a_pending_enable(sysfs: Path) -> None:
    make_patch(sysfs, "p", transition=True)
    decision = check_disable(read_state(sysfs), "p")
    assert decision.allowed and "reverses the pending enable" in decision.reason
    assert cli(["livepatch", "disable", "p", "--sysfs", str(sysfs), "--wait", "0"]) == 0
    assert enabled_of(sysfs, "p") == "0"


def test_disabling_a_replace_patch_warns_that_the_replaced_ones_are_gone(sysfs: Path) -> None:
    make_patch(sysfs, "cumulative", replace=True)
    decision = check_disable(read_state(sysfs), "cumulative")
    assert decision.allowed
    assert any("original kernel code" in w for w in decision.warnings)


@pytest.mark.parametrize(
    ("command", "setup", "message"),
    [
        ("enable", {"enabled": True}, "p is already enabled"),
        ("enable", {"enabled": False}, "does not re-enable a disabled live patch"),
        (
            "enable",
            {"enabled": True, "transition": True},
            "already being enabled (transition in progress)",
        ),
        ("disable", {"enabled": False}, "p is already disabled"),
        (
            "disable",
            {"enabled": False, "transition": True},
            "already being disabled (transition in progress)",
        ),
    ],
)
def test_refusals_leave_enabled_untouched(
    sysfs: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    setup: dict[str, bool],
    message: str,
) -> None:
    make_patch(sysfs, "p", **setup)
    before = enabled_of(sysfs, "p")
    assert cli(["livepatch", command, "p", "--sysfs", str(sysfs)]) == EXIT_REFUSED
    assert message in capsys.readouterr().err
    assert enabled_of(sysfs, "p") == before


def test_disable_refused_while_another_patch_is_in_transition(
    sysfs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_patch(sysfs, "p")
    make_patch(sysfs, "busy", transition=True)
    assert cli(["livepatch", "disable", "p", "--sysfs", str(sysfs)]) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "busy is in transition" in err and "EBUSY" in err
    assert enabled_of(sysfs, "p") == "1"


def test_unknown_patch_names_the_loaded_ones(sysfs: Path) -> None:
    make_patch(sysfs, "a")
    decision = check_disable(read_state(sysfs), "nope")
    assert not decision.allowed and "loaded: a" in decision.reason
    assert str(sysfs) in decision.reason


def test_enable_refused_without_support(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli(["livepatch", "enable", "p", "--sysfs", str(tmp_path / "none")])
    assert code == EXIT_REFUSED and NO_SUPPORT in capsys.readouterr().err


def test_write_enabled_refuses_a_refused_decision(sysfs: Path) -> None:
    make_patch(sysfs, "p")
    with pytest.raises(LivepatchError, match="already enabled"):
        write_enabled(check_enable(read_state(sysfs), "p"), sysfs)


# ---------------------------------------------------------------------------------------------
# waiting for the transition


def test_wait_returns_when_the_transition_clears(
    sysfs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = make_patch(sysfs, "p")

    def kernel_finishes() -> None:
        # What the kernel does: transition 1 while the tasks converge, then 0.
        time.sleep(0.3)
        (directory / "transition").write_text("0\n")

    (directory / "transition").write_text("1\n")
    (directory / "enabled").write_text("1\n")
    flipper = threading.Thread(target=kernel_finishes)
    flipper.start()
    try:
        started = time.monotonic()
        # enabled=1 and transition=1: disabling reverses the pending enable.
        code = cli(["livepatch", "disable", "p", "--sysfs", str(sysfs), "--wait", "10"])
        elapsed = time.monotonic() - started
    finally:
        flipper.join()
    assert code == 0
    assert 0.25 <= elapsed < 5
    assert "transition finished" in capsys.readouterr().out


def test_wait_times_out_and_reports_transition_stuck(
    sysfs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_patch(sysfs, "p", transition=True)
    proc = tmp_path / "proc"
    make_task(proc, 77, "stuckd", 1)  # a disable is pending: 77 is still patched
    args = ["livepatch", "disable", "p", "--sysfs", str(sysfs), "--proc", str(proc)]
    assert cli([*args, "--wait", "0.3"]) == EXIT_STUCK
    err = capsys.readouterr().err
    assert "transition stuck" in err and str(sysfs / "p" / "transition") in err
    assert "77 (stuckd)" in err and "force" in err


def test_wait_timeout_with_a_fake_clock_and_no_proc_information(sysfs: Path) -> None:
    make_patch(sysfs, "p", transition=True)
    now = [0.0]
    result = wait_for_transition(
        "p",
        5.0,
        root=sysfs,
        proc=sysfs / "no-proc",
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )
    assert not result.finished and result.waited >= 5.0 and result.blocking == ()
    assert "cannot be named from here" in result.message(sysfs)


def test_wait_ends_when_the_disabled_patch_directory_is_removed(sysfs: Path) -> None:
    make_patch(sysfs, "p", enabled=False, transition=True)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        shutil.rmtree(sysfs / "p")  # the kernel destroys the sysfs interface at the end

    result = wait_for_transition("p", 5.0, root=sysfs, clock=lambda: now[0], sleep=sleep)
    assert result.finished and result.enabled is None
    assert "removed" in result.message(sysfs)


# ---------------------------------------------------------------------------------------------
# loading


def test_load_file_builds_insmod_and_runs_it(sysfs: Path, tmp_path: Path) -> None:
    module = tmp_path / "livepatch-fix.ko"
    module.write_bytes(b"\x7fELF")
    run = Recorder()
    plan = load(str(module), root=sysfs, run=run)
    assert run.calls == [("insmod", str(module))]
    assert plan.patch == "livepatch_fix"


def test_load_name_builds_modprobe(sysfs: Path) -> None:
    run = Recorder()
    assert load("kpatch-cve", root=sysfs, run=run).argv == ("modprobe", "kpatch-cve")
    assert run.calls == [("modprobe", "kpatch-cve")]


def test_load_dry_run_runs_nothing(sysfs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = Recorder()
    assert cli(["livepatch", "load", "lp_x", "--dry-run", "--sysfs", str(sysfs)], run) == 0
    assert run.calls == []
    assert "would run: modprobe lp_x" in capsys.readouterr().out


def test_load_then_waits_for_the_patch_transition(
    sysfs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class FakeKernel(Recorder):
        def __call__(self, argv: Sequence[str]) -> RunResult:
            make_patch(sysfs, "lp_x")  # module_init enabled it; transition already done
            return super().__call__(argv)

    run = FakeKernel()
    assert cli(["livepatch", "load", "lp_x", "--sysfs", str(sysfs), "--wait", "1"], run) == 0
    out = capsys.readouterr().out
    assert "ran: modprobe lp_x" in out and "lp_x: transition finished" in out


def test_load_failure_reports_the_tool_output(sysfs: Path) -> None:
    run = Recorder(RunResult(1, "", "insmod: ERROR: could not insert module: Invalid parameters"))
    with pytest.raises(LivepatchError, match="modprobe lp_x failed: insmod: ERROR"):
        load("lp_x", root=sysfs, run=run)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("/nonexistent/fix.ko", "no such module file"),
        ("-r", "neither a module file"),
        ("a b", "neither a module file"),
        ("present", "already loaded"),
    ],
)
def test_load_refusals(sysfs: Path, target: str, message: str) -> None:
    make_patch(sysfs, "present")
    run = Recorder()
    with pytest.raises(LivepatchError, match=message):
        load(target, root=sysfs, run=run)
    assert run.calls == []


def test_load_refused_while_a_transition_runs(sysfs: Path) -> None:
    make_patch(sysfs, "busy", transition=True)
    with pytest.raises(LivepatchError, match=r"busy is in transition.*EBUSY"):
        load("other", root=sysfs, run=Recorder())


def test_load_refused_without_support(tmp_path: Path) -> None:
    with pytest.raises(LivepatchError, match=r"CONFIG_LIVEPATCH"):
        load("lp", root=tmp_path / "none", run=Recorder())


# ---------------------------------------------------------------------------------------------
# Ksplice-style tools


def test_ksplice_uptrack_show_is_found_on_path_and_its_output_included(
    tmp_path: Path, sysfs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "uptrack-show"
    script.write_text("#!/bin/sh\necho 'Installed updates:'\necho '[abc123] CVE-2024-0001'\n")
    script.chmod(0o755)
    reports = {r.program: r for r in probe_tools(default_run, str(bin_dir))}
    uptrack = reports["uptrack-show"]
    assert uptrack.installed and uptrack.returncode == 0
    assert uptrack.argv == (str(script),)
    assert "[abc123] CVE-2024-0001" in uptrack.output
    assert not reports["kcarectl"].installed and not reports["canonical-livepatch"].installed

    args = ["livepatch", "status", "--json", "--sysfs", str(sysfs)]
    code = cli(args, default_run, str(bin_dir))
    tools = {t["program"]: t for t in json.loads(capsys.readouterr().out)["tools"]}
    assert code == 0
    assert "CVE-2024-0001" in tools["uptrack-show"]["output"]
    assert tools["kcarectl"]["output"] == "not installed"


def test_tool_status_commands_go_through_run(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("kcarectl", "canonical-livepatch"):
        (bin_dir / program).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / program).chmod(0o755)
    run = Recorder(RunResult(0, "fine\n"))
    reports = probe_tools(run, str(bin_dir))
    assert sorted(run.calls) == [
        (str(bin_dir / "canonical-livepatch"), "status"),
        (str(bin_dir / "kcarectl"), "--info"),
    ]
    assert [r.program for r in reports if r.installed] == ["kcarectl", "canonical-livepatch"]


def test_no_tool_installed_says_not_installed(
    tmp_path: Path, sysfs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["livepatch", "status", "--sysfs", str(sysfs)], None, empty_path(tmp_path)) == 0
    out = capsys.readouterr().out
    assert out.count("not installed") == 5


# ---------------------------------------------------------------------------------------------
# parsers and the command line


def test_parse_function_dir() -> None:
    assert parse_function_dir("cmdline_proc_show,1") == PatchedFunction("cmdline_proc_show", 1)
    assert parse_function_dir("odd") == PatchedFunction("odd", None)
    assert parse_function_dir("x,") == PatchedFunction("x,", None)


@given(st.text(max_size=60))
def test_fuzz_parse_function_dir_never_fails_and_keeps_the_name(name: str) -> None:
    func = parse_function_dir(name)
    assert func.name == name or f"{func.name},{func.sympos}" == name


@given(st.text(max_size=20))
def test_fuzz_parse_flag_accepts_only_0_and_1(text: str) -> None:
    try:
        value = parse_flag(text, "/f")
    except LivepatchError as error:
        assert "/f" in str(error)
        assert text.strip() not in ("0", "1")
    else:
        assert text.strip() == str(int(value))


@given(st.text(max_size=80))
def test_fuzz_plan_load_never_passes_an_option(target: str) -> None:
    state = LivepatchState(Path("/sys/kernel/livepatch"), supported=True)
    try:
        plan = plan_load(target, state, file_exists=True)
    except LivepatchError:
        return
    assert plan.argv[0] in ("insmod", "modprobe") and len(plan.argv) == 2
    assert not plan.argv[1].startswith("-")


def test_subcommand_is_required() -> None:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    with pytest.raises(SystemExit):
        parser.parse_args(["livepatch"])
    args = parser.parse_args(["livepatch", "disable", "p", "--wait", "2.5"])
    assert args.wait == 2.5 and args.name == "p" and callable(args.func)
