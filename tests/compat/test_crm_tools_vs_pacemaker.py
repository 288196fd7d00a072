"""The crm_attribute and crm_master hastack gives its agents, against Debian's Pacemaker 2.1.5
tools: the same command lines on the same CIB file (CIB_file) give the same exit code, the same
output and the same attributes (ids, names, values) in the CIB."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from hastack.agents.crm_tools import run
from tests.unit.test_agents_crm_tools import CIB  # the same two-node CIB

pytestmark = pytest.mark.skipif(
    shutil.which("crm_attribute") is None or shutil.which("crm_master") is None,
    reason="needs Pacemaker's crm_attribute and crm_master (pacemaker-cli-utils)",
)


# Every command names its node (-N): offline, Pacemaker's tools map this host's name instead.
STEPS: list[tuple[str, list[str]]] = [
    ("crm_attribute", ["--promotion", "-v", "5", "-N", "alpha"]),
    ("crm_attribute", ["--promotion", "-G", "-N", "alpha"]),
    ("crm_attribute", ["--promotion", "-G", "-q", "-N", "alpha"]),
    ("crm_attribute", ["-p", "web:1", "-v", "9", "-N", "alpha"]),
    ("crm_attribute", ["-p", "-n", "zz", "-v", "1", "-N", "alpha"]),  # still reboot
    ("crm_attribute", ["--promotion=web:1", "-G", "-N", "alpha"]),
    ("crm_master", ["-Q", "-l", "reboot", "-v", "100", "-N", "alpha"]),
    ("crm_master", ["-q", "-l", "reboot", "-G", "-N", "alpha"]),
    ("crm_master", ["-v", "3", "-N", "alpha"]),  # forever: <nodes>
    ("crm_master", ["-G", "-N", "alpha", "-r", "other"]),
    ("crm_attribute", ["-N", "alpha", "-n", "master-st", "-l", "forever", "-G", "-q"]),
    ("crm_attribute", ["-N", "alpha", "-n", "x", "-G", "-d", "7"]),
    ("crm_attribute", ["-N", "alpha", "-n", "x", "-G", "-d", "7", "-q"]),
    ("crm_attribute", ["-N", "alpha", "-n", "x", "-G"]),
    ("crm_attribute", ["-N", "alpha", "-n", "x", "-l", "reboot", "-v", "1", "-t", "nodes"]),
    ("crm_attribute", ["-N", "alpha", "-n", "x", "-G", "-v", "2"]),
    ("crm_attribute", ["-N", "alpha", "-n", "x", "-t", "nodes", "-G"]),
    ("crm_attribute", ["-n", "no-quorum-policy", "-v", "freeze"]),
    ("crm_attribute", ["-n", "no-quorum-policy", "-G", "-q"]),
    ("crm_attribute", ["-N", "alpha", "-n", "master-st", "-l", "reboot", "-D", "-q"]),
    ("crm_attribute", ["-N", "alpha", "-n", "nothing", "-l", "reboot", "-D"]),
    ("crm_attribute", ["--promotion", "-G", "-N", "alpha"]),
    ("crm_attribute", ["--bogus"]),
    ("crm_attribute", ["-N", "alpha", "-n"]),
    (
        "crm_attribute",
        ["-p", "-G"],
    ),  # without OCF_RESOURCE_INSTANCE below: usage
]


def attributes(path: Path) -> list[tuple[str, str, str, str]]:
    root = etree.parse(str(path)).getroot()
    return sorted(
        (p.getparent().getparent().tag, p.get("id"), p.get("name"), p.get("value"))
        for p in root.iter("nvpair")
    )


def test_the_same_command_lines_give_the_same_results(tmp_path: Path) -> None:
    theirs, ours = tmp_path / "pacemaker.xml", tmp_path / "hastack.xml"
    theirs.write_bytes(CIB)
    ours.write_bytes(CIB)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OCF_", "HASTACK_"))}
    for i, (tool, argv) in enumerate(STEPS):
        env = {**base, "OCF_RESOURCE_INSTANCE": "st"} if i < len(STEPS) - 1 else dict(base)
        real = subprocess.run(
            [tool, *argv],
            env={**env, "CIB_file": str(theirs)},
            capture_output=True,
            text=True,
            timeout=30,
        )
        code, out, err = run(tool, argv, {**env, "CIB_file": str(ours)})
        where = f"{tool} {' '.join(argv)}"
        assert code == real.returncode, f"{where}: {real.stderr}{err}"
        if out.startswith("Deleted "):  # Pacemaker also names the nvpair's id there
            assert real.stdout.startswith(out.split(": ")[0]), where
        else:
            assert out == real.stdout, where
        if code == 0:
            assert err == "", where
        assert attributes(ours) == attributes(theirs), where
