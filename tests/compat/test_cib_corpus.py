"""Pacemaker 2.1.5's scheduler corpus (799 real CIBs): every file reads, round-trips exactly,
and what we write gets the same crm_verify verdict as the original.

The corpus lives outside the project (``../shared/pacemaker-scheduler/xml`` beside the clone, or
``$HASTACK_PACEMAKER_CORPUS``); without it the module is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hastack.crm.cib.model import Bundle, Cib, Clone, Group, Primitive, Template
from hastack.crm.cib.xml import read_cib, write_cib

# ../shared beside the clone, as CI has it (a user's clone has none: the tests skip)
CORPUS = Path(
    os.environ.get(
        "HASTACK_PACEMAKER_CORPUS",
        Path(__file__).resolve().parents[2].parent / "shared" / "pacemaker-scheduler" / "xml",
    )
)
FILES = sorted(CORPUS.glob("*.xml")) if CORPUS.is_dir() else []

if not FILES:
    reason = f"Pacemaker scheduler corpus not found at {CORPUS} (set HASTACK_PACEMAKER_CORPUS)"
    print(f"SKIP: {reason}")
    pytest.skip(reason, allow_module_level=True)


def test_corpus_is_complete() -> None:
    assert len(FILES) == 799


def _named(cib: Cib) -> None:
    for r in cib.resources:
        assert isinstance(r, Primitive | Group | Clone | Bundle | Template)
        assert r.id, f"unnamed {type(r).__name__}"
    for p in cib.all_primitives():
        assert p.id and (p.type or p.template)


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_reads_and_round_trips(path: Path) -> None:
    cib = read_cib(path)
    _named(cib)
    out = write_cib(cib)
    again = read_cib(out, source=f"{path.name} (written)")
    assert again == cib
    assert write_cib(again) == out


def test_bundles_and_remote_nodes_are_named() -> None:
    cib = read_cib(CORPUS / "bundle-order-startup.xml")
    bundles = [r for r in cib.resources if isinstance(r, Bundle)]
    assert bundles and all(b.id and b.container_kind for b in bundles)
    remote = read_cib(CORPUS / "remote-startup.xml")
    assert remote.remote_node_names()


CRM_VERIFY = shutil.which("crm_verify")
SAMPLE = FILES[::25]


def _verdict(path: Path) -> int:
    return subprocess.run(
        [str(CRM_VERIFY), "-x", str(path)], capture_output=True, timeout=60, check=False
    ).returncode


@pytest.mark.skipif(CRM_VERIFY is None, reason="crm_verify (pacemaker-cli-utils) not installed")
@pytest.mark.parametrize("path", SAMPLE, ids=[f.name for f in SAMPLE])
def test_written_cib_same_crm_verify_verdict(path: Path, tmp_path: Path) -> None:
    written = tmp_path / path.name
    written.write_bytes(write_cib(read_cib(path)))
    assert _verdict(written) == _verdict(path)
