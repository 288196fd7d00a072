"""`adjust`'s plan as a pure function: drbd.conf against what the daemon runs."""

from __future__ import annotations

import pytest

from hastack.replica.adjust import Running, Step, changed, plan_adjust
from hastack.replica.config import ConfigError, parse_drbd_conf
from hastack.replica.model import DrbdConf, Net


def _conf(
    *, net: str = "", disk: str = "", handlers: str = "", port: int = 7789, names: str = "r0"
) -> DrbdConf:
    text = ""
    for i, name in enumerate(names.split()):
        text += f"""
resource {name} {{
  net {{ protocol C; {net} }}
  disk {{ {disk} }}
  handlers {{ {handlers} }}
  on alice {{ device /dev/drbd{i}; disk /dev/vg/{name}; meta-disk internal;
             address 127.0.0.1:{port + 2 * i}; }}
  on bob {{ device /dev/drbd{i}; disk /dev/vg/{name}; meta-disk internal;
           address 127.0.0.1:{port + 2 * i + 1}; }}
}}
"""
    return parse_drbd_conf(text, "/etc/drbd.conf")


def _running(
    conf: DrbdConf, *, attached: bool = True, standalone: bool = False
) -> dict[str, Running]:
    return {r.name: Running(r, attached, standalone) for r in conf.resources}


def _lines(conf: DrbdConf, running: dict[str, Running], target: str = "all") -> list[str]:
    return plan_adjust(conf, "alice", running, target).lines(dry_run=False)


def test_nothing_changed_plans_nothing() -> None:
    conf = _conf()
    plan = plan_adjust(conf, "alice", _running(conf))
    assert plan.steps == () and plan.notes == ()
    assert plan.lines(dry_run=True) == ["nothing to adjust: the running state matches drbd.conf"]


def test_a_resource_the_daemon_does_not_know_is_taken_on_and_brought_up() -> None:
    old, new = _conf(), _conf(names="r0 r1")
    assert plan_adjust(new, "alice", _running(old)).steps == (
        Step("r1", "new", "added to drbd.conf"),
        Step("r1", "attach"),
        Step("r1", "connect"),
    )


def test_a_resource_that_is_down_is_attached_and_connected() -> None:
    conf = _conf()
    assert _lines(conf, _running(conf, attached=False)) == ["attach r0", "connect r0"]


def test_a_standalone_resource_is_connected_as_drbdadm_adjust_does() -> None:
    conf = _conf()
    assert _lines(conf, _running(conf, standalone=True)) == ["connect r0: StandAlone"]


def test_options_a_connection_can_take_change_on_the_fly() -> None:
    old = _conf()
    new = _conf(net="timeout 50; after-sb-0pri discard-zero-changes; max-buffers 4096;")
    assert _lines(new, _running(old)) == [
        "net-options r0: timeout 60 -> 50, max-buffers 2048 -> 4096, after-sb-0pri "
        "disconnect -> discard-zero-changes"
    ]


def test_protocol_and_authentication_need_a_new_connection_and_the_secret_is_not_shown() -> None:
    old = _conf(net="cram-hmac-alg sha256; shared-secret old-secret;")
    new = _conf(net="cram-hmac-alg sha256; shared-secret new-secret; ping-int 3;")
    assert _lines(new, _running(old)) == [
        "net-options r0: ping-int 10 -> 3",
        "disconnect + connect r0: shared-secret",
    ]
    assert "old-secret" not in str(_lines(new, _running(old)))
    assert "new-secret" not in str(_lines(new, _running(old)))
    assert _lines(_single("protocol B;"), _running(_single("protocol C;"))) == [
        "disconnect + connect r0: protocol C -> B"
    ]


def _single(net: str, disk: str = "/dev/vg/r0") -> DrbdConf:
    return parse_drbd_conf(_single_text(net).replace("/dev/vg/r0", disk), "/etc/drbd.conf")


def _single_text(net: str) -> str:
    return f"""
resource r0 {{
  net {{ {net} }}
  on alice {{ device /dev/drbd0; disk /dev/vg/r0; meta-disk internal; address 127.0.0.1:7789; }}
  on bob {{ device /dev/drbd0; disk /dev/vg/r0; meta-disk internal; address 127.0.0.1:7790; }}
}}
"""


def test_a_moved_address_needs_a_new_connection() -> None:
    old, new = _conf(), _conf(port=7800)
    assert _lines(new, _running(old)) == ["disconnect + connect r0: address"]
    # StandAlone with a new address: the same (any listener on the old one goes)
    assert _lines(new, _running(old, standalone=True)) == ["disconnect + connect r0: address"]


def test_disk_options_change_on_the_fly_al_extents_and_size_are_only_noted() -> None:
    old = _conf()
    new = _conf(disk="resync-rate 10M; c-plan-ahead 0; al-extents 257; size 1G;")
    assert _lines(new, _running(old)) == [
        "disk-options r0: c-plan-ahead 20 -> 0, resync-rate 250 -> 10240",
        "note: r0: al-extents is kept in the meta-data: not changed by adjust (create-md writes "
        "it)",
        "note: r0: disk size changed: run `hastack replica resize r0`",
    ]


def test_new_handlers_are_simply_used() -> None:
    old, new = _conf(), _conf(handlers='split-brain "/usr/bin/notify";')
    assert _lines(new, _running(old)) == ["use r0: new handlers"]


def test_a_resource_removed_from_drbd_conf_is_left_running_and_said_so() -> None:
    old, new = _conf(names="r0 r1"), _conf()
    assert _lines(new, _running(old)) == [
        "nothing to adjust: the running state matches drbd.conf",
        "note: r1: no longer in /etc/drbd.conf for alice: left as it runs "
        "(`hastack replica down r1` stops it)",
    ]


def test_a_changed_volume_of_an_attached_resource_is_not_applied() -> None:
    old, new = _single("protocol C;"), _single("protocol C;", disk="/dev/vg/other")
    lines = _lines(new, _running(old))
    assert lines == [
        "use r0: the new configuration",
        "note: r0: volumes changed (disk, meta-disk, device or nbd-address): not applied while "
        "attached; `down` + `up` applies them",
    ]
    # down: nothing is attached, the new volumes are simply used at attach
    assert _lines(new, _running(old, attached=False)) == [
        "use r0: the new configuration",
        "attach r0",
        "connect r0",
    ]


def test_one_resource_named_plans_only_it_and_an_unknown_name_is_refused() -> None:
    old, new = _conf(names="r0 r1"), _conf(names="r0 r1", net="timeout 40;")
    assert [s.resource for s in plan_adjust(new, "alice", _running(old), "r1").steps] == ["r1"]
    with pytest.raises(ConfigError, match="no resource 'r9' for node alice"):
        plan_adjust(new, "alice", _running(old), "r9")


def test_changed_lists_fields_in_drbd_conf_spelling() -> None:
    assert changed(Net(), Net(ko_count=3, allow_two_primaries=True)) == [
        "ko-count 7 -> 3",
        "allow-two-primaries no -> yes",
    ]


# --- the engine takes options on the fly (what `net-options`/`disk-options` steps do) ---------


def test_a_running_resync_speeds_up_when_adjust_raises_the_rate() -> None:
    from hastack.replica.model import Disk
    from hastack.replica.states import ConnState
    from tests.unit.test_replica_engine import B, _dirty_world

    world = _dirty_world()
    slow = Disk(resync_rate=4, c_plan_ahead=0)  # 1 block/s: 4 blocks take about 3 s
    for engine in world.engines.values():
        engine.disk = slow
    world.connect(settle=False)
    world.settle(max_time=0)
    target = world.engines[B]
    assert target.cstate is ConnState.SYNC_TARGET
    start = world.now
    fast = Disk(resync_rate=4096, c_plan_ahead=0)
    net = Net(max_buffers=64)
    for name, engine in world.engines.items():
        world.apply(name, engine.change_options(world.now, net=net, disk=fast))
    assert target.disk == fast and target.net.max_buffers == 64
    world.settle()
    assert target.cstate is ConnState.CONNECTED
    assert world.now - start < 1.0  # the new rate, not 3 s at the old one
