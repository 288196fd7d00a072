"""ocf:hastack:nbdfuse without root: its parameters, probes and stops when nothing runs, and a
missing nbdfuse. Serving an export for real (nbdfuse, a loop device, ext4) is in `hastack demo`
and its lab test (tests/lab/test_demo.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import hastack
from hastack.agents.builtin import nbdfuse
from hastack.agents.builtin.ocf import OcfRc

SRC = str(Path(hastack.__file__).resolve().parent.parent)


def run(
    action: str, tmp: Path, env: dict[str, str] | None = None, **params: str
) -> tuple[int, list[str]]:
    """Run one action as Pacemaker would; (rc, exit reasons)."""
    full = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": SRC,
        "HA_RSCTMP": str(tmp / "rsctmp"),
        "HA_VARRUN": str(tmp / "run"),
        "OCF_RESOURCE_INSTANCE": "disk",
        **{f"OCF_RESKEY_{k}": v for k, v in params.items()},
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "hastack.agents.builtin.nbdfuse", action],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
        check=False,
    )
    prefix = "ocf-exit-reason:"
    reasons = [x.removeprefix(prefix) for x in proc.stderr.splitlines() if x.startswith(prefix)]
    return proc.returncode, reasons


def good(tmp: Path) -> dict[str, str]:
    return {"uri": "nbd://127.0.0.1:10809/r0", "directory": str(tmp / "fuse")}


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"uri": "127.0.0.1:10809"}, "is not an NBD URI"),
        ({"directory": "relative/dir"}, "must be an absolute path"),
        ({"file": "a/b"}, "must be a plain file name"),
        ({"file": ".."}, "must be a plain file name"),
        ({"readonly": "perhaps"}, "is not a boolean"),
    ],
)
def test_bad_parameters_are_not_configured(
    override: dict[str, str], reason: str, tmp_path: Path
) -> None:
    rc, reasons = run("validate-all", tmp_path, **{**good(tmp_path), **override})
    assert rc == OcfRc.ERR_CONFIGURED
    assert reason in reasons[0]


def test_required_parameters(tmp_path: Path) -> None:
    rc, reasons = run("validate-all", tmp_path, directory=str(tmp_path))
    assert rc == OcfRc.ERR_CONFIGURED and "uri" in reasons[0]


def test_probe_and_stop_when_nothing_runs(tmp_path: Path) -> None:
    assert run("monitor", tmp_path, **good(tmp_path))[0] == OcfRc.NOT_RUNNING
    assert run("stop", tmp_path, **good(tmp_path))[0] == OcfRc.SUCCESS
    assert not (tmp_path / "fuse").exists()  # a stop creates nothing


def test_without_nbdfuse_it_is_not_installed_and_a_probe_says_not_running(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    no_tools = {"PATH": str(empty)}
    rc, reasons = run("start", tmp_path, env=no_tools, **good(tmp_path))
    assert rc == OcfRc.ERR_INSTALLED and "nbdfuse is not installed" in reasons[0]
    assert run("monitor", tmp_path, env=no_tools, **good(tmp_path))[0] == OcfRc.NOT_RUNNING
    recurring = {**no_tools, "OCF_RESKEY_CRM_meta_interval": "10000"}
    assert run("monitor", tmp_path, env=recurring, **good(tmp_path))[0] == OcfRc.ERR_INSTALLED


def test_a_process_is_ours_only_if_it_is_nbdfuse_serving_the_directory(tmp_path: Path) -> None:
    assert not nbdfuse._is_ours(os.getpid(), str(tmp_path))  # this is python, not nbdfuse
    assert not nbdfuse._is_ours(2**22 + 12345, str(tmp_path))  # no such process


def test_meta_data_advertises_the_parameters() -> None:
    names = [p.name for p in nbdfuse.INFO.params]
    assert names == ["uri", "directory", "file", "readonly", "pidfile", "logfile"]
    assert nbdfuse.INFO.param("uri").required and nbdfuse.INFO.param("directory").unique
