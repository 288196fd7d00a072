"""The quorum server's and client's cores, wired together without sockets: the ffsplit
decision, tie-breakers, keep-active, transitions, authentication failures, leases and
reconnection."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from hastack.config.model import AuthKey, AuthKeys
from hastack.quorum.client import QClientCore
from hastack.quorum.effects import ClientEffect, Close, Connect, Log, Send, VoteChanged
from hastack.quorum.protocol import FrameReader, make, parse_body, seal
from hastack.quorum.server import ClusterSpec, QServerCore, TieBreaker, margin, parse_tie_breaker

KEYS = AuthKeys(1, {1: AuthKey(1, "sha256", b"k" * 32)})
OTHER_KEYS = AuthKeys(1, {1: AuthKey(1, "sha256", b"x" * 32)})
LEASE = 1.0
INTERVAL = 0.2


def counter_rng() -> Callable[[int], bytes]:
    count = itertools.count()
    return lambda n: bytes(next(count) % 256 for _ in range(n))


def spec(names: str = "abcd", name: str = "c1", votes: dict[str, int] | None = None) -> ClusterSpec:
    votes = votes or {}
    return ClusterSpec(
        name, KEYS, {n: (i, votes.get(n, 1)) for i, n in enumerate(names, start=1)}, "test"
    )


class Net:
    """One server core and client cores, messages delivered at once."""

    def __init__(
        self,
        specs: list[ClusterSpec],
        *,
        tie_breaker: TieBreaker = "lowest",
        start: float = 0.0,
        startup_hold: float | None = None,
    ) -> None:
        self.specs = {s.name: s for s in specs}
        self.server = QServerCore(
            specs,
            counter_rng(),
            start,
            lease=LEASE,
            tie_breaker=tie_breaker,
            startup_hold=startup_hold,
        )
        self.now = start
        self.clients: dict[str, QClientCore] = {}
        self.conn: dict[str, int | None] = {}
        self.conn_ids = itertools.count(1)
        self.reachable: dict[str, bool] = {}
        self.changes: dict[str, list[VoteChanged]] = {}
        self.server_logs: list[Log] = []
        self.client_logs: dict[str, list[Log]] = {}

    def add(
        self,
        node: str,
        cluster: str = "c1",
        keys: AuthKeys = KEYS,
        node_id: int | None = None,
        members: str | None = None,
    ) -> QClientCore:
        known = self.specs[cluster].nodes.get(node, (99, 1)) if cluster in self.specs else (99, 1)
        client = QClientCore(
            cluster,
            node,
            node_id if node_id is not None else known[0],
            keys,
            counter_rng(),
            interval=INTERVAL,
            backoff_min=0.1,
            backoff_max=1.0,
        )
        self.clients[node] = client
        self.conn[node] = None
        self.reachable[node] = True
        self.changes[node] = []
        self.client_logs[node] = []
        self.deliver(node, client.membership(tuple(members or node), (1, 0), 0, self.now))
        self.deliver(node, client.tick(self.now))
        return client

    def view(self, members: str, ring: int = 1, resources: int = 0) -> None:
        """Every node in `members` now sees exactly `members`."""
        for node in members:
            c = self.clients[node]
            self.deliver(node, c.membership(tuple(members), (ring, 0), resources, self.now))

    def deliver(self, node: str, effects: list[ClientEffect]) -> None:
        client = self.clients[node]
        for effect in effects:
            if isinstance(effect, Connect):
                if not self.reachable[node]:
                    self.deliver(node, client.disconnected(self.now, "unreachable"))
                    continue
                conn = next(self.conn_ids)
                self.conn[node] = conn
                self.deliver(node, client.connected(self.now))
                self.server_effects(self.server.connected(conn, self.now))
            elif isinstance(effect, Send):
                conn = self.conn[node]
                if conn is not None and self.reachable[node]:
                    self.server_effects(self.server.received(conn, effect.data, self.now))
            elif isinstance(effect, Close):
                conn = self.conn[node]
                self.conn[node] = None
                if conn is not None and self.reachable[node]:  # else the server never hears
                    self.server_effects(self.server.closed(conn, self.now))
            elif isinstance(effect, VoteChanged):
                self.changes[node].append(effect)
            else:
                self.client_logs[node].append(effect)

    def node_of(self, conn: int) -> str | None:
        return next((n for n, c in self.conn.items() if c == conn), None)

    def server_effects(self, effects: list[object]) -> None:
        for effect in effects:
            if isinstance(effect, Log):
                self.server_logs.append(effect)
                continue
            assert isinstance(effect, Send | Close)
            node = self.node_of(effect.conn)
            if node is None:
                if isinstance(effect, Close):
                    self.server_effects(self.server.closed(effect.conn, self.now))
                continue
            if isinstance(effect, Send):
                if self.reachable[node]:
                    self.deliver(node, self.clients[node].received(effect.data, self.now))
            else:
                self.conn[node] = None
                self.server_effects(self.server.closed(effect.conn, self.now))
                self.deliver(node, self.clients[node].disconnected(self.now, effect.reason))

    def run(self, seconds: float, step: float = 0.05) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = round(self.now + step, 6)
            for node, client in list(self.clients.items()):
                self.deliver(node, client.tick(self.now))
            self.server_effects(self.server.tick(self.now))

    def voters(self) -> set[str]:
        return {n for n, c in self.clients.items() if c.has_vote(self.now)}


def started(names: str = "ab", **kw: object) -> Net:
    """A net whose server is past its start-up quiet period, with `names` connected."""
    net = Net([spec()], **kw)  # type: ignore[arg-type]
    for n in names:
        net.add(n, members=names)
    net.run(LEASE + margin(LEASE) + 0.5)
    return net


# -- the ffsplit decision ---------------------------------------------------------------------


def test_a_whole_cluster_gets_the_vote_after_the_start_up_quiet_period() -> None:
    net = Net([spec()])
    for n in "abc":
        net.add(n, members="abc")
    net.run(LEASE)
    assert net.voters() == set()  # a new server gives nothing until earlier grants are over
    assert "started recently" in net.clients["a"].last_reason
    net.run(margin(LEASE) + 0.5)
    assert net.voters() == {"a", "b", "c"}


def test_a_longer_startup_hold_covers_an_earlier_runs_longer_lease() -> None:
    net = Net([spec()], startup_hold=3.0)
    net.add("a", members="a")
    net.run(3.0)
    assert not net.clients["a"].has_vote(net.now)
    assert net.server.status(net.now)["starting_for"] > 0
    net.run(margin(3.0) + 0.5)
    assert net.clients["a"].has_vote(net.now)


def test_the_larger_partition_wins() -> None:
    net = started("abc")
    net.view("c")
    net.view("ab")
    net.run(0.5)
    assert net.voters() == {"a", "b"}
    assert "largest partition" in net.clients["a"].last_reason


def test_votes_count_not_nodes() -> None:
    net = Net([spec("abc", votes={"c": 3})])
    for n in "abc":
        net.add(n, members="abc")
    net.view("ab")
    net.view("c")
    net.run(LEASE + margin(LEASE) + 0.5)
    assert net.voters() == {"c"}


@pytest.mark.parametrize(
    ("rule", "winner"),
    [("lowest", {"a", "b"}), ("highest", {"c", "d"}), (3, {"c", "d"}), (99, {"a", "b"})],
)
def test_tie_breakers_on_a_fresh_split(rule: TieBreaker, winner: set[str]) -> None:
    net = Net([spec()], tie_breaker=rule)
    for n in "abcd":
        net.add(n, members="abcd")
    net.view("ab")
    net.view("cd")
    net.run(LEASE + margin(LEASE) + 0.5)
    assert net.voters() == winner


def test_resources_tie_breaker_prefers_the_busier_partition() -> None:
    net = Net([spec()], tie_breaker="resources")
    for n in "abcd":
        net.add(n, members="abcd")
    net.view("ab", resources=1)
    net.view("cd", resources=5)
    net.run(LEASE + margin(LEASE) + 0.5)
    assert net.voters() == {"c", "d"}


def test_keep_active_the_holder_keeps_the_vote_on_a_tie() -> None:
    net = Net([spec()])
    for n in "abcd":
        net.add(n, members="abcd")
    net.view("cd")
    net.run(LEASE + margin(LEASE) + 0.5)
    assert net.voters() == {"c", "d"}  # alone, so the largest
    net.view("ab")  # a and b form a partition of equal size and hold the lowest id
    net.run(3 * LEASE)
    assert net.voters() == {"c", "d"}
    assert "keeps it" in net.clients["a"].last_reason


def test_a_partition_in_transition_gets_no_new_grant() -> None:
    net = Net([spec("abc")])
    net.add("a", members="abc")
    net.add("b", members="abc")
    net.add("c", members="bc")  # c is a member of {a,b,c} but reports another view
    net.run(LEASE + margin(LEASE) + 0.5)
    assert net.voters() == set()
    assert "in transition" in net.clients["a"].last_reason
    net.view("abc")  # c settles
    net.run(0.5)
    assert net.voters() == {"a", "b", "c"}


def test_the_vote_moves_only_after_the_old_holders_grants_expire() -> None:
    net = started("ab")
    before = net.now
    until_a = net.clients["a"].vote_until
    assert until_a is not None and until_a > net.now
    net.reachable["a"] = False  # site 1 vanishes without closing anything
    net.view("b", ring=2)
    moved_at = None
    while net.now < before + 3 * LEASE:
        net.run(0.05)
        if moved_at is None and net.clients["b"].has_vote(net.now):
            moved_at = net.now
    assert moved_at is not None
    assert moved_at >= until_a  # never both: b's vote starts after a's last grant ended
    assert not net.clients["a"].has_vote(net.now)
    assert any("silent" in log.message for log in net.server_logs)


def test_membership_change_drops_the_vote_at_once_and_says_why() -> None:
    net = started("ab")
    assert net.clients["a"].has_vote(net.now)
    net.view("a", ring=2)
    assert not net.clients["a"].has_vote(net.now)
    assert net.changes["a"][-1].vote is False
    assert "membership changed" in net.changes["a"][-1].reason


def test_lease_expires_without_the_server_and_the_client_says_so() -> None:
    net = started("ab")
    client = net.clients["a"]
    until = client.vote_until
    assert until is not None and until <= net.now + LEASE
    net.reachable["a"] = False
    net.reachable["b"] = False
    net.run(LEASE + 0.1)
    assert not client.has_vote(net.now)
    assert net.changes["a"][-1].vote is False
    assert "lease expired" in net.changes["a"][-1].reason
    assert any("silent" in log.message for log in net.client_logs["a"])


def test_the_client_reconnects_with_backoff_and_regains_the_vote() -> None:
    net = started("ab")
    net.reachable["a"] = False
    net.run(3 * LEASE)
    assert not net.clients["a"].has_vote(net.now)
    retries = [log for log in net.client_logs["a"] if "reconnecting in" in log.message]
    assert len(retries) >= 2
    delays = [log.fields["retry_in"] for log in retries]
    assert max(delays) > min(delays)  # it backs off
    net.reachable["a"] = True
    net.run(2.0)
    assert net.clients["a"].has_vote(net.now)


def test_grant_is_counted_from_the_send_time_of_the_report() -> None:
    core = QClientCore("c1", "a", 1, KEYS, counter_rng(), interval=10)
    core.membership(("a",), (1, 0), 0, 0.0)
    core.tick(0.0)
    core.connected(0.0)
    reader = FrameReader()
    nonce = "01" * 16
    [hello] = core.received(seal(make("challenge", nonce=nonce), None), 0.0)
    assert isinstance(hello, Send)
    session = parse_body(reader.feed(hello.data)[0], "c")["s"]

    def signed(kind: str, n: int, **fields: object) -> bytes:
        return seal(make(kind, c="c1", s=session, d="s", n=n, **fields), KEYS.signing)

    [_, report] = core.received(signed("welcome", 0, lease=5.0, reason="hi"), 1.0)
    assert isinstance(report, Send)
    req = parse_body(reader.feed(report.data)[0], "c")["req"]
    # the answer arrives 2 s after the report was sent: valid until 1.0 + 5.0, not 3.0 + 5.0
    core.received(signed("vote", 1, req=req, grant=True, lease=5.0, seq=1, reason="ok"), 3.0)
    assert core.vote_until == pytest.approx(6.0)
    assert core.has_vote(5.9) and not core.has_vote(6.0)


# -- authentication and refusals --------------------------------------------------------------


def _refusals(net: Net) -> list[str]:
    return [log.message for log in net.server_logs if log.event == "qserver-refused"]


def test_unknown_cluster_is_refused_with_a_logged_reason() -> None:
    net = Net([spec()])
    net.add("a", cluster="nosuch")
    net.run(0.1)
    assert any("unknown cluster 'nosuch'" in m and "serves: c1" in m for m in _refusals(net))
    assert any("refused" in log.message for log in net.client_logs["a"])
    assert net.server.refused >= 1


def test_wrong_key_is_refused() -> None:
    net = Net([spec()])
    net.add("a", keys=OTHER_KEYS)
    net.run(0.1)
    assert any("bad signature for cluster c1" in m for m in _refusals(net))


def test_a_node_not_in_the_cluster_or_with_another_id_is_refused() -> None:
    net = Net([spec("ab")])
    net.add("z")
    net.add("b", node_id=7)
    net.run(0.1)
    refusals = _refusals(net)
    assert any("z is not a node" in m for m in refusals)
    assert any("b has node id 2, not 7" in m for m in refusals)


def _handshake(server: QServerCore, conn: int) -> tuple[str, FrameReader]:
    reader = FrameReader()
    [challenge] = server.connected(conn, 5.0)
    assert isinstance(challenge, Send)
    nonce = parse_body(reader.feed(challenge.data)[0], "s")["nonce"]
    return nonce + "ee" * 16, reader


def _hello(session: str) -> bytes:
    return seal(
        make("hello", c="c1", s=session, d="c", n=0, node="a", id=1, votes=1, interval=0.2),
        KEYS.signing,
    )


def _report(session: str, n: int, req: int) -> bytes:
    return seal(
        make(
            "report",
            c="c1",
            s=session,
            d="c",
            n=n,
            req=req,
            members=["a"],
            ring=[1, 0],
            resources=0,
        ),
        KEYS.signing,
    )


def _closed(effects: list[object]) -> list[str]:
    return [e.reason for e in effects if isinstance(e, Close)]


def test_a_replayed_frame_on_the_same_connection_is_refused() -> None:
    server = QServerCore([spec()], counter_rng(), 0.0, lease=LEASE)
    session, _ = _handshake(server, 1)
    server.received(1, _hello(session), 5.0)
    frame = _report(session, 1, 1)
    assert not _closed(server.received(1, frame, 5.1))
    reasons = _closed(server.received(1, frame, 5.2))
    assert reasons and "replayed or out-of-order" in reasons[0]


def test_a_frame_replayed_on_another_connection_is_refused() -> None:
    server = QServerCore([spec()], counter_rng(), 0.0, lease=LEASE)
    old_session, _ = _handshake(server, 1)
    hello = _hello(old_session)
    server.received(1, hello, 5.0)
    server.closed(1, 5.0)
    _handshake(server, 2)  # a new challenge: the recorded hello answers the old one
    reasons = _closed(server.received(2, hello, 5.1))
    assert reasons and "does not answer this connection's challenge" in reasons[0]


def test_a_server_message_reflected_back_is_refused() -> None:
    server = QServerCore([spec()], counter_rng(), 0.0, lease=LEASE)
    session, _ = _handshake(server, 1)
    [*_, welcome] = server.received(1, _hello(session), 5.0)
    assert isinstance(welcome, Send)
    reasons = _closed(server.received(1, welcome.data, 5.1))
    assert reasons and "bad frame" in reasons[0]
    assert server.bad_frames == 1


def test_status_lists_partitions_and_the_holder() -> None:
    net = started("ab")
    status = net.server.status(net.now)
    view = status["clusters"]["c1"]
    assert view["vote_holder"] == ["a", "b"]
    assert 0 < view["vote_remaining"] <= LEASE + margin(LEASE)
    assert view["partitions"][0]["members"] == ["a", "b"] and view["partitions"][0]["settled"]
    assert view["nodes"]["a"]["connected"] and not view["nodes"]["c"]["connected"]


def test_many_clusters_are_independent() -> None:
    net = Net([spec("ab", "one"), spec("ab", "two")])
    net.clients.clear()
    a1 = net.add("a", cluster="one", members="a")
    net.run(LEASE + margin(LEASE) + 0.5)
    assert a1.has_vote(net.now)
    status = net.server.status(net.now)
    assert status["clusters"]["two"]["vote_holder"] is None


def test_parse_tie_breaker_names_what_is_allowed() -> None:
    assert parse_tie_breaker("highest") == "highest"
    assert parse_tie_breaker("3") == 3
    with pytest.raises(ValueError, match="lowest, highest, resources or a node id"):
        parse_tie_breaker("biggest")


def test_margin_covers_opposite_clock_drift() -> None:
    lease, drift = 10.0, 0.01
    # client's end at most lease*(1+d) real seconds after sending; server's at least
    # (lease+margin)*(1-d) after receiving
    assert (lease + margin(lease, drift)) * (1 - drift) >= lease * (1 + drift)
