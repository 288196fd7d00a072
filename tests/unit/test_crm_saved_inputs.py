"""hastack.crm.saved_inputs: the scheduler's inputs kept as pe-input-N.bz2, bounded, and
replayable by hastack and by crm_simulate."""

from __future__ import annotations

import bz2
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hastack.cli.main import main
from hastack.crm.cib.model import CibError
from hastack.crm.cib.validate import validate
from hastack.crm.cib.xml import read_cib
from hastack.crm.saved_inputs import InputStore, series_limit

CIB = b"""<cib validate-with="pacemaker-3.7" admin_epoch="0" epoch="4" num_updates="0"
  have-quorum="1">
  <configuration>
    <crm_config><cluster_property_set id="o">
      <nvpair id="o-s" name="stonith-enabled" value="false"/>
    </cluster_property_set></crm_config>
    <nodes><node id="1" uname="node1"/><node id="2" uname="node2"/></nodes>
    <resources><primitive id="web" class="ocf" provider="heartbeat" type="Dummy"/></resources>
    <constraints>
      <rsc_location id="prefer" rsc="web" node="node2" score="100"/>
    </constraints>
  </configuration>
  <status>
    <node_state id="1" uname="node1" in_ccm="true" crmd="online" join="member"
      expected="member"/>
    <node_state id="2" uname="node2" in_ccm="true" crmd="online" join="member"
      expected="member"/>
  </status>
</cib>
"""


def test_inputs_are_numbered_per_series_and_read_back(tmp_path: Path) -> None:
    store = InputStore(tmp_path / "pe")
    first = store.save(CIB)
    second = store.save(CIB.replace(b'epoch="4"', b'epoch="5"'))
    warn = store.save(CIB, series="pe-warn")
    assert first is not None and second is not None and warn is not None
    assert [first.path.name, second.path.name, warn.path.name] == [
        "pe-input-0.bz2",
        "pe-input-1.bz2",
        "pe-warn-0.bz2",
    ]
    assert store.load(first) == CIB
    assert bz2.decompress(second.path.read_bytes()).count(b'epoch="5"') == 1
    assert (tmp_path / "pe" / "pe-input.last").read_text() == "2\n"
    latest = store.latest()
    assert latest is not None and latest.number == 1
    assert [s.series for s in store.entries()].count("pe-input") == 2


def test_a_series_wraps_at_its_bound(tmp_path: Path) -> None:
    store = InputStore(tmp_path)
    numbers = []
    for i in range(5):
        saved = store.save(CIB.replace(b'epoch="4"', f'epoch="{i}"'.encode()), limit=3)
        assert saved is not None
        numbers.append(saved.number)
    assert numbers == [0, 1, 2, 0, 1]
    assert sorted(p.name for p in tmp_path.glob("pe-input-*.bz2")) == [
        "pe-input-0.bz2",
        "pe-input-1.bz2",
        "pe-input-2.bz2",
    ]
    assert b'epoch="4"' in store.load(tmp_path / "pe-input-1.bz2")  # the newest overwrote it


def test_a_bound_of_zero_keeps_nothing_and_a_negative_one_everything(tmp_path: Path) -> None:
    store = InputStore(tmp_path / "none")
    assert store.save(CIB, limit=0) is None
    assert not (tmp_path / "none").exists()
    unbounded = InputStore(tmp_path / "all")
    for _ in range(5):
        unbounded.save(CIB, limit=-1)
    assert len(unbounded.entries()) == 5


def test_a_damaged_sequence_file_never_overwrites_the_newest_input(tmp_path: Path) -> None:
    store = InputStore(tmp_path)
    for _ in range(3):
        store.save(CIB)
    (tmp_path / "pe-input.last").write_text("garbage")
    saved = store.save(CIB)
    assert saved is not None and saved.number == 3
    (tmp_path / "pe-input.last").unlink()
    saved = store.save(CIB)
    assert saved is not None and saved.number == 4


def test_an_unknown_series_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown series"):
        InputStore(tmp_path).save(CIB, series="pe-debug")  # type: ignore[arg-type]


def test_series_limit_from_the_cluster_options() -> None:
    assert series_limit({}, "pe-input") == 4000
    assert series_limit({"pe-input-series-max": "50"}, "pe-input") == 50
    assert series_limit({"pe-error-series-max": "-1"}, "pe-error") == -1
    assert series_limit({"pe-warn-series-max": "lots"}, "pe-warn") == 4000


def test_a_saved_input_reads_validates_and_replays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = InputStore(tmp_path).save(CIB)
    assert saved is not None
    assert read_cib(saved.path).epoch == 4
    assert not [p for p in validate(saved.path.read_bytes(), "x") if p.severity == "error"]
    assert main(["simulate", "-x", str(saved.path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["placement"]["web"] == [{"node": "node2", "role": "Started"}]
    assert main(["cib", "property", "-x", str(saved.path), "stonith-enabled"]) == 0
    assert capsys.readouterr().out == "false\n"


def test_a_saved_input_is_not_edited_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = InputStore(tmp_path).save(CIB)
    assert saved is not None
    before = saved.path.read_bytes()
    assert main(["cib", "property", "-x", str(saved.path), "a", "1"]) == 1
    assert "compressed" in capsys.readouterr().err
    assert saved.path.read_bytes() == before


def test_a_damaged_compressed_file_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "pe-input-9.bz2"
    broken.write_bytes(bz2.compress(CIB)[:40])
    with pytest.raises(CibError, match="damaged bzip2"):
        read_cib(broken)
    assert "damaged bzip2" in validate(broken.read_bytes(), str(broken))[0].message


def test_crm_simulate_replays_a_saved_input(tmp_path: Path) -> None:
    if shutil.which("crm_simulate") is None:
        msg = "crm_simulate (pacemaker-cli-utils) not installed: cannot replay with it"
        print(msg)
        pytest.skip(msg)
    saved = InputStore(tmp_path).save(CIB)
    assert saved is not None
    done = subprocess.run(
        ["crm_simulate", "-x", str(saved.path), "-S"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, LC_ALL="C"),
    )
    assert done.returncode == 0, done.stderr
    assert "Start      web     ( node2 )" in done.stdout
