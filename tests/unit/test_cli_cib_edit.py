"""`hastack cib query|create|modify|replace|delete|property|node-attribute|resource-attribute|
default` on a CIB file."""

from __future__ import annotations

import argparse
import json
import os
import stat
from pathlib import Path

import pytest
from lxml import etree

from hastack.cli import cib_cmd
from hastack.crm.cib.validate import DEFAULT_SCHEMA_DIR

CIB = b"""<cib validate-with="pacemaker-3.7" admin_epoch="0" epoch="3" num_updates="1">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="false"/>
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1" uname="node1"/>
      <node id="2" uname="node2"/>
    </nodes>
    <resources>
      <primitive id="db" class="ocf" provider="heartbeat" type="Dummy"/>
    </resources>
    <constraints>
      <rsc_location id="loc" rsc="db" node="node2" score="100"/>
    </constraints>
  </configuration>
  <status/>
</cib>
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="hastack")
    cib_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cib", *argv])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cib(tmp_path: Path) -> Path:
    path = tmp_path / "cib.xml"
    path.write_bytes(CIB)
    return path


def need_schemas() -> None:
    if not (DEFAULT_SCHEMA_DIR / "pacemaker-3.7.rng").exists():
        pytest.skip("Debian's pacemaker-schemas is not installed: no schema to validate against")


def test_property_show_set_and_delete(capsys: pytest.CaptureFixture[str], cib: Path) -> None:
    assert run(capsys, "property", "-x", str(cib), "stonith-enabled")[:2] == (0, "false\n")
    code, out, _ = run(capsys, "property", "-x", str(cib), "no-quorum-policy", "freeze")
    assert code == 0 and "set no-quorum-policy=freeze" in out and "version 0.4.0" in out
    assert run(capsys, "property", "-x", str(cib), "no-quorum-policy")[1] == "freeze\n"
    assert run(capsys, "property", "-x", str(cib), "no-quorum-policy", "-D")[0] == 0
    code, _, err = run(capsys, "property", "-x", str(cib), "no-quorum-policy")
    assert code == 1 and "no-quorum-policy is not set" in err


def test_property_json(capsys: pytest.CaptureFixture[str], cib: Path) -> None:
    code, out, _ = run(capsys, "property", "-x", str(cib), "stonith-enabled", "--json")
    assert code == 0
    assert json.loads(out) == {
        "name": "stonith-enabled",
        "values": [{"set": "cib-bootstrap-options", "value": "false"}],
    }


def test_the_cib_file_comes_from_cib_file_as_for_pacemakers_tools(
    capsys: pytest.CaptureFixture[str], cib: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIB_file", str(cib))
    assert run(capsys, "property", "stonith-enabled")[:2] == (0, "false\n")
    monkeypatch.delenv("CIB_file")
    code, _, err = run(capsys, "property", "stonith-enabled")
    assert code == 1 and "give -x FILE or set CIB_file" in err


def test_node_resource_and_default_attributes(
    capsys: pytest.CaptureFixture[str], cib: Path
) -> None:
    assert run(capsys, "node-attribute", "-x", str(cib), "node1", "standby", "on")[0] == 0
    assert run(capsys, "resource-attribute", "-x", str(cib), "db", "fake", "1")[0] == 0
    meta = ("resource-attribute", "-x", str(cib), "db", "target-role", "Stopped", "--meta")
    assert run(capsys, *meta)[0] == 0
    assert run(capsys, "default", "-x", str(cib), "rsc", "resource-stickiness", "10")[0] == 0
    root = etree.parse(str(cib)).getroot()
    assert root.xpath('//node[@uname="node1"]//nvpair[@name="standby"]/@value') == ["on"]
    assert root.xpath('//primitive[@id="db"]/instance_attributes//@value') == ["1"]
    assert root.xpath('//primitive[@id="db"]/meta_attributes//@value') == ["Stopped"]
    assert root.xpath("//rsc_defaults//nvpair/@value") == ["10"]
    assert root.get("epoch") == "7"


def test_an_error_names_what_is_allowed_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], cib: Path
) -> None:
    code, _, err = run(capsys, "node-attribute", "-x", str(cib), "node9", "standby", "on")
    assert code == 1 and "no node named 'node9'" in err and "node1, node2" in err
    assert cib.read_bytes() == CIB


def test_a_value_and_delete_together_is_an_error(
    capsys: pytest.CaptureFixture[str], cib: Path
) -> None:
    code, _, err = run(capsys, "property", "-x", str(cib), "x", "1", "--delete")
    assert code == 1 and "not both" in err


def test_dry_run_shows_the_change_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], cib: Path
) -> None:
    code, out, _ = run(capsys, "property", "-x", str(cib), "maintenance-mode", "true", "--dry-run")
    assert code == 0
    assert '+        <nvpair id="cib-bootstrap-options-maintenance-mode"' in out
    assert "dry run" in out
    assert cib.read_bytes() == CIB


def test_an_invalid_result_is_refused_and_forced(
    capsys: pytest.CaptureFixture[str], cib: Path
) -> None:
    need_schemas()
    bad = '<primitive id="p" type="Dummy"/>'  # no class: the schema refuses it
    code, _, err = run(capsys, "create", "-x", str(cib), "-o", "resources", bad)
    assert code == 1 and "refused" in err and 'primitive id="p"' in err
    assert cib.read_bytes() == CIB
    code, _, err = run(capsys, "create", "-x", str(cib), "-o", "resources", bad, "--force")
    assert code == 0 and "do not match the schema" in err  # written, and still reported
    assert etree.parse(str(cib)).getroot().xpath('//primitive[@id="p"]')


def test_create_modify_replace_delete(capsys: pytest.CaptureFixture[str], cib: Path) -> None:
    x = ("-x", str(cib))
    web = '<primitive id="web" class="lsb" type="apache2"/>'
    assert run(capsys, "create", *x, "-o", "resources", web)[0] == 0
    assert run(capsys, "modify", *x, '<primitive id="web" description="site"/>')[0] == 0
    new_loc = '<rsc_location id="loc" rsc="db" node="node1" score="5"/>'
    assert run(capsys, "replace", *x, new_loc)[0] == 0
    code, _, err = run(capsys, "delete", *x, "--id", "db")
    assert code == 1 and '<rsc_location id="loc">' in err and "--cascade" in err
    assert run(capsys, "delete", *x, "--id", "db", "--cascade")[0] == 0
    root = etree.parse(str(cib)).getroot()
    assert root.xpath('//primitive[@id="web"]/@description') == ["site"]
    assert not root.xpath('//primitive[@id="db"]') and not root.xpath("//rsc_location")
    code, _, err = run(capsys, "delete", *x)
    assert code == 1 and "either the XML element or --id" in err


def test_xml_from_stdin_and_from_a_file(
    capsys: pytest.CaptureFixture[str],
    cib: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO('<primitive id="a" class="lsb" type="a"/>'))
    assert run(capsys, "create", "-x", str(cib), "-o", "resources", "-")[0] == 0
    fragment = tmp_path / "b.xml"
    fragment.write_text('<primitive id="b" class="lsb" type="b"/>')
    args = ("create", "-x", str(cib), "-o", "resources", "--xml-text-file", str(fragment))
    assert run(capsys, *args)[0] == 0
    assert run(capsys, "create", "-x", str(cib), "-o", "resources", "<primitive")[0] == 1
    root = etree.parse(str(cib)).getroot()
    assert root.xpath("//primitive/@id") == ["db", "a", "b"]


def test_query(capsys: pytest.CaptureFixture[str], cib: Path) -> None:
    code, out, _ = run(capsys, "query", "-x", str(cib), "--xpath", "//primitive")
    assert code == 0 and out.startswith('<primitive id="db"')
    code, out, _ = run(capsys, "query", "-x", str(cib), "-o", "nodes")
    assert code == 0 and out.startswith("<nodes>") and 'uname="node2"' in out
    code, _, err = run(capsys, "query", "-x", str(cib), "--xpath", "//group")
    assert code == 1 and "nothing matches" in err


def test_the_file_keeps_its_mode_and_is_replaced_whole(
    capsys: pytest.CaptureFixture[str], cib: Path
) -> None:
    os.chmod(cib, 0o640)
    inode = cib.stat().st_ino
    assert run(capsys, "property", "-x", str(cib), "a", "1")[0] == 0
    assert stat.S_IMODE(cib.stat().st_mode) == 0o640
    assert cib.stat().st_ino != inode  # renamed over, never rewritten in place
    assert not [p for p in cib.parent.iterdir() if p.name.endswith(".new")]


def test_concurrent_edits_are_all_kept(cib: Path) -> None:
    """Edits from several processes at once: the lock makes each one see the one before."""
    import subprocess
    import sys

    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hastack.cli.main",
                "cib",
                "property",
                "-x",
                str(cib),
                f"opt-{i}",
                str(i),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(6)
    ]
    for proc in procs:
        assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""
    root = etree.parse(str(cib)).getroot()
    names = sorted(root.xpath("//crm_config//nvpair/@name"))
    assert names == sorted([f"opt-{i}" for i in range(6)] + ["stonith-enabled"])
    assert root.get("epoch") == "9"


def test_an_unreadable_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "property", "-x", str(tmp_path / "none.xml"), "a", "1")
    assert code == 1 and "No such file" in err
