"""Fence devices and topology read from the CIB and from ha.cf, as Pacemaker/heartbeat do."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hastack.config.model import StonithHost
from hastack.crm.cib.xml import read_cib
from hastack.fencing.devices import (
    DeviceConfigError,
    fencing_from_cib,
    fencing_from_hacf,
    parse_delay_base,
    parse_host_map,
)


def cib(resources: str, topology: str = "", options: str = "") -> bytes:
    return f"""<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="pacemaker-3.7">
  <configuration>
    <crm_config><cluster_property_set id="cib-bootstrap-options">{options}
    </cluster_property_set></crm_config>
    <nodes>
      <node id="1" uname="n1"><instance_attributes id="n1-a">
        <nvpair id="n1-rack" name="rack" value="r1"/></instance_attributes></node>
      <node id="2" uname="n2"/>
      <node id="3" uname="n3"/>
    </nodes>
    <resources>{resources}</resources>
    <constraints/>
    {topology}
  </configuration>
  <status/>
</cib>""".encode()


def stonith(rid: str, agent: str, attrs: dict[str, str], meta: str = "") -> str:
    pairs = "".join(f'<nvpair id="{rid}-{k}" name="{k}" value="{v}"/>' for k, v in attrs.items())
    return (
        f'<primitive id="{rid}" class="stonith" type="{agent}">'
        f'<instance_attributes id="{rid}-ia">{pairs}</instance_attributes>{meta}</primitive>'
    )


def test_pcmk_parameters_are_the_fencers_and_the_rest_the_agents() -> None:
    doc = cib(
        stonith(
            "ipmi-n1",
            "fence_ipmilan",
            {
                "ip": "10.0.0.1",
                "password": "secret",
                "pcmk_host_list": "n1",
                "pcmk_reboot_action": "off",
                "pcmk_reboot_timeout": "90s",
                "pcmk_reboot_retries": "4",
                "pcmk_delay_base": "2s",
                "pcmk_delay_max": "5s",
            },
        ),
        options='<nvpair id="o1" name="stonith-timeout" value="30s"/>',
    )
    config = fencing_from_cib(read_cib(doc))
    assert config.problems == ()
    (device,) = config.devices
    assert device.params == {"ip": "10.0.0.1", "password": "secret"}
    assert device.host_check == "static-list"
    assert device.static_targets() == ("n1",)
    assert device.device_action("reboot") == "off"
    assert device.timeout("reboot", 0) == 90.0
    assert device.timeout("monitor", 0) == 30.0  # stonith-timeout is the default
    assert device.retries_for("reboot") == 4
    assert device.retries_for("off") == 2
    assert device.base_delay("n1") == 2.0
    assert device.delay_max == 5.0
    assert device.kind == "fence-agent"


def test_host_map_gives_ports_and_targets() -> None:
    doc = cib(stonith("pdu", "fence_apc", {"pcmk_host_map": "n1:3;n2:4 n3=5"}))
    (device,) = fencing_from_cib(read_cib(doc)).devices
    assert device.static_targets() == ("n1", "n2", "n3")
    assert device.port_for("n2") == "4"
    assert device.port_for("n3") == "5"
    assert device.port_for("other") == "other"


def test_default_host_check_asks_the_device_without_a_list() -> None:
    doc = cib(stonith("d", "fence_virsh", {"ip": "h"}) + stonith("g", "external/ssh", {}))
    devices = fencing_from_cib(read_cib(doc)).devices
    assert [d.host_check for d in devices] == ["dynamic-list", "dynamic-list"]
    assert devices[1].kind == "glue"


def test_own_devices_and_unknown_own_type() -> None:
    doc = cib(
        stonith("m", "hastack/manual", {"pcmk_host_list": "n1 n2"})
        + stonith("w", "hastack/watchdog", {})
        + stonith("bad", "hastack/laser", {})
    )
    config = fencing_from_cib(read_cib(doc))
    assert [d.id for d in config.devices] == ["m", "w"]
    assert config.devices[1].host_check == "none"
    (problem,) = config.problems
    assert "stonith resource bad" in problem and "hastack/manual" in problem


@pytest.mark.parametrize(
    ("attrs", "named"),
    [
        ({"pcmk_host_check": "sometimes"}, "pcmk_host_check"),
        ({"pcmk_host_check": "static-list"}, "pcmk_host_list"),
        ({"pcmk_reboot_timeout": "soon"}, "pcmk_reboot_timeout"),
        ({"pcmk_off_retries": "-1"}, "pcmk_off_retries"),
        ({"pcmk_host_map": "n1"}, "pcmk_host_map"),
        ({"pcmk_delay_max": "x"}, "pcmk_delay_max"),
    ],
)
def test_bad_parameters_leave_the_device_out_and_say_why(attrs: dict[str, str], named: str) -> None:
    doc = cib(stonith("dev", "fence_dummy", attrs) + stonith("ok", "fence_dummy", {}))
    config = fencing_from_cib(read_cib(doc))
    assert [d.id for d in config.devices] == ["ok"]
    (problem,) = config.problems
    assert "stonith resource dev" in problem and named in problem


def test_unknown_pcmk_parameter_is_a_warning_by_name() -> None:
    doc = cib(stonith("dev", "fence_dummy", {"pcmk_hots_list": "n1"}))
    config = fencing_from_cib(read_cib(doc))
    assert [d.id for d in config.devices] == ["dev"]
    assert any("pcmk_hots_list" in w for w in config.warnings)


def test_disabled_device_is_not_used() -> None:
    meta = (
        '<meta_attributes id="d-m"><nvpair id="d-tr" name="target-role" value="Stopped"/>'
        "</meta_attributes>"
    )
    doc = cib(stonith("d", "fence_dummy", {}, meta))
    config = fencing_from_cib(read_cib(doc))
    assert config.devices == ()
    assert any("disabled" in w for w in config.warnings)


def test_topology_levels_by_name_pattern_and_attribute() -> None:
    topology = """<fencing-topology>
      <fencing-level id="l1" target="n1" index="2" devices="b"/>
      <fencing-level id="l2" target="n1" index="1" devices="a,b"/>
      <fencing-level id="l3" target-pattern="n[23]" index="1" devices="a"/>
      <fencing-level id="l4" target-attribute="rack" target-value="r1" index="3" devices="a"/>
      <fencing-level id="l5" target="n2" index="2" devices="missing"/>
      <fencing-level id="l6" target="n3" index="12" devices="a"/>
    </fencing-topology>"""
    doc = cib(stonith("a", "fence_dummy", {}) + stonith("b", "fence_dummy", {}), topology)
    config = fencing_from_cib(read_cib(doc))
    levels = config.topology.levels_for("n1", {"rack": "r1"})
    assert [(lv.index, lv.devices) for lv in levels] == [(1, ("a", "b")), (2, ("b",)), (3, ("a",))]
    assert [lv.devices for lv in config.topology.levels_for("n3")] == [("a",)]
    problems = " | ".join(config.problems)
    assert "l5" in problems and "missing" in problems
    assert "l6" in problems and "1-9" in problems


def test_hacf_devices() -> None:
    config = fencing_from_hacf(
        ("baytech", "/etc/ha.d/conf/stonith.baytech"),
        [StonithHost("n1", "null", ("n2", "n3")), StonithHost("*", "meatware", ())],
    )
    first, second, third = config.devices
    assert first.agent == "baytech" and first.host_check == "dynamic-list"
    assert second.runs_on == ("n1",)
    assert second.may_run_on("n1", "n2") and not second.may_run_on("n3", "n2")
    assert third.runs_on is None and not third.may_run_on("n2", "n2")


def test_delay_base_map() -> None:
    assert parse_delay_base("3s") == {"": 3.0}
    assert parse_delay_base("n1:0;n2:5s") == {"n1": 0.0, "n2": 5.0}
    with pytest.raises(DeviceConfigError, match="pcmk_delay_base"):
        parse_delay_base("n1:later")


@given(st.text(max_size=60))
def test_host_map_parser_never_crashes(text: str) -> None:
    try:
        mapping = parse_host_map(text)
    except DeviceConfigError as exc:
        assert "pcmk_host_map" in str(exc)
    else:
        assert all(k and v for k, v in mapping.items())


@pytest.mark.parametrize(
    ("agent", "attrs", "says"),
    [
        ("hastack/ssh", {"method": "laser"}, "parameter method"),
        ("hastack/ipmi", {"ipaddr": "-x"}, "parameter ipaddr"),
        ("hastack/external", {}, "needs 'script'"),
    ],
)
def test_own_devices_are_checked_when_the_configuration_is_read(
    agent: str, attrs: dict[str, str], says: str
) -> None:
    config = fencing_from_cib(read_cib(cib(stonith("d", agent, attrs))))
    assert config.devices == ()
    (problem,) = config.problems
    assert problem.startswith("stonith resource d: ") and says in problem
