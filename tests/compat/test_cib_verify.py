"""`validate()` against the real `crm_verify -x` (Pacemaker 2.1.5): the same valid/invalid verdict.

crm_verify's verdict: invalid when it reports errors ("Errors found during check" or a non-zero
exit without "Warnings found"); warnings alone leave a CIB valid, as they leave ours. Checked on
Pacemaker's scheduler corpus (../shared beside the clone, skipped without it), on broken CIBs
written here and on converted haresources files.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.crm.cib.validate import DEFAULT_SCHEMA_DIR, is_valid, validate
from hastack.crm.haresources import convert_haresources

CRM_VERIFY = shutil.which("crm_verify") or "/usr/sbin/crm_verify"
# ../shared beside the clone, as CI has it (a user's clone has none: the tests skip)
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "pacemaker-scheduler" / "xml"

# Corpus inputs where crm_verify's verdict comes from scheduling, not from the configuration:
# deliberately not checked by validate() (the scheduler reports these).
SCHEDULER_VERDICTS = {
    # "resource ... might be active on 3 nodes (attempting recovery)": the status section shows
    # a primitive running on several nodes; crm_verify counts the scheduler's recovery as an
    # error.
    "remote-orphaned2.xml",
}


def need_tools() -> None:
    if not Path(CRM_VERIFY).exists():
        reason = "crm_verify is not installed (Debian's pacemaker-cli-utils)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    if not (DEFAULT_SCHEMA_DIR / "pacemaker-3.7.rng").exists():
        reason = f"no Pacemaker schemas in {DEFAULT_SCHEMA_DIR} (Debian's pacemaker-schemas)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)


def crm_verify_valid(path: Path) -> tuple[bool, str]:
    """crm_verify's verdict on a file, and its output for messages."""
    result = subprocess.run(
        [CRM_VERIFY, "-x", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    output = result.stdout + result.stderr
    if result.returncode == 0:
        return True, output
    if "Errors found" in output:
        return False, output
    return "Warnings found" in output, output


def ours_valid(path: Path) -> tuple[bool, list[str]]:
    problems = validate(path.read_bytes(), path.name)
    return is_valid(problems), [str(p) for p in problems if p.severity == "error"]


def test_the_scheduler_corpus_gets_crm_verifys_verdicts() -> None:
    need_tools()
    if not CORPUS.is_dir():
        reason = f"{CORPUS} is absent (Pacemaker's scheduler corpus is not in this checkout)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    files = sorted(CORPUS.glob("*.xml"))
    with ThreadPoolExecutor(max_workers=8) as pool:
        theirs = dict(zip(files, pool.map(crm_verify_valid, files), strict=True))
    disagreements = []
    known = []
    invalid = 0
    for path in files:
        expected, _ = theirs[path]
        invalid += not expected
        mine, errors = ours_valid(path)
        if mine == expected:
            continue
        if path.name in SCHEDULER_VERDICTS:
            known.append(path.name)
        else:
            disagreements.append(f"{path.name}: crm_verify {expected}, ours {mine}: {errors[:2]}")
    agree = len(files) - len(disagreements) - len(known)
    print(
        f"crm_verify verdicts matched on {agree}/{len(files)} corpus CIBs ({invalid} invalid); "
        f"scheduler-only verdicts not checked: {', '.join(known) or 'none'}"
    )
    assert invalid > 20, "the corpus should hold invalid CIBs too"
    assert disagreements == []


def cib(resources: str, constraints: str = "", stonith: str = "false", status: str = "") -> str:
    return (
        '<cib validate-with="pacemaker-3.7" admin_epoch="0" epoch="1" num_updates="0">\n'
        '<configuration><crm_config><cluster_property_set id="o">'
        f'<nvpair id="o1" name="stonith-enabled" value="{stonith}"/></cluster_property_set>'
        '</crm_config><nodes><node id="1" uname="node1"/><node id="2" uname="node2"/></nodes>\n'
        f"<resources>\n{resources}\n</resources>\n<constraints>{constraints}</constraints>\n"
        f"</configuration><status>{status}</status></cib>\n"
    )


def dummy(rid: str, body: str = "") -> str:
    return f'<primitive id="{rid}" class="ocf" provider="heartbeat" type="Dummy">{body}</primitive>'


def op(oid: str, name: str, interval: str, extra: str = "") -> str:
    return f'<operations><op id="{oid}" name="{name}" interval="{interval}" {extra}/></operations>'


HISTORY = (
    '<node_state id="1" uname="node1" in_ccm="true" crmd="online" join="member" '
    'expected="member"><lrm id="1"><lrm_resources><lrm_resource id="d1" class="ocf" '
    'provider="heartbeat" type="Dummy"><lrm_rsc_op id="d1_last_0" operation_key="d1_start_0" '
    'operation="start" crm-debug-origin="x" crm_feature_set="3.0.14" '
    'transition-key="1:1:0:abc" transition-magic="0:0;1:1:0:abc" call-id="2" rc-code="0" '
    'op-status="0" interval="0" exec-time="1" queue-time="0" op-digest="x"/>'
    "</lrm_resource></lrm_resources></lrm></node_state>"
)
ONLINE = "".join(
    f'<node_state id="{i}" uname="node{i}" in_ccm="true" crmd="online" join="member" '
    'expected="member"/>'
    for i in (1, 2)
)
A_HISTORY = HISTORY.replace('"d1', '"a').replace("d1_", "a_")
CLONE = f'<clone id="c1">{dummy("d1")}</clone>'
PROMOTED = '<meta_attributes id="m"><nvpair id="m1" name="target-role" value="Promoted"/>'
PROMOTED += "</meta_attributes>"
TWO_MONITORS = (
    "<operations>"
    '<op id="m1" name="monitor" interval="10s" role="Promoted"/>'
    '<op id="m2" name="monitor" interval="10000ms" role="Unpromoted"/></operations>'
)

CASES: dict[str, str] = {
    "valid": cib(dummy("a"), '<rsc_location id="l" rsc="a" node="node1" score="INFINITY"/>'),
    "not-well-formed": "<cib>\n<configuration>\n</cib>\n",
    "root-not-cib": "<configuration/>\n",
    "unknown-schema": cib(dummy("a")).replace("pacemaker-3.7", "pacemaker-9.9"),
    "schema-none": cib(dummy("a", "<bogus/>")).replace("pacemaker-3.7", "none"),
    "no-validate-with": cib(dummy("a")).replace(' validate-with="pacemaker-3.7"', ""),
    "unknown-element": cib(dummy("a", "<bogus/>")),
    "missing-type": cib('<primitive id="a" class="ocf" provider="heartbeat"/>'),
    "bad-score": cib(dummy("a"), '<rsc_location id="l" rsc="a" node="node1" score="lots"/>'),
    "duplicate-id": cib(dummy("a") + dummy("a")),
    "missing-resource": cib(dummy("a"), '<rsc_order id="o" first="a" then="ghost"/>'),
    "missing-in-set": cib(
        dummy("a"),
        '<rsc_colocation id="c" score="1"><resource_set id="s"><resource_ref id="a"/>'
        '<resource_ref id="ghost"/></resource_set></rsc_colocation>',
    ),
    "unknown-node-is-fine": cib(dummy("a"), '<rsc_location id="l" rsc="a" node="nx" score="1"/>'),
    "group-member-target": cib(
        f'<group id="g">{dummy("g1")}</group>{dummy("a")}',
        '<rsc_colocation id="c" rsc="g1" with-rsc="a" score="1"/>',
    ),
    "clone-child-target": cib(
        CLONE + dummy("a"), '<rsc_colocation id="c" rsc="d1" with-rsc="a" score="1"/>'
    ),
    "clone-child-target-with-history": cib(
        CLONE, '<rsc_location id="l" rsc="d1" node="node1" score="1"/>', status=HISTORY
    ),
    "clone-in-clone": cib(f'<clone id="o"><clone id="i">{dummy("x")}</clone></clone>'),
    "duplicate-monitor": cib(
        '<clone id="ms"><meta_attributes id="msm"><nvpair id="msm1" name="promotable" '
        f'value="true"/></meta_attributes>{dummy("s", TWO_MONITORS)}</clone>'
    ),
    "bad-interval": cib(dummy("a", op("m", "monitor", "often"))),
    "iso-interval": cib(dummy("a", op("m", "monitor", "P10S"))),
    "bad-timeout": cib(dummy("a", op("m", "monitor", "10s", 'timeout="soon"'))),
    "target-role-promoted-on-primitive": cib(dummy("a", PROMOTED)),
    "on-fail-stop-on-stop": cib(dummy("a", op("s", "stop", "0", 'on-fail="stop"'))),
    "on-fail-fence-without-fencing": cib(dummy("a", op("m", "monitor", "10s", 'on-fail="fence"'))),
    "bad-interval-online": cib(dummy("a", op("m", "monitor", "often")), status=ONLINE),
    "on-fail-fence-without-fencing-online": cib(
        dummy("a", op("m", "monitor", "10s", 'on-fail="fence"')), status=ONLINE
    ),
    "on-fail-stop-on-stop-online": cib(
        dummy("a", op("s", "stop", "0", 'on-fail="stop"')), status=ONLINE
    ),
    "on-fail-stop-on-stop-active": cib(
        dummy("a", op("s", "stop", "0", 'on-fail="stop"')), status=A_HISTORY
    ),
    "on-fail-demote-on-start": cib(
        dummy("a", op("s", "start", "0", 'on-fail="demote"')), status=A_HISTORY
    ),
    "clone-ordered-after-itself": cib(CLONE, '<rsc_order id="o" first="c1" then="c1"/>'),
    "clone-demote-then-promote-itself": cib(
        CLONE,
        '<rsc_order id="o" first="c1" first-action="demote" then="c1" then-action="promote"/>',
    ),
    "group-ordered-after-itself": cib(
        f'<group id="g">{dummy("a")}</group>', '<rsc_order id="o" first="g" then="g"/>'
    ),
    "primitive-ordered-after-itself": cib(dummy("a"), '<rsc_order id="o" first="a" then="a"/>'),
    "stonith-without-device": cib(dummy("a"), stonith="true"),
    "stonith-with-device": cib(
        dummy("a") + '<primitive id="f" class="stonith" type="fence_dummy"/>', stonith="true"
    ),
    "order-bad-kind": cib(
        dummy("a") + dummy("b"), '<rsc_order id="o" first="a" then="b" kind="Sometimes"/>'
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_written_cibs_get_crm_verifys_verdict(name: str, tmp_path: Path) -> None:
    need_tools()
    path = tmp_path / f"{name}.xml"
    path.write_text(CASES[name])
    expected, output = crm_verify_valid(path)
    mine, errors = ours_valid(path)
    assert mine == expected, f"crm_verify says {expected}:\n{output}\nours: {errors}"


HARESOURCES = {
    "two-groups": (
        "node1 10.0.0.1/24/eth0 Filesystem::/dev/sdb1::/srv/data::ext4 \\\n   httpd\n"
        "node2 IPaddr2::10.0.0.2/255.255.255.0/eth1/10.0.0.255 drbddisk::r0 "
        "MailTo::root@example.com::failover\n"
    ),
    "one-resource": "node1 squid\n",
    "heartbeat-sample": (
        "just.linux-ha.org 135.9.216.3/28/eth0/135.9.216.12 httpd\n"
        "node1 10.0.0.170 Filesystem::/dev/sda1::/data1::ext2\n"
    ),
}


@pytest.mark.parametrize("name", sorted(HARESOURCES))
@pytest.mark.parametrize("auto_failback", ["on", "off", "legacy"])
def test_converted_haresources_pass_crm_verify(
    name: str, auto_failback: str, tmp_path: Path
) -> None:
    need_tools()
    xml = convert_haresources(HARESOURCES[name], name, auto_failback)  # type: ignore[arg-type]
    path = tmp_path / "cib.xml"
    path.write_bytes(xml)
    expected, output = crm_verify_valid(path)
    assert expected, output
    assert "Warnings found" not in output, output
    assert validate(xml, "cib.xml") == []


# --- generated CIBs: hypothesis builds configurations, crm_verify judges them ------------------

_OPS = st.sampled_from(
    [
        "",
        op("{id}-m", "monitor", "10s"),
        op("{id}-m", "monitor", "P10S"),
        op("{id}-m", "monitor", "often"),
        op("{id}-s", "stop", "0", 'on-fail="stop"'),
        op("{id}-m", "monitor", "10s", 'on-fail="fence"'),
        op("{id}-m", "monitor", "5s", 'on-fail="explode"'),
        '<operations><op id="{id}-a" name="monitor" interval="10s" role="Promoted"/>'
        '<op id="{id}-b" name="monitor" interval="10000" role="Unpromoted"/></operations>',
    ]
)


@st.composite
def generated_cibs(draw: st.DrawFn) -> str:
    ids = ["a", "b", "c", "d"]
    parts: list[str] = []
    for rid in ids[: draw(st.integers(1, 4))]:
        body = draw(_OPS).replace("{id}", rid)
        if draw(st.booleans()):
            body += PROMOTED.replace('id="m', f'id="{rid}-m')
        shape = draw(st.sampled_from(["primitive", "group", "clone", "promotable"]))
        primitive = dummy(rid, body)
        if shape == "group":
            parts.append(f'<group id="g-{rid}">{primitive}</group>')
        elif shape == "clone":
            parts.append(f'<clone id="cl-{rid}">{primitive}</clone>')
        elif shape == "promotable":
            parts.append(
                f'<clone id="cl-{rid}"><meta_attributes id="cl-{rid}-m"><nvpair '
                f'id="cl-{rid}-m1" name="promotable" value="true"/></meta_attributes>'
                f"{primitive}</clone>"
            )
        else:
            parts.append(primitive)
    targets = st.sampled_from(["a", "b", "g-a", "cl-a", "cl-b", "ghost"])
    constraints = "".join(
        draw(
            st.sampled_from(
                [
                    '<rsc_location id="l{n}" rsc="{x}" node="node1" score="100"/>',
                    '<rsc_colocation id="c{n}" rsc="{x}" with-rsc="{y}" score="INFINITY"/>',
                    '<rsc_order id="o{n}" first="{x}" then="{y}"/>',
                    '<rsc_order id="o{n}" first="{x}" first-action="stop" then="{y}"/>',
                    '<rsc_order id="o{n}" first="{x}" first-action="demote" then="{y}" '
                    'then-action="promote" kind="Optional"/>',
                    '<rsc_order id="o{n}"><resource_set id="o{n}-1"><resource_ref id="{x}"/>'
                    '</resource_set><resource_set id="o{n}-2"><resource_ref id="{y}"/>'
                    "</resource_set></rsc_order>",
                ]
            )
        ).format(n=n, x=draw(targets), y=draw(targets))
        for n in range(draw(st.integers(0, 3)))
    )
    stonith = draw(st.sampled_from(["false", "true"]))
    status = ONLINE if draw(st.booleans()) else ""
    return cib("\n".join(parts), constraints, stonith=stonith, status=status)


@settings(max_examples=40, deadline=None)
@given(generated_cibs())
def test_generated_cibs_get_crm_verifys_verdict(text: str) -> None:
    need_tools()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generated.xml"
        path.write_text(text)
        expected, output = crm_verify_valid(path)
        mine, errors = ours_valid(path)
    assert mine == expected, f"{text}\ncrm_verify says {expected}:\n{output}\nours: {errors}"
