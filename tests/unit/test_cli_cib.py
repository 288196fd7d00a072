"""`hastack cib verify|show` and `hastack convert haresources`, on a fresh argparse parser."""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

import pytest
from lxml import etree

from hastack.cli import cib_cmd, convert_cmd
from hastack.crm.cib.validate import DEFAULT_SCHEMA_DIR

VALID = b"""<cib validate-with="pacemaker-3.7" admin_epoch="0" epoch="3" num_updates="7">
  <configuration>
    <crm_config>
      <cluster_property_set id="opts">
        <nvpair id="opts-stonith" name="stonith-enabled" value="false"/>
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1" uname="node1">
        <instance_attributes id="n1-attrs"><nvpair id="n1-standby" name="standby" value="on"/>
        </instance_attributes>
      </node>
      <node id="2" uname="node2"/>
    </nodes>
    <resources>
      <group id="web">
        <primitive id="ip" class="ocf" provider="heartbeat" type="IPaddr2">
          <instance_attributes id="ip-p"><nvpair id="ip-p-ip" name="ip" value="10.0.0.9"/>
          </instance_attributes>
          <operations><op id="ip-mon" name="monitor" interval="10s"/></operations>
        </primitive>
        <primitive id="httpd" class="lsb" type="apache2"/>
      </group>
      <clone id="ms">
        <meta_attributes id="ms-m"><nvpair id="ms-m-p" name="promotable" value="true"/>
        </meta_attributes>
        <primitive id="st" class="ocf" provider="pacemaker" type="Stateful"/>
      </clone>
    </resources>
    <constraints>
      <rsc_location id="loc" rsc="web" node="node2" score="INFINITY"/>
      <rsc_colocation id="col" rsc="web" with-rsc="ms" with-rsc-role="Promoted" score="INFINITY"/>
      <rsc_order id="ord" first="ms" first-action="promote" then="web" then-action="start"/>
    </constraints>
  </configuration>
  <status>
    <node_state id="2" uname="node2" in_ccm="true" crmd="online" join="member" expected="member">
      <lrm id="2"><lrm_resources>
        <lrm_resource id="ip" class="ocf" provider="heartbeat" type="IPaddr2">
          <lrm_rsc_op id="ip_last_0" operation_key="ip_start_0" operation="start" call-id="4"
            rc-code="0" op-status="0" interval="0" crm-debug-origin="x" crm_feature_set="3.0.14"
            transition-key="1:1:0:abc" transition-magic="0:0;1:1:0:abc" exec-time="1"
            queue-time="0" op-digest="x"/>
        </lrm_resource>
      </lrm_resources></lrm>
    </node_state>
  </status>
</cib>
"""

HARESOURCES = "node1 10.0.0.1/24/eth0 httpd\nnode2 Filesystem::/dev/sdb1::/srv::ext4\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hastack")
    sub = p.add_subparsers(dest="command", required=True)
    cib_cmd.register(sub)
    convert_cmd.register(sub)
    return p


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    args = parser().parse_args(list(argv))
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def need_schemas() -> None:
    if not (DEFAULT_SCHEMA_DIR / "pacemaker-3.7.rng").exists():
        pytest.skip("Debian's pacemaker-schemas is not installed")


@pytest.fixture
def valid(tmp_path: Path) -> Path:
    path = tmp_path / "cib.xml"
    path.write_bytes(VALID)
    return path


# --- cib verify --------------------------------------------------------------------------------


def test_verify_a_valid_cib(capsys: pytest.CaptureFixture[str], valid: Path) -> None:
    need_schemas()
    code, out, _ = run(capsys, "cib", "verify", str(valid))
    assert code == 0 and out == f"{valid}: valid\n"


def test_verify_an_invalid_cib_lists_problems(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.xml"
    path.write_bytes(VALID.replace(b'with-rsc="ms"', b'with-rsc="ghost"'))
    code, out, _ = run(capsys, "cib", "verify", str(path), "--schema-dir", str(tmp_path))
    lines = out.splitlines()
    assert code == 1
    assert any(line.startswith(f'{path}:32: <rsc_colocation id="col">: ') for line in lines)
    assert lines[-1] == f"{path}: not valid: 1 error, 1 warning"


def test_verify_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.xml"
    path.write_bytes(b"<cib>\n<oops>\n</cib>")
    code, out, _ = run(capsys, "cib", "verify", str(path), "--json")
    document = json.loads(out)
    assert code == 1 and document["valid"] is False and document["errors"] == 1
    assert document["problems"][0]["line"] == 3
    assert document["problems"][0]["severity"] == "error"


def test_verify_reads_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    need_schemas()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(VALID)))
    code, out, _ = run(capsys, "cib", "verify", "-")
    assert code == 0 and out == "<stdin>: valid\n"


def test_verify_an_unreadable_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "cib", "verify", str(tmp_path / "nope.xml"))
    assert code == 1 and "cannot read: No such file or directory" in err


# --- cib show ----------------------------------------------------------------------------------


def test_show_text(capsys: pytest.CaptureFixture[str], valid: Path) -> None:
    code, out, _ = run(capsys, "cib", "show", str(valid))
    assert code == 0
    assert "validate-with pacemaker-3.7, epoch 0:3:7" in out
    assert "cluster options: stonith-enabled=false" in out
    assert "  node1 (id 1)  standby=on" in out
    assert "  group web\n    primitive ip (ocf:heartbeat:IPaddr2)\n" in out
    assert "        params: ip=10.0.0.9\n        ops: monitor/10s\n" in out
    assert "  promotable clone ms  [promotable=true]\n    primitive st " in out
    assert "location loc: web on node2: INFINITY" in out
    assert "colocation col: web with ms (Promoted): INFINITY" in out
    assert "order ord: ms promote then web start (Mandatory)" in out
    assert "node2: in_ccm=true crmd=online join=member expected=member" in out
    assert "    ip: start rc=0" in out


def test_show_json(capsys: pytest.CaptureFixture[str], valid: Path) -> None:
    code, out, _ = run(capsys, "cib", "show", str(valid), "--json")
    document = json.loads(out)
    assert code == 0 and document["epoch"] == 3
    assert document["cluster_options"] == {"stonith-enabled": "false"}
    assert [r["kind"] for r in document["resources"]] == ["Group", "Clone"]
    assert [c["id"] for c in document["resources"][0]["children"]] == ["ip", "httpd"]
    assert [c["kind"] for c in document["constraints"]] == [
        "RscLocation",
        "RscColocation",
        "RscOrder",
    ]
    assert document["status"][0]["uname"] == "node2"


def test_show_bad_xml_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.xml"
    path.write_bytes(b"<cib>\n<configuration>\n")
    code, out, err = run(capsys, "cib", "show", str(path))
    assert code == 1 and out == "" and str(path) in err and "Traceback" not in err


# --- convert haresources -----------------------------------------------------------------------


def test_convert_to_stdout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    need_schemas()
    source = tmp_path / "haresources"
    source.write_text(HARESOURCES)
    code, out, err = run(capsys, "convert", "haresources", str(source))
    assert code == 0 and err == ""
    root = etree.fromstring(out.encode())
    assert [g.get("id") for g in root.iter("group")] == ["group_1"]
    stickiness = root.xpath("//nvpair[@name='resource-stickiness']/@value")
    assert stickiness == ["0"]  # legacy without ha.cf


def test_convert_with_ha_cf_and_output_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    need_schemas()
    (tmp_path / "ha.cf").write_text(
        "node node1 node2\nucast eth0 10.0.0.1\nucast eth0 10.0.0.2\nauto_failback off\n"
    )
    scripts = tmp_path / "resource.d"
    scripts.mkdir()
    (scripts / "httpd").write_text("#!/bin/sh\n")
    os.chmod(scripts / "httpd", 0o755)
    source = tmp_path / "haresources"
    source.write_text(HARESOURCES)
    out_file = tmp_path / "cib.xml"
    code, out, err = run(
        capsys, "convert", "haresources", str(source), "-c", str(tmp_path), "-o", str(out_file)
    )
    assert code == 0 and out == "" and err == ""
    root = etree.fromstring(out_file.read_bytes())
    assert root.xpath("//nvpair[@name='resource-stickiness']/@value") == ["INFINITY"]
    assert root.xpath("//primitive[@id='httpd']/@class") == ["heartbeat"]
    # the command line overrides ha.cf
    code, out, _ = run(
        capsys, "convert", "haresources", str(source), "-c", str(tmp_path), "--auto-failback", "on"
    )
    root = etree.fromstring(out.encode())
    assert code == 0 and root.xpath("//nvpair[@name='resource-stickiness']/@value") == ["0"]
    # and ha.cf's nodes are checked
    source.write_text("node3 httpd\n")
    code, _, err = run(capsys, "convert", "haresources", str(source), "-c", str(tmp_path))
    assert code == 1
    assert f"{source}:1: node 'node3' is not one of ha.cf's nodes (node1, node2)" in err


def test_convert_reports_bad_lines_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "haresources"
    source.write_text("node1 10.0.0.1\nnode2 IPaddr::10.0.0.999\n")
    out_file = tmp_path / "cib.xml"
    code, out, err = run(capsys, "convert", "haresources", str(source), "-o", str(out_file))
    assert code == 1 and out == "" and not out_file.exists()
    assert err == f"hastack convert: {source}:2: '10.0.0.999' is not an IPv4 address\n"


def test_convert_a_missing_file_or_ha_cf(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "convert", "haresources", str(tmp_path / "nope"))
    assert code == 1 and "cannot read" in err
    source = tmp_path / "haresources"
    source.write_text(HARESOURCES)
    code, _, err = run(capsys, "convert", "haresources", str(source), "-c", str(tmp_path))
    assert code == 1 and "ha.cf" in err


def test_convert_keeps_fencing_on_when_ha_cf_configures_stonith(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "ha.cf").write_text(
        "node node1 node2\nucast eth0 10.0.0.1\nucast eth0 10.0.0.2\n"
        "stonith_host * external/ssh node1 node2\n"
    )
    source = tmp_path / "haresources"
    source.write_text("node1 httpd\n")
    code, out, err = run(capsys, "convert", "haresources", str(source), "-c", str(tmp_path))
    assert code == 0 and out.startswith("<cib") and err == ""
    assert '"stonith-enabled" value="true"' in out
    (tmp_path / "ha.cf").write_text("node node1 node2\nucast eth0 10.0.0.1\nucast eth0 10.0.0.2\n")
    code, out, _ = run(capsys, "convert", "haresources", str(source), "-c", str(tmp_path))
    assert code == 0 and '"stonith-enabled" value="true"' not in out
    assert '"stonith-enabled" value="false"' in out


def test_show_every_corpus_cib(capsys: pytest.CaptureFixture[str]) -> None:
    corpus = (
        Path(__file__).resolve().parents[2].parent / "shared" / "pacemaker-scheduler" / "xml"
    )  # ../shared beside the clone
    if not corpus.is_dir():
        reason = f"{corpus} is absent (Pacemaker's scheduler corpus is not in this checkout)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    for path in sorted(corpus.glob("*.xml")):
        code, out, err = run(capsys, "cib", "show", str(path))
        assert code == 0 and "\nresources (" in out, (path, err)
        code, out, err = run(capsys, "cib", "show", str(path), "--json")
        assert code == 0 and json.loads(out)["file"] == str(path), (path, err)
