"""Pacemaker's own sample alert agent, unchanged, run by hastack's hooks (no root needed).

`/usr/share/pacemaker/alerts/alert_file.sh.sample` (Debian's pacemaker-common) is configured in
a CIB's <alerts> section exactly as its own header says, and `AlertRunner` runs it for a burst
of events: the lines it writes must be the ones Pacemaker would make it write, in event order
(Pacemaker itself runs agents in parallel and may not keep that order). Then a hook that hangs
(and leaves a child behind) is killed with its whole process group at its timeout, and the
hook after it still runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from pathlib import Path

import pytest

from hastack.crm.alert_runner import AlertRunner
from hastack.crm.alerts import parse_alerts
from hastack.crm.cib.xml import read_cib
from hastack.crm.events import ClusterEvent

NEEDS_ROOT = False  # plain subprocesses (see conftest)

SAMPLE = Path("/usr/share/pacemaker/alerts/alert_file.sh.sample")


@pytest.fixture(autouse=True)
def _needs_sample() -> None:
    if not (SAMPLE.is_file() and os.access(SAMPLE, os.X_OK)):
        reason = f"{SAMPLE} is missing or not executable (install Debian's pacemaker-common)"
        print(f"skipping: {reason}")
        pytest.skip(reason)


def cib_with(alerts: str) -> str:
    return (
        "<cib admin_epoch='0' epoch='1' num_updates='0' validate-with='pacemaker-3.9'>"
        "<configuration><crm_config/><nodes/><resources/><constraints/>"
        f"{alerts}</configuration><status/></cib>"
    )


def events(count: int, start_time: float) -> list[ClusterEvent]:
    """A burst: a node joins, resources start (one monitor fails), a node is fenced, an
    attribute changes; `count` resource starts in the middle."""
    out = [ClusterEvent.make(1, start_time, "node-joined", node="n2", previous="lost")]
    for i in range(count):
        out.append(
            ClusterEvent.make(
                len(out) + 1,
                start_time + 0.001 * len(out),
                "resource-started",
                node="n1",
                resource=f"r{i}",
                task="start",
                rc=0,
                target_rc=0,
                status=0,
                previous="Stopped",
            )
        )
    out.append(
        ClusterEvent.make(
            len(out) + 1,
            start_time + 0.5,
            "resource-failed",
            node="n1",
            resource="web",
            task="monitor",
            interval_ms=10_000,
            rc=7,
            target_rc=0,
            status=0,
            previous="Started",
        )
    )
    out.append(
        ClusterEvent.make(
            len(out) + 1,
            start_time + 0.6,
            "node-fenced",
            node="n2",
            task="reboot",
            rc=0,
            fields={"executioner": "n1", "origin": "hastack@n1"},
        )
    )
    out.append(
        ClusterEvent.make(
            len(out) + 1,
            start_time + 0.7,
            "attribute-changed",
            node="n1",
            fields={"name": "pingd", "value": "100"},
        )
    )
    return out


async def run_all(runner: AlertRunner, evs: list[ClusterEvent]) -> None:
    try:
        for event in evs:
            runner.feed(event)
        await asyncio.wait_for(runner.drain(), 60)
    finally:
        await runner.close()


def test_pacemakers_alert_file_sample_writes_every_event_in_order(tmp_path: Path) -> None:
    plain, ordered = tmp_path / "plain.log", tmp_path / "ordered.log"
    cib = read_cib(
        cib_with(
            f"""<alerts>
          <alert id="alert_sample" path="{SAMPLE}">
            <meta_attributes id="config_for_timestamp">
              <nvpair id="ts_fmt" name="timestamp-format" value="%H:%M:%S.%06N"/>
            </meta_attributes>
            <select><select_nodes/><select_fencing/><select_resources/><select_attributes/>
            </select>
            <recipient id="logfile_destination" value="{plain}"/>
            <recipient id="ordered_destination" value="{ordered}">
              <instance_attributes id="config_for_alert_file">
                <nvpair id="debug_option_1" name="debug_exec_order" value="true"/>
              </instance_attributes>
            </recipient>
          </alert>
        </alerts>"""
        )
    )
    config = parse_alerts(cib)
    assert config.problems == ()
    evs = events(12, time.time())
    runner = AlertRunner("n1", config)
    asyncio.run(run_all(runner, evs))
    assert runner.queue.completed == 2 * len(evs) and runner.queue.failed == 0

    stamp = r"\d\d:\d\d:\d\d\.\d{6}"
    lines = plain.read_text().splitlines()
    expected = [
        "Node 'n2' is now 'member'",
        *[f"Resource operation 'start' for 'r{i}' on 'n1': ok" for i in range(12)],
        "Resource operation 'monitor (10000)' for 'web' on 'n1': not running",
        "Fencing Operation reboot of n2 by n1 for hastack@n1: OK",
        "Attribute 'pingd' on node 'n1' was updated to '100'",
    ]
    assert len(lines) == len(expected)
    for line, text in zip(lines, expected, strict=True):
        assert re.fullmatch(rf"{stamp}: {re.escape(text)}", line), line
    # debug_exec_order: the agent prints CRM_alert_node_sequence first: strictly in order
    sequences = [int(line.split(".", 1)[0]) for line in ordered.read_text().splitlines()]
    assert sequences == [e.seq for e in evs]


def test_a_hanging_hook_is_killed_at_its_timeout_and_the_next_one_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pids = tmp_path / "pids"
    hang = tmp_path / "hang.sh"
    hang.write_text(f'#!/bin/sh\nsleep 300 &\necho $$ $! >> "{pids}"\nwait\n')
    hang.chmod(0o755)
    out = tmp_path / "after.log"
    config = parse_alerts(
        cib_with(
            f"""<alerts>
          <alert id="hang" path="{hang}">
            <meta_attributes id="m"><nvpair id="t" name="timeout" value="1s"/></meta_attributes>
          </alert>
          <alert id="after" path="{SAMPLE}"><recipient id="r" value="{out}"/></alert>
        </alerts>"""
        )
    )
    evs = [
        ClusterEvent.make(1, time.time(), "node-lost", node="n2", previous="member"),
        ClusterEvent.make(2, time.time(), "node-joined", node="n2", previous="lost"),
    ]
    runner = AlertRunner("n1", config)
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="hastack.crm.alert_runner"):
        asyncio.run(run_all(runner, evs))
    elapsed = time.monotonic() - started
    assert 2.0 <= elapsed < 6.0, f"two 1 s timeouts, then the sample: took {elapsed:.2f}s"
    lines = out.read_text().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "Node 'n2' is now 'lost'",
        "Node 'n2' is now 'member'",
    ]
    assert runner.queue.failed == 2 and runner.queue.completed == 2
    timeouts = [r for r in caplog.records if getattr(r, "event", "") == "alert-timeout"]
    assert len(timeouts) == 2
    # the hook and the child it left running were killed with their process group
    killed = [int(pid) for line in pids.read_text().splitlines() for pid in line.split()]
    assert len(killed) == 4
    deadline = time.monotonic() + 5
    alive = killed
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in killed if _running(pid)]
        time.sleep(0.05)
    assert alive == [], f"processes of the hung hook still running: {alive}"


def _running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting for a parent that is not us."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
