"""The Jepsen-style run (`hastack.lab.jepsen`): its checks on made-up histories, its observer
and counter on real namespaces, and one bounded run against a fenced 3-node cluster.

The run's nemesis lasts HASTACK_JEPSEN_DURATION seconds (default 90) with the seed
HASTACK_JEPSEN_SEED (default: a random one, printed, so that a failing run can be repeated);
longer runs are made by hand with `python -m hastack.lab.jepsen` (docs/jepsen.md)."""

from __future__ import annotations

import json
import os
import random
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from hastack.lab import jepsen
from hastack.lab.cluster import hastack_env
from hastack.lab.jepsen import (
    Response,
    Sample,
    availability,
    dual_answers,
    dual_vip,
    parse_client_log,
    takeovers,
)
from hastack.lab.netns import Lab

NODES = ("n1", "n2", "n3")


def ok(end: float, node: str) -> Response:
    return Response(end - 0.005, end, True, node, 1, None)


def fail(end: float) -> Response:
    return Response(end - 0.25, end, False, None, None, "timeout")


def sample(t: float, held: tuple[str, ...], powered: tuple[str, ...] = NODES) -> Sample:
    return Sample(t, held, held, powered, None)


# ---------------------------------------------------------------------- the checks, on histories
def test_a_clean_failover_in_the_answers_is_not_dual_active() -> None:
    history = [ok(0.01 * i, "n1") for i in range(1, 50)]
    history += [fail(0.5 + 0.25 * i) for i in range(1, 4)]
    history += [ok(1.5 + 0.01 * i, "n2") for i in range(50)]
    assert dual_answers(history) == []


def test_two_nodes_answering_within_one_sample_window_is_dual_active() -> None:
    history = [ok(1.000, "n1"), ok(1.010, "n2"), ok(2.0, "n2")]
    (incident,) = dual_answers(history)
    assert incident.kind == "answers" and incident.nodes == ["n1", "n2"]


def test_answers_interleaving_between_two_nodes_are_dual_active() -> None:
    # n1, n2, n1 within a second, each answer further apart than one sample window
    history = [ok(1.0, "n1"), ok(1.2, "n2"), ok(1.4, "n1")]
    incidents = dual_answers(history)
    assert incidents and {n for i in incidents for n in i.nodes} == {"n1", "n2"}
    # the same move and move back spread over seconds are two clean moves
    assert dual_answers([ok(1.0, "n1"), ok(3.0, "n2"), ok(6.0, "n1")]) == []


def test_two_holders_in_the_samples_are_one_period_of_dual_active() -> None:
    samples = [sample(0.02 * i, ("n1",)) for i in range(10)]
    samples += [sample(0.2 + 0.02 * i, ("n1", "n3")) for i in range(5)]
    samples += [sample(0.3 + 0.02 * i, ("n3",)) for i in range(10)]
    (incident,) = dual_vip(samples)
    assert incident.nodes == ["n1", "n3"] and incident.t == 0.2


WATCHER_MAC = bytes.fromhex("020000000005")
MACS = {"n1": bytes.fromhex("020000000001"), "n2": bytes.fromhex("020000000002")}
VIP = "10.9.0.200"


def arp_frame(op: int, sender: bytes, target_mac: bytes, target_ip: str) -> bytes:
    """An ARP packet from the holder `sender` of VIP, as Linux sends it."""
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sender + socket.inet_aton(VIP)
    return target_mac + sender + b"\x08\x06" + arp + target_mac + socket.inet_aton(target_ip)


def reply(node: str, request: bytes) -> bytes:
    """Linux's reply of `node` to the who-has `request`: to the request's sender."""
    return arp_frame(2, MACS[node], request[22:28], socket.inet_ntoa(request[28:32]))


def test_an_arp_reply_is_matched_to_its_request_however_late_it_is_read() -> None:
    """A watcher held up past its next request reads the old holder's reply to the previous
    request together with the new holder's reply to the next: one MAC per request, no
    dual-active; two holders answering one request are still caught."""
    probe = jepsen.ArpProbe(WATCHER_MAC, VIP, [f"10.9.0.{128 + i}" for i in range(4)])
    first, second = probe.request(), probe.request()
    answers = [probe.answer(reply("n1", first), 1.0), probe.answer(reply("n2", second), 1.0)]
    assert [(a.request, a.gratuitous) for a in answers if a] == [(1, False), (2, False)]
    assert jepsen.dual_arp([a for a in answers if a], {}) == []
    third = probe.request()
    both = [probe.answer(reply(n, third), 2.0) for n in ("n1", "n2")]
    (incident,) = jepsen.dual_arp([a for a in both if a], {"02:00:00:00:00:01": "n1"})
    assert incident.nodes == ["02:00:00:00:00:02", "n1"]
    # the pool wraps: request 5 reuses request 1's address, and its reply is request 5's
    probe.request()
    fifth = probe.request()
    assert fifth[28:32] == first[28:32]
    late = probe.answer(reply("n1", fifth), 3.0)
    assert late is not None and late.request == 5


def test_announcements_and_other_frames_are_not_answers() -> None:
    probe = jepsen.ArpProbe(WATCHER_MAC, VIP, ["10.9.0.128"])
    probe.request()
    broadcast = b"\xff" * 6
    gratuitous_request = arp_frame(1, MACS["n1"], broadcast, VIP)
    gratuitous_reply = arp_frame(2, MACS["n1"], broadcast, VIP)
    to_someone_else = arp_frame(2, MACS["n1"], bytes.fromhex("020000000009"), "10.9.0.128")
    for frame in (gratuitous_request, gratuitous_reply, to_someone_else):
        answer = probe.answer(frame, 1.0)
        assert answer is not None and answer.gratuitous and answer.request == 0
    assert probe.answer(b"\x00" * 41, 1.0) is None  # too short
    other_ip = bytearray(reply("n1", probe.request()))
    other_ip[28:32] = socket.inet_aton("10.9.0.7")
    assert probe.answer(bytes(other_ip), 1.0) is None  # about another address


def test_a_takeover_counts_as_fenced_only_with_a_fence_between_the_holdings() -> None:
    samples = [sample(0.1 * i, ("n1",)) for i in range(10)]
    samples += [sample(1.0 + 0.1 * i, (), powered=("n2", "n3")) for i in range(5)]
    samples += [sample(1.5 + 0.1 * i, ("n2",), powered=("n2", "n3")) for i in range(5)]
    (move,) = takeovers(samples, [(1.2, "off", "n1")])
    assert (move.source, move.target, move.how, move.fenced_at) == ("n1", "n2", "fenced", 1.2)
    # a fence of n1 from before it took the IP does not count
    (move,) = takeovers(samples, [(-5.0, "off", "n1")])
    assert move.how == "unfenced"
    # n1 powered on and without the IP: it let it go (a clean stop)
    released = [sample(0.1 * i, ("n1",)) for i in range(10)]
    released += [sample(1.0 + 0.1 * i, ()) for i in range(5)]
    released += [sample(1.5 + 0.1 * i, ("n2",)) for i in range(5)]
    (move,) = takeovers(released, [])
    assert move.how == "released"


def test_a_takeover_from_a_node_that_came_back_and_rejoined_first_needs_no_fence() -> None:
    """n1 lost the IP by power (no fence: n2 alone had no quorum); n1 came back and rejoined
    (n3 saw it leave and return) before n2 took the IP: the cluster asked n1, it did not
    guess. The same takeover before n1 rejoined is unfenced."""
    samples = [sample(0.1 * i, ("n1",)) for i in range(10)]
    samples += [sample(1.0 + 0.1 * i, (), powered=("n2", "n3")) for i in range(20)]
    samples += [sample(3.0 + 0.1 * i, ("n2",)) for i in range(5)]
    views = [
        jepsen.View(0.5, "n3", NODES),
        jepsen.View(1.5, "n3", ("n2", "n3")),
        jepsen.View(2.5, "n3", NODES),
        jepsen.View(2.6, "n1", NODES),
    ]
    (move,) = takeovers(samples, [], views)
    assert move.how == "rejoined"
    (move,) = takeovers(samples, [], views[:2])  # left, but not back before the takeover
    assert move.how == "unfenced"
    # n1's own view says nothing about whether the others took it back
    (move,) = takeovers(samples, [], [jepsen.View(1.5, "n1", ("n1",)), views[3]])
    assert move.how == "unfenced"


def test_availability_counts_outages_from_the_last_answer_to_the_next() -> None:
    history = [ok(1.0, "n1"), fail(1.3), fail(1.6), ok(2.0, "n2"), ok(2.1, "n2")]
    history += [fail(3.0), ok(3.5, "n2")]
    a = availability(history)
    assert (a.requests, a.answered, a.outages) == (7, 4, 2)
    assert a.outage_list == [(1.0, 2.0), (2.1, 3.5)]
    assert abs(a.outage_max - 1.4) < 1e-9 and abs(a.outage_median - 1.2) < 1e-9
    assert availability([]).fraction == 0.0


def test_the_client_log_is_read_line_by_line_and_a_cut_line_is_skipped() -> None:
    text = "1.0 1.1 ok n1 7\n1.2 1.45 fail timeout\n1.5 1.6 ok n2"
    assert parse_client_log(text) == [
        Response(1.0, 1.1, True, "n1", 7, None),
        Response(1.2, 1.45, False, None, None, "timeout"),
    ]


@given(st.text())
def test_the_client_log_reader_never_fails_on_any_text(text: str) -> None:
    for r in parse_client_log(text):
        assert r.ok == (r.node is not None)


# ---------------------------------------------------------------------- counter and command line
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_counter_answers_with_its_node_and_keeps_its_value_across_restarts(
    tmp_path: Path,
) -> None:
    port, state = free_port(), tmp_path / "n2" / "counter.state"
    argv = [sys.executable, "-m", "hastack.lab.jepsen", "counter", "--port", str(port)]
    argv += ["--node", "n2", "--state", str(state)]
    for expected in ((1, 2), (3, 4)):
        proc = subprocess.Popen(argv, env=hastack_env())
        try:
            deadline = time.monotonic() + 10
            answers: list[tuple[bool, str, int | None]] = []
            while len(answers) < 2:
                assert time.monotonic() < deadline, "the counter never answered"
                answer = jepsen.request("127.0.0.1", port, 1.0)
                if answer[0]:
                    answers.append(answer)
                else:
                    time.sleep(0.05)
            assert answers == [(True, "n2", expected[0]), (True, "n2", expected[1])]
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"GET /\n")
                assert s.recv(64) == b"ERR expected INC\n"
        finally:
            proc.terminate()
            proc.wait(5)
    assert state.read_text() == "4\n"


def test_bad_command_lines_are_refused_with_the_reason() -> None:
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hastack.lab.jepsen", *args],
            capture_output=True,
            text=True,
            env=env or hastack_env(),
            timeout=30,
        )

    bad = run("--duration", "-3")
    assert bad.returncode == 2 and "must be more than 0 seconds" in bad.stderr
    bad = run("--keepalive", "2", "--deadtime", "1")
    assert bad.returncode == 2 and "must be shorter than --deadtime" in bad.stderr
    env = {k: v for k, v in hastack_env().items() if k != "HA_VARRUN"}
    bad = run("counter", env=env)
    assert bad.returncode != 0 and "give --node and --state" in bad.stderr
    assert "Traceback" not in bad.stderr


# ---------------------------------------------------------------------- the observer, for real
def test_the_observer_sees_two_holders_and_two_arp_answers(tmp_path: Path) -> None:
    """The checks must be able to fail: put the floating IP on two hosts by hand and the
    observer reports both holders at once and two MACs answering one ARP request; power a
    holder off and give the IP to another without fencing, and the takeover is unfenced."""
    with Lab([*NODES, jepsen.CLIENT, jepsen.WATCHER], links=1) as lab:
        vip = str(lab.link_subnet(0).network_address + 200)
        observer = jepsen.Observer(
            {n: lab[n].netns for n in NODES},
            lab[jepsen.CLIENT].netns,
            lab[jepsen.WATCHER].netns,
            vip,
            {n: lab[n].addr(0) for n in NODES},
            jepsen.arp_source_pool(lab),
        )
        observer.start()
        try:
            lab["n1"].run(["ip", "addr", "add", f"{vip}/24", "dev", "eth0"])
            time.sleep(0.5)
            assert observer.holder() == "n1"
            lab["n2"].run(["ip", "addr", "add", f"{vip}/24", "dev", "eth0"])
            time.sleep(0.5)
            lab["n1"].run(["ip", "addr", "del", f"{vip}/24", "dev", "eth0"])  # let go: clean
            time.sleep(0.5)
            lab["n2"].power_off()  # n2 loses it by power, and nobody fenced it
            time.sleep(0.3)
            lab["n3"].run(["ip", "addr", "add", f"{vip}/24", "dev", "eth0"])
            time.sleep(0.5)
        finally:
            observer.stop()
        assert observer.errors == []
        (incident,) = dual_vip(observer.samples)
        assert incident.nodes == ["n1", "n2"]
        assert 0.3 < float(incident.detail.split(" for ")[1].split()[0]) < 0.8
        (arp,) = jepsen.dual_arp(observer.arp, observer.macs)
        assert arp.nodes == ["n1", "n2"]
        moves = takeovers(observer.samples, [])
        assert [(m.source, m.target, m.how) for m in moves] == [
            ("n1", "n2", "released"),
            ("n2", "n3", "unfenced"),
        ], moves
        assert "n2" not in observer.samples[-1].powered


# ---------------------------------------------------------------------- the run
def test_random_faults_never_make_the_service_active_on_two_nodes(tmp_path: Path) -> None:
    seed = int(os.environ.get("HASTACK_JEPSEN_SEED") or random.SystemRandom().randrange(1 << 31))
    duration = float(os.environ.get("HASTACK_JEPSEN_DURATION") or 90)
    print(f"jepsen: seed {seed} (HASTACK_JEPSEN_SEED={seed} repeats this nemesis)")
    cfg = jepsen.Config(duration=duration, seed=seed, report=tmp_path / "jepsen.json")
    report = jepsen.run(cfg)
    print(report.summary())
    print("\n".join(report.timeline))
    assert report.observer_errors == []
    # the run did what it claims: faults were injected, nodes fenced, the IP observed
    assert len([e for e in report.events if e.kind in jepsen.Nemesis.KINDS]) >= duration / 20
    assert report.fences, "no node was ever fenced: the nemesis did not bite"
    assert report.samples > duration / jepsen.SAMPLE_INTERVAL / 2
    assert report.arp_answers > 0 and report.availability.answered > 0
    assert report.incidents == [], "dual-active:\n" + "\n".join(report.timeline)
    assert report.recovered, "the cluster did not serve again after the final heal:\n" + (
        "\n".join(report.timeline)
    )
    data = json.loads((tmp_path / "jepsen.json").read_text())
    assert data["ok"] is True and data["seed"] == seed
    assert data["availability"]["requests"] == report.availability.requests
