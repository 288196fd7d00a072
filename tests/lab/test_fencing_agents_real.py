"""Real fence devices run by hastack.fencing.runners: Debian's fence_dummy (fence-agents),
cluster-glue's stonith command with its null and meatware plugins (meatware confirmed by a
real meatclient), and hastack/external scripts that hang.

No namespaces are needed (NEEDS_ROOT = False: these are not marked lab). meatware makes its
FIFO in /run, which needs root: those tests skip, saying so, when not root. A test skips
(printing why) only when the tool it runs is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hastack.fencing.runners import (
    DeviceCall,
    DeviceResult,
    agent_metadata,
    run_device,
)

NEEDS_ROOT = False

FENCE_DUMMY = Path("/usr/sbin/fence_dummy")
STONITH = Path("/usr/sbin/stonith")
MEATCLIENT = Path("/usr/sbin/meatclient")
MEAT_FIFO_DIR = Path("/run")  # meatware's FIFO: /run/meatware.NODE (HA_VARRUNDIR)


def need(path: Path, package: str) -> None:
    if not os.access(path, os.X_OK):
        reason = f"{path} is not installed (Debian package {package})"
        print(f"skipping: {reason}")
        pytest.skip(reason)


def need_root(why: str) -> None:
    if os.geteuid() != 0:
        reason = f"needs root: {why}"
        print(f"skipping: {reason}")
        pytest.skip(reason)


def run(call: DeviceCall) -> DeviceResult:
    return asyncio.run(run_device(call))


def gone(pid: int) -> bool:
    """The process is gone or a zombie nobody reaped yet (it runs nothing either way)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return gone(pid)


# ---- fence_dummy -----------------------------------------------------------------------------


def dummy(action: str, status_file: Path, timeout: float = 30, **params: str) -> DeviceCall:
    target = None if action in ("monitor", "list", "metadata") else "node1"
    return DeviceCall(
        "dummy",
        "fence_dummy",
        action,
        target,
        None,
        {"status_file": str(status_file), **params},
        timeout,
    )


def test_fence_dummy_power_cycle(tmp_path: Path) -> None:
    need(FENCE_DUMMY, "fence-agents")
    status_file = tmp_path / "power"
    status_file.write_text("on")

    status = run(dummy("status", status_file))
    assert (status.ok, status.power, status.rc) == (True, "on", 0)

    off = run(dummy("off", status_file))
    assert (off.ok, off.rc, off.reason) == (True, 0, "")
    assert status_file.read_text() == "off"  # the agent read status_file= from stdin
    status = run(dummy("status", status_file))
    assert (status.ok, status.power, status.rc) == (True, "off", 2)

    on = run(dummy("on", status_file))
    assert on.ok and status_file.read_text() == "on"
    assert run(dummy("status", status_file)).power == "on"

    reboot = run(dummy("reboot", status_file))
    assert reboot.ok and "Rebooted" in reboot.output
    assert status_file.read_text() == "on"  # off, then on again

    monitor = run(dummy("monitor", status_file))
    assert (monitor.ok, monitor.rc) == (True, 0)


def test_fence_dummy_cannot_list(tmp_path: Path) -> None:
    # fence_dummy has no plugs: it does not offer list, and says so (exit 1).
    need(FENCE_DUMMY, "fence-agents")
    listed = run(dummy("list", tmp_path / "power"))
    assert (listed.ok, listed.rc, listed.targets) == (False, 1, None)
    assert listed.reason == "exit 1: ERROR: Failed: Unrecognised action 'list'"


def test_fence_dummy_metadata(tmp_path: Path) -> None:
    need(FENCE_DUMMY, "fence-agents")
    result = run(dummy("metadata", tmp_path / "power"))
    assert result.ok and result.rc == 0
    meta = asyncio.run(agent_metadata("fence_dummy"))
    assert meta.source == "fence-agent"
    assert meta.shortdesc == "Dummy fence agent"
    status_file = meta.parameter("status_file")
    assert status_file is not None and not status_file.required
    assert status_file.default == "/tmp/fence_dummy.status"
    assert meta.port_parameter() is None  # so no plug= line is written
    for action in ("on", "off", "reboot", "status", "monitor", "metadata"):
        assert meta.supports(action)
    assert not meta.supports("list")


def test_fence_dummy_fail_mode(tmp_path: Path) -> None:
    # type=fail: the power never changes; power_timeout=1 makes the agent give up quickly.
    need(FENCE_DUMMY, "fence-agents")
    off = run(dummy("off", tmp_path / "power", type="fail", power_timeout="1"))
    assert (off.ok, off.rc) == (False, 1)
    assert off.reason == "exit 1: ERROR: Failed: Timed out waiting to power OFF"


def test_fence_dummy_killed_at_the_timeout(tmp_path: Path) -> None:
    # delay=30: the agent waits 30 s before it acts; we give it 1.5 s.
    need(FENCE_DUMMY, "fence-agents")
    status_file = tmp_path / "power"
    status_file.write_text("on")
    started = time.monotonic()
    off = run(dummy("off", status_file, timeout=1.5, delay="30"))
    assert (off.ok, off.rc) == (False, None)
    assert off.reason.startswith("timed out after 1.5 s")
    assert time.monotonic() - started < 6
    assert status_file.read_text() == "on"  # killed before it acted


def test_fence_dummy_password_is_masked(tmp_path: Path) -> None:
    # fence_dummy warns about an option it does not know, quoting the line: with the password.
    need(FENCE_DUMMY, "fence-agents")
    result = run(dummy("monitor", tmp_path / "power", ssh_password="swordfish42"))
    assert result.ok
    assert "swordfish42" not in result.output
    assert "ssh_password=***" in result.output


# ---- hastack/external: hanging scripts -------------------------------------------------------


def external(script: Path, action: str = "off", timeout: float = 1.0) -> DeviceCall:
    return DeviceCall(
        "ext", "hastack/external", action, "node1", None, {"script": str(script)}, timeout
    )


def test_hanging_external_script_and_its_child_are_killed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = tmp_path / "hang.sh"
    script.write_text(f"#!/bin/sh\nsleep 300 &\necho $$ $! > {pids}\nwait\n")
    script.chmod(0o755)
    started = time.monotonic()
    result = run(external(script, timeout=1.0))
    elapsed = time.monotonic() - started
    assert (result.ok, result.rc) == (False, None)
    assert result.reason == "timed out after 1 s"
    assert 0.9 < elapsed < 4
    parent, child = map(int, pids.read_text().split())
    assert wait_gone(parent) and wait_gone(child)


def test_external_script_ignoring_sigterm_gets_sigkill(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = tmp_path / "stubborn.sh"
    script.write_text(
        "#!/bin/sh\ntrap '' TERM\n"
        f"sh -c \"trap '' TERM; while :; do sleep 0.1; done\" &\necho $$ $! > {pids}\n"
        "echo still here\nwhile :; do sleep 0.1; done\n"
    )
    script.chmod(0o755)
    started = time.monotonic()
    result = run(external(script, timeout=0.5))
    elapsed = time.monotonic() - started
    assert not result.ok and result.rc is None
    assert result.reason == (
        "timed out after 0.5 s (killed with SIGKILL 2 s after SIGTERM): still here"
    )
    assert 2.4 < elapsed < 6
    parent, child = map(int, pids.read_text().split())
    assert wait_gone(parent) and wait_gone(child)


# ---- cluster-glue: stonith with null and meatware --------------------------------------------


def glue(
    plugin: str, action: str, target: str | None, hostlist: str | None, timeout: float = 20
) -> DeviceCall:
    params = {} if hostlist is None else {"hostlist": hostlist}
    return DeviceCall("glue", plugin, action, target, None, params, timeout)


def test_glue_null_plugin() -> None:
    need(STONITH, "cluster-glue")
    hosts = "node1 node2"
    reset = run(glue("null", "reboot", "node1", hosts))
    assert (reset.ok, reset.rc) == (True, 0)
    assert "null-reset: node1" in reset.output  # stonith's log line, sent to our stderr

    status = run(glue("null", "status", "node2", hosts))
    assert (status.ok, status.power, status.rc) == (True, None, 0)  # glue cannot tell power
    stranger = run(glue("null", "status", "node9", hosts))
    assert not stranger.ok
    assert stranger.reason == "the device does not list node9 (it lists: node1, node2)"

    listed = run(glue("null", "list", None, hosts))
    assert (listed.ok, listed.targets) == (True, ("node1", "node2"))
    assert run(glue("null", "monitor", None, hosts)).ok


def test_glue_null_without_its_hostlist_fails() -> None:
    need(STONITH, "cluster-glue")
    result = run(glue("null", "monitor", None, None))
    assert not result.ok and result.rc == 3
    assert result.reason.startswith("exit 3 (S_INVAL")
    assert "Invalid config info for null device" in result.output


def test_glue_unknown_plugin() -> None:
    need(STONITH, "cluster-glue")
    result = run(glue("hastack-no-such-plugin", "reboot", "node1", "node1"))
    assert (result.ok, result.rc) == (False, 8)
    assert result.reason == (
        "exit 8 (S_OOPS: internal error, or no such plugin type): "
        "ERROR: Invalid device type: 'hastack-no-such-plugin'"
    )


def test_glue_metadata() -> None:
    need(STONITH, "cluster-glue")
    meta = asyncio.run(agent_metadata("null"))
    assert meta.source == "glue"
    assert meta.shortdesc == "NULL STONITH device"
    hostlist = meta.parameter("hostlist")
    assert hostlist is not None and hostlist.required
    assert run(glue("meatware", "metadata", None, None)).ok


@pytest.fixture
def meat_target() -> Iterator[str]:
    """A node name no one else uses; its FIFO is removed afterwards."""
    name = f"hsmeat{os.getpid()}x{time.monotonic_ns() % 100000}"
    yield name
    with contextlib.suppress(FileNotFoundError):
        (MEAT_FIFO_DIR / f"meatware.{name}").unlink()


async def _confirm(target: str, answer: bytes) -> tuple[int, str]:
    fifo = MEAT_FIFO_DIR / f"meatware.{target}"
    deadline = time.monotonic() + 10
    while not fifo.exists():
        assert time.monotonic() < deadline, f"meatware made no FIFO {fifo}"
        await asyncio.sleep(0.02)
    proc = await asyncio.create_subprocess_exec(
        str(MEATCLIENT),
        "-c",
        target,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(answer), 10)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def _meatware(target: str, answer: bytes) -> tuple[DeviceResult, int, str]:
    async def body() -> tuple[DeviceResult, int, str]:
        fence = asyncio.create_task(run_device(glue("meatware", "reboot", target, target, 20)))
        rc, said = await _confirm(target, answer)
        return await fence, rc, said

    return asyncio.run(body())


def test_meatware_confirmed_by_meatclient(meat_target: str) -> None:
    need(STONITH, "cluster-glue")
    need(MEATCLIENT, "cluster-glue")
    need_root("meatware makes its FIFO in /run")
    result, rc, said = _meatware(meat_target, b"y\n")
    assert rc == 0 and "reset confirmed" in said
    assert (result.ok, result.rc) == (True, 0)
    assert "OPERATOR INTERVENTION REQUIRED" in result.output
    assert result.seconds < 15


def test_meatware_declined_by_the_operator(meat_target: str) -> None:
    need(STONITH, "cluster-glue")
    need(MEATCLIENT, "cluster-glue")
    need_root("meatware makes its FIFO in /run")
    result, rc, said = _meatware(meat_target, b"n\n")
    assert "operation canceled" in said and rc != 0
    assert (result.ok, result.rc) == (False, 5)
    assert result.reason.startswith("exit 5 (S_RESETFAIL")


def test_meatware_without_confirmation_times_out(meat_target: str) -> None:
    need(STONITH, "cluster-glue")
    need_root("meatware makes its FIFO in /run")
    started = time.monotonic()
    result = run(glue("meatware", "off", meat_target, meat_target, timeout=1.0))
    assert (result.ok, result.rc) == (False, None)
    assert result.reason.startswith("timed out after 1 s")
    assert "OPERATOR INTERVENTION REQUIRED" in result.output
    assert time.monotonic() - started < 5
    # The stonith process is gone: nobody holds the FIFO open for reading any more.
    fifo = MEAT_FIFO_DIR / f"meatware.{meat_target}"
    if fifo.exists():
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader
            return
        os.close(fd)
        pytest.fail("a reader still holds the meatware FIFO open")
