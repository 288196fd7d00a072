"""status_view: /proc/drbd as DRBD 8.4 prints it, drbdadm role/cstate/dstate, the DRBD 9
style status text and the JSON status, with concrete expected output for each state."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.replica.status_view import (
    cstate_line,
    dstate_line,
    format_duration,
    json_status,
    proc_drbd,
    progress_bar,
    role_line,
    status_text,
)

VERSION = "version: 8.4.11 (api:1/proto:86-101)"


def stats(**overrides: int) -> dict[str, int]:
    base = dict.fromkeys(("ns", "nr", "dw", "dr", "al", "bm", "lo", "pe", "ua", "ap", "ep"), 0)
    base["ep"] = 1
    base.update(overrides)
    return base


def volume(number: int = 0, minor: int = 0, **overrides: Any) -> dict[str, Any]:
    vol: dict[str, Any] = {
        "volume": number,
        "minor": minor,
        "device": f"/dev/drbd{minor}",
        "disk": "UpToDate",
        "peer_disk": "UpToDate",
        "oos": 0,
        "size_kib": 1048576,
        "nbd": f"127.0.0.1:{10809 + minor}",
        "stats": stats(),
        "sync": None,
    }
    vol.update(overrides)
    return vol


def resource(
    name: str = "r0", volumes: list[dict[str, Any]] | None = None, **overrides: Any
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "name": name,
        "node": "alice",
        "peer": "bob",
        "role": "Primary",
        "peer_role": "Secondary",
        "cstate": "Connected",
        "protocol": "C",
        "suspended": False,
        "volumes": volumes if volumes is not None else [volume()],
    }
    res.update(overrides)
    return res


def syncing(kind: str = "SyncSource", **overrides: Any) -> dict[str, Any]:
    # 1 GiB to resync, 28.1% done: under DRBD's 4 GiB threshold, so shown in K.
    sync: dict[str, Any] = {
        "kind": kind,
        "total_kib": 1048576,
        "done_kib": 294656,
        "percent": 28.1,
        "rate_kib_s": 10240.0,
        "avg_rate_kib_s": 10240.0,
        "eta_s": 12.0,
    }
    sync.update(overrides)
    return sync


def sync_source() -> dict[str, Any]:
    vol = volume(peer_disk="Inconsistent", oos=753920, sync=syncing())
    return resource(cstate="SyncSource", volumes=[vol])


# --------------------------------------------------------------------------- Connected


def test_proc_drbd_connected() -> None:
    assert proc_drbd([resource()], VERSION) == (
        "version: 8.4.11 (api:1/proto:86-101)\n"
        " 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n"
        "    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n"
    )


def test_proc_drbd_prints_the_counters_and_a_two_line_version_as_given() -> None:
    vol = volume(stats=stats(ns=1204, nr=3, dw=1208, dr=40960, al=7, bm=2, lo=1, pe=2, ua=3, ap=4))
    res = resource(volumes=[vol], protocol="A", write_ordering="drain")
    text = proc_drbd([res], VERSION + "\nGIT-hash: abc build by hastack\n")
    assert text.splitlines() == [
        VERSION,
        "GIT-hash: abc build by hastack",
        " 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate A r-----",
        "    ns:1204 nr:3 dw:1208 dr:40960 al:7 bm:2 lo:1 pe:2 ua:3 ap:4 ep:1 wo:d oos:0",
    ]


def test_status_text_connected() -> None:
    assert status_text([resource()]) == (
        "r0 role:Primary\n"
        "  disk:UpToDate\n"
        "  nbd:127.0.0.1:10809\n"
        "  bob role:Secondary\n"
        "    peer-disk:UpToDate\n"
        "\n"
    )


def test_drbdadm_lines_connected() -> None:
    res = resource()
    assert role_line(res) == "Primary/Secondary"
    assert cstate_line(res) == "Connected"
    assert dstate_line(res) == "UpToDate/UpToDate"


# --------------------------------------------------------------------------- StandAlone


def standalone() -> dict[str, Any]:
    # No peer: the daemon leaves out peer, peer_role and peer_disk.
    vol = volume()
    del vol["peer_disk"]
    res = resource(cstate="StandAlone", volumes=[vol])
    del res["peer"], res["peer_role"]
    return res


def test_proc_drbd_standalone_without_peer() -> None:
    # StandAlone has no network configuration, so the protocol letter is a blank.
    assert proc_drbd([standalone()], VERSION) == (
        f"{VERSION}\n"
        " 0: cs:StandAlone ro:Primary/Unknown ds:UpToDate/DUnknown   r-----\n"
        "    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n"
    )


def test_standalone_hides_stale_peer_facts() -> None:
    # A disconnected peer's role and UpToDate disk are not known any more, but an
    # Outdated peer stays Outdated (DRBD keeps it across the disconnect).
    stale = resource(cstate="StandAlone", volumes=[volume(oos=4096)])
    assert role_line(stale) == "Primary/Unknown"
    assert dstate_line(stale) == "UpToDate/DUnknown"
    fenced = resource(cstate="Connecting", volumes=[volume(peer_disk="Outdated")])
    assert dstate_line(fenced) == "UpToDate/Outdated"
    assert proc_drbd([fenced], VERSION).splitlines()[1] == (
        " 0: cs:Connecting ro:Primary/Unknown ds:UpToDate/Outdated C r-----"
    )


def test_status_text_standalone() -> None:
    assert (
        status_text([standalone()]) == "r0 role:Primary\n  disk:UpToDate\n  nbd:127.0.0.1:10809\n\n"
    )
    res = resource(cstate="StandAlone", volumes=[volume(oos=4096)])
    assert status_text([res]) == (
        "r0 role:Primary\n"
        "  disk:UpToDate\n"
        "  nbd:127.0.0.1:10809\n"
        "  bob connection:StandAlone\n"
        "    peer-disk:DUnknown out-of-sync:4096\n"
        "\n"
    )
    assert status_text([resource(cstate="Connecting")]).splitlines()[3] == (
        "  bob connection:Connecting"
    )


def test_drbdadm_lines_standalone() -> None:
    res = standalone()
    assert (role_line(res), cstate_line(res), dstate_line(res)) == (
        "Primary/Unknown",
        "StandAlone",
        "UpToDate/DUnknown",
    )


# --------------------------------------------------------------------------- syncing


def test_proc_drbd_sync_source_mid_sync() -> None:
    assert proc_drbd([sync_source()], VERSION) == (
        f"{VERSION}\n"
        " 0: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----\n"
        "    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:753920\n"
        "\t[====>...............] sync'ed: 28.1% (753920/1048576)K\n"
        "\tfinish: 0:00:12 speed: 10,240 (10,240) K/sec\n"
    )


def test_proc_drbd_large_resync_in_megabytes() -> None:
    # Above 4 GiB DRBD shows M, shifting bits by 10 first: 5890.x MiB left shows 5888.
    sync = syncing(
        total_kib=8388608, done_kib=2357248, percent=28.1, rate_kib_s=98765.0, eta_s=3725.0
    )
    sync["avg_rate_kib_s"] = 1234567.0
    vol = volume(peer_disk="Inconsistent", sync=sync)
    lines = proc_drbd([resource(cstate="SyncSource", volumes=[vol])], VERSION).splitlines()
    assert lines[3:] == [
        "\t[====>...............] sync'ed: 28.1% (5888/8192)M",
        "\tfinish: 1:02:05 speed: 98,765 (1,234,567) K/sec",
    ]


def test_proc_drbd_sync_target_shows_want_and_stalled() -> None:
    sync = syncing("SyncTarget", percent=3.0, want_kib_s=40960, stalled=True, eta_s=None)
    sync["rate_kib_s"] = 0.0
    sync["avg_rate_kib_s"] = 512.0
    vol = volume(disk="Inconsistent", sync=sync)
    res = resource(role="Secondary", peer_role="Primary", cstate="SyncTarget", volumes=[vol])
    lines = proc_drbd([res], VERSION).splitlines()
    assert lines[1] == " 0: cs:SyncTarget ro:Secondary/Primary ds:Inconsistent/UpToDate C r-----"
    # Below 5% the head sits in the first cell; the ETA comes from the average rate.
    assert lines[3] == "\t[>...................] sync'ed:  3.0% (753920/1048576)K"
    assert lines[4] == "\tfinish: 0:24:32 speed: 0 (512) want: 40,960 K/sec (stalled)"


def test_status_text_sync_source() -> None:
    assert status_text([sync_source()]) == (
        "r0 role:Primary\n"
        "  disk:UpToDate\n"
        "  nbd:127.0.0.1:10809\n"
        "  bob role:Secondary\n"
        "    replication:SyncSource peer-disk:Inconsistent done:28.10 out-of-sync:753920\n"
        "        progress:[====>...............] finish:0:00:12 speed:10,240K/sec\n"
        "\n"
    )


def test_drbdadm_lines_sync_source() -> None:
    res = sync_source()
    assert (role_line(res), cstate_line(res), dstate_line(res)) == (
        "Primary/Secondary",
        "SyncSource",
        "UpToDate/Inconsistent",
    )


# --------------------------------------------------------------------------- verify


def verify_source() -> dict[str, Any]:
    sync = syncing("VerifyS", total_kib=2097152, done_kib=1048576, percent=50.0, eta_s=3661.0)
    sync["want_kib_s"] = 102400
    return resource(cstate="VerifyS", volumes=[volume(size_kib=2097152, sync=sync)])


def test_proc_drbd_verify_source() -> None:
    assert proc_drbd([verify_source()], VERSION) == (
        f"{VERSION}\n"
        " 0: cs:VerifyS ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n"
        "    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n"
        "\t[=========>..........] verified: 50.0% (1048576/2097152)K\n"
        "\tfinish: 1:01:01 speed: 10,240 (10,240) want: 102,400 K/sec\n"
    )


def test_status_text_verify_source() -> None:
    assert status_text([verify_source()]).splitlines()[4:6] == [
        "    replication:VerifyS peer-disk:UpToDate done:50.00",
        "        progress:[=========>..........] finish:1:01:01 speed:10,240K/sec",
    ]


def test_verify_target_has_no_want() -> None:
    sync = syncing("VerifyT", percent=100.0, want_kib_s=1)
    res = resource(role="Secondary", peer_role="Primary", cstate="VerifyT")
    res["volumes"] = [volume(sync=sync)]
    lines = proc_drbd([res], VERSION).splitlines()
    assert lines[3] == "\t[===================>] verified:100.0% (753920/1048576)K"
    assert lines[4] == "\tfinish: 0:00:12 speed: 10,240 (10,240) K/sec"


# --------------------------------------------------------------------------- multi-volume


def two_volumes() -> dict[str, Any]:
    # Volume 0 resyncs while volume 1 is already in sync: each minor has its own cstate.
    vol0 = volume(0, 3, peer_disk="Inconsistent", oos=753920, sync=syncing())
    vol1 = volume(1, 4)
    return resource(cstate="SyncSource", volumes=[vol1, vol0])


def test_proc_drbd_multi_volume() -> None:
    assert proc_drbd([two_volumes()], VERSION) == (
        f"{VERSION}\n"
        "\n"
        " 3: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----\n"
        "    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:753920\n"
        "\t[====>...............] sync'ed: 28.1% (753920/1048576)K\n"
        "\tfinish: 0:00:12 speed: 10,240 (10,240) K/sec\n"
        " 4: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n"
        "    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n"
    )


def test_drbdadm_lines_multi_volume() -> None:
    res = two_volumes()
    assert role_line(res) == "Primary/Secondary\nPrimary/Secondary"
    assert cstate_line(res) == "SyncSource\nConnected"
    assert dstate_line(res) == "UpToDate/Inconsistent\nUpToDate/UpToDate"
    assert cstate_line(res, volume=1) == "Connected"
    assert dstate_line(res, volume=7) == ""


def test_status_text_multi_volume() -> None:
    assert status_text([two_volumes()]) == (
        "r0 role:Primary\n"
        "  volume:0 disk:UpToDate\n"
        "  volume:0 nbd:127.0.0.1:10812\n"
        "  volume:1 disk:UpToDate\n"
        "  volume:1 nbd:127.0.0.1:10813\n"
        "  bob role:Secondary\n"
        "    volume:0 replication:SyncSource peer-disk:Inconsistent done:28.10"
        " out-of-sync:753920\n"
        "        progress:[====>...............] finish:0:00:12 speed:10,240K/sec\n"
        "    volume:1 peer-disk:UpToDate\n"
        "\n"
    )


def test_status_text_lone_volume_other_than_zero_is_numbered() -> None:
    res = resource(volumes=[volume(2, 0)])
    assert status_text([res]).splitlines()[1] == "  volume:2 disk:UpToDate"


# --------------------------------------------------------------------------- two resources


def two_resources() -> list[dict[str, Any]]:
    r1 = resource("r1", [volume(0, 1)], role="Secondary", peer_role="Primary")
    r0 = resource("r0", [volume(0, 0)])
    return [r1, r0]


def test_proc_drbd_two_resources_in_minor_order() -> None:
    assert proc_drbd(two_resources(), VERSION) == (
        f"{VERSION}\n"
        " 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n"
        "    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n"
        " 1: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate C r-----\n"
        "    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n"
    )


def test_proc_drbd_gap_in_minors_is_an_empty_line() -> None:
    r0 = resource("r0", [volume(0, 0)])
    r9 = resource("r9", [volume(0, 10)])
    lines = proc_drbd([r9, r0], VERSION).splitlines()
    assert lines[1].startswith(" 0: cs:Connected")
    assert lines[3] == ""
    assert lines[4].startswith("10: cs:Connected")


def test_status_text_two_resources_sorted_by_name() -> None:
    assert status_text(two_resources()) == (
        "r0 role:Primary\n"
        "  disk:UpToDate\n"
        "  nbd:127.0.0.1:10809\n"
        "  bob role:Secondary\n"
        "    peer-disk:UpToDate\n"
        "\n"
        "r1 role:Secondary\n"
        "  disk:UpToDate\n"
        "  nbd:127.0.0.1:10810\n"
        "  bob role:Primary\n"
        "    peer-disk:UpToDate\n"
        "\n"
    )


def test_no_resources() -> None:
    assert proc_drbd([], VERSION) == VERSION + "\n"
    assert status_text([]) == "# No replicated resources configured.\n"
    assert json_status([]) == {"resources": []}


# --------------------------------------------------------------------------- flags, odd states


def test_proc_flags() -> None:
    vol = volume(user_isp=True, al_suspended=True)
    res = resource(volumes=[vol], suspended=True, peer_isp=True, aftr_isp=True)
    assert proc_drbd([res], VERSION).splitlines()[1].endswith(" C sapu-s")
    # An unknown protocol prints no letter rather than a wrong one.
    res = resource(protocol="Z")
    assert proc_drbd([res], VERSION).splitlines()[1].endswith("UpToDate/UpToDate   r-----")


def test_unconfigured_minor() -> None:
    # /proc/drbd leaves an unconfigured minor out; drbdsetup 8.4 names it Unconfigured.
    gone = resource("r1", [volume(0, 1, disk="Diskless")], role="Secondary", cstate="StandAlone")
    lines = proc_drbd([resource(), gone], VERSION).splitlines()
    assert len(lines) == 3
    assert (role_line(gone), cstate_line(gone), dstate_line(gone)) == ("Unconfigured",) * 3


def test_suspended_in_status_text() -> None:
    assert status_text([resource(suspended=True)]).startswith("r0 role:Primary suspended:yes\n")
    text = status_text([resource(suspended=["user", "fencing"])])
    assert text.startswith("r0 role:Primary suspended:user,fencing\n")


def test_inputs_are_not_mutated() -> None:
    resources = [two_volumes(), standalone(), verify_source()]
    before = copy.deepcopy(resources)
    proc_drbd(resources, VERSION)
    status_text(resources)
    json_status(resources)
    for res in resources:
        role_line(res), cstate_line(res), dstate_line(res)
    assert resources == before


# --------------------------------------------------------------------------- helpers


def test_progress_bar() -> None:
    assert progress_bar({"percent": 0.0}) == ">..................."
    assert progress_bar({"percent": 4.9}) == ">..................."
    assert progress_bar({"percent": 5.0}) == ">..................."
    assert progress_bar({"percent": 10.0}) == "=>.................."
    assert progress_bar({"percent": 28.1}) == "====>..............."
    assert progress_bar({"percent": 99.9}) == "==================>."
    assert progress_bar({"percent": 100.0}) == "===================>"
    assert progress_bar({"percent": 50.0}, width=10) == "====>....."
    # Without a percent, the amounts decide; with nothing at all, DRBD counts it as done.
    assert progress_bar({"total_kib": 1000, "done_kib": 500}) == "=========>.........."
    assert progress_bar({}) == "===================>"
    assert progress_bar(None) == ">..................."
    assert progress_bar({"percent": 50.0}, width=0) == ""


def test_format_duration() -> None:
    assert format_duration(0) == "0:00:00"
    assert format_duration(12) == "0:00:12"
    assert format_duration(59.9) == "0:00:59"
    assert format_duration(3661) == "1:01:01"
    assert format_duration(360000) == "100:00:00"
    assert format_duration(-5) == "0:00:00"
    assert format_duration(None) == "-:--:--"
    assert format_duration(float("nan")) == "-:--:--"
    assert format_duration(float("inf")) == "-:--:--"


# --------------------------------------------------------------------------- JSON


def test_json_status_volumes_are_self_contained() -> None:
    out = json_status([two_volumes(), standalone()])
    json.dumps(out, allow_nan=False)  # must be plain JSON
    assert [res["name"] for res in out["resources"]] == ["r0", "r0"]
    syncing_res = out["resources"][0]
    assert syncing_res["peer"] == "bob" and syncing_res["cstate"] == "SyncSource"
    vol0, vol1 = syncing_res["volumes"]
    assert {
        key: vol0[key] for key in ("role", "peer_role", "disk", "peer_disk", "cstate", "oos")
    } == {
        "role": "Primary",
        "peer_role": "Secondary",
        "disk": "UpToDate",
        "peer_disk": "Inconsistent",
        "cstate": "SyncSource",
        "oos": 753920,
    }
    assert vol0["sync"] == {
        "kind": "SyncSource",
        "total_kib": 1048576,
        "done_kib": 294656,
        "percent": 28.1,
        "rate_kib_s": 10240.0,
        "avg_rate_kib_s": 10240.0,
        "eta_s": 12.0,
    }
    assert vol0["minor"] == 3 and vol0["nbd"] == "127.0.0.1:10812" and vol0["stats"]["ep"] == 1
    assert vol1["cstate"] == "Connected" and vol1["sync"] is None

    alone = out["resources"][1]
    assert alone["peer"] is None and alone["peer_role"] == "Unknown"
    assert alone["volumes"][0]["peer_disk"] == "DUnknown"
    assert alone["volumes"][0]["peer_role"] == "Unknown"


def test_json_status_sanitises_odd_numbers() -> None:
    sync = syncing(percent=float("nan"), eta_s=float("inf"), rate_kib_s=None)
    sync["avg_rate_kib_s"] = "fast"
    res = resource(cstate="SyncSource", volumes=[volume(oos=-3, sync=sync)])
    vol = json_status([res])["resources"][0]["volumes"][0]
    json.dumps(vol, allow_nan=False)
    assert vol["oos"] == 0
    # The percent falls back to done/total; no rate means no estimate.
    assert vol["sync"]["percent"] == 28.1
    assert vol["sync"]["eta_s"] is None
    assert "finish: -:--:-- speed: 0 (0) K/sec" in proc_drbd([res], VERSION)


# --------------------------------------------------------------------------- properties

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, JUNK)


SYNC = st.fixed_dictionaries(
    {},
    optional={
        "kind": maybe(st.sampled_from(["SyncSource", "SyncTarget", "VerifyS", "VerifyT"])),
        "total_kib": maybe(st.integers(min_value=0, max_value=2**42)),
        "done_kib": maybe(st.integers(min_value=0, max_value=2**42)),
        "percent": maybe(st.floats(min_value=0, max_value=100)),
        "rate_kib_s": maybe(st.floats(min_value=0, max_value=1e9)),
        "avg_rate_kib_s": maybe(st.floats(min_value=0, max_value=1e9)),
        "eta_s": maybe(st.floats(min_value=0, max_value=1e7)),
        "want_kib_s": JUNK,
        "stalled": JUNK,
    },
)

CSTATES = [
    *("StandAlone", "Connecting", "Connected", "WFBitmap"),
    *("SyncSource", "SyncTarget", "VerifyS", "VerifyT"),
]
DISKS = st.sampled_from(["UpToDate", "Inconsistent", "Outdated", "Diskless", "DUnknown"])
VOLUME = st.fixed_dictionaries(
    {},
    optional={
        "volume": maybe(st.integers(min_value=0, max_value=40)),
        "minor": maybe(st.integers(min_value=0, max_value=40)),
        "device": JUNK,
        "disk": maybe(DISKS),
        "peer_disk": maybe(DISKS),
        "oos": maybe(st.integers(min_value=0, max_value=2**40)),
        "size_kib": JUNK,
        "nbd": maybe(st.just("127.0.0.1:10809")),
        "stats": maybe(st.dictionaries(st.sampled_from(["ns", "ep", "lo", "x"]), JUNK)),
        "sync": st.one_of(st.none(), SYNC, JUNK),
        "user_isp": JUNK,
        "congestion": JUNK,
    },
)
RESOURCE = st.fixed_dictionaries(
    {},
    optional={
        "name": maybe(st.sampled_from(["r0", "r1", "data"])),
        "node": JUNK,
        "peer": maybe(st.just("bob")),
        "role": maybe(st.sampled_from(["Primary", "Secondary"])),
        "peer_role": maybe(st.sampled_from(["Primary", "Secondary", "Unknown"])),
        "cstate": maybe(st.sampled_from(CSTATES)),
        "protocol": maybe(st.sampled_from(["A", "B", "C"])),
        "suspended": JUNK,
        "write_ordering": JUNK,
        "volumes": st.one_of(st.lists(st.one_of(VOLUME, JUNK), max_size=3), JUNK),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(RESOURCE, JUNK), max_size=3))
def test_rendering_never_raises(resources: list[Any]) -> None:
    text = proc_drbd(resources, VERSION)
    assert text.startswith(VERSION + "\n") and text.endswith("\n")
    assert status_text(resources).endswith("\n")
    json.dumps(json_status(resources), allow_nan=False)
    for res in resources:
        if isinstance(res, dict):
            role_line(res), cstate_line(res), dstate_line(res)


@given(
    st.floats(min_value=0, max_value=100, allow_nan=False),
    st.integers(min_value=1, max_value=200),
)
def test_bar_has_the_given_width(percent: float, width: int) -> None:
    bar = progress_bar({"percent": percent}, width=width)
    assert len(bar) == width
    assert bar.count(">") == 1
    assert re.fullmatch(r"=*>\.*", bar)  # '='s, then the '>' head, then '.'s


@given(st.floats(min_value=0, max_value=100, allow_nan=False))
def test_proc_bar_line_keeps_drbd_width(percent: float) -> None:
    res = resource(cstate="SyncSource", volumes=[volume(sync=syncing(percent=percent))])
    bar_line = proc_drbd([res], VERSION).splitlines()[3]
    assert bar_line.startswith("\t[") and bar_line[22:24] == "] "
