"""The event history: ClusterEvent's JSON form, appending with rotation, reading back with
filters, and surviving a line torn by a crash."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.crm.events import EVENTS, ClusterEvent, EventError, log_cluster_event
from hastack.crm.history import (
    HISTORY_FILE,
    EventHistory,
    history_files,
    matches,
    read_history,
)


def ev(seq: int, event: str = "resource-started", **kw: Any) -> ClusterEvent:
    return ClusterEvent.make(seq, 1000.0 + seq, event, **kw)


# -- the event and its JSON -----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
optional_text = st.none() | st.text(max_size=12)
optional_int = st.none() | st.integers(-(2**40), 2**40)
events = st.builds(
    ClusterEvent.make,
    seq=st.integers(0, 2**53),
    time=st.floats(0, 4e9, allow_nan=False),
    event=st.sampled_from(sorted(EVENTS)),
    node=optional_text,
    resource=optional_text,
    task=optional_text,
    interval_ms=st.integers(0, 2**40),
    rc=optional_int,
    target_rc=optional_int,
    status=optional_int,
    desc=st.text(max_size=30),
    previous=optional_text,
    fields=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(events)
def test_every_event_survives_its_json_form_on_one_line(event: ClusterEvent) -> None:
    text = event.to_json()
    assert "\n" not in text
    assert ClusterEvent.from_json(text) == event


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ("[1]", "JSON object"),
        ('{"seq":1,"time":1,"kind":"node"}', r"lacks field\(s\) 'event'"),
        ('{"seq":1,"time":1,"kind":"node","event":"node-lost","x":1}', "unknown event field"),
        ('{"seq":1,"time":1,"kind":"node","event":"node-exploded"}', "unknown event"),
        ('{"seq":1,"time":1,"kind":"quorum","event":"node-lost"}', "of kind 'node'"),
        ('{"seq":"1","time":1,"kind":"node","event":"node-lost"}', "'seq' must be an integer"),
        ('{"seq":1,"time":1e999,"kind":"node","event":"node-lost"}', "finite number"),
        ('{"seq":1,"time":1,"kind":"node","event":"node-lost","rc":true}', "'rc'"),
    ],
)
def test_a_bad_event_is_refused_saying_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(EventError, match=message):
        ClusterEvent.from_json(text)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_event_error(data: bytes) -> None:
    with contextlib.suppress(EventError):
        ClusterEvent.from_json(data)


def test_fields_that_are_not_json_are_refused_when_written() -> None:
    with pytest.raises(EventError, match="not JSON-serialisable"):
        ev(1, fields={"when": object()}).to_json()


def test_an_event_is_logged_as_one_structured_line(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("hastack.test.events")
    with caplog.at_level(logging.DEBUG, logger="hastack.test.events"):
        log_cluster_event(logger, ev(3, "node-lost", node="n2", desc="node n2 lost"))
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and record.getMessage() == "node n2 lost"
    assert record.event == "node-lost"  # type: ignore[attr-defined]
    assert record.fields == {"seq": 3, "node": "n2"}  # type: ignore[attr-defined]


# -- writing and reading --------------------------------------------------------------------


def test_events_are_read_back_in_order_and_filtered(tmp_path: Path) -> None:
    with EventHistory(tmp_path) as history:
        assert history.append(ev(1, "node-joined", node="n1"))
        assert history.append(ev(2, node="n1", resource="vip", task="start"))
        assert history.append(ev(3, node="n2", resource="web", task="start"))
        assert history.append(ev(4, "transition-completed", fields={"transition": 7}))
    assert [e.seq for e in read_history(tmp_path).events] == [1, 2, 3, 4]
    assert [e.seq for e in read_history(tmp_path, since=1002, until=1003).events] == [2, 3]
    assert [e.seq for e in read_history(tmp_path, node="n1").events] == [1, 2]
    assert [e.seq for e in read_history(tmp_path, resource="web").events] == [3]
    assert [e.seq for e in read_history(tmp_path, kinds={"transition"}).events] == [4]
    assert read_history(tmp_path / "nothing").events == ()


def test_matches_is_inclusive_at_both_ends() -> None:
    event = ev(5)
    assert matches(event, since=1005, until=1005)
    assert not matches(event, since=1005.001) and not matches(event, until=1004.999)


def test_the_history_rotates_by_size_and_keeps_n_files(tmp_path: Path) -> None:
    line = len(ev(10).to_json()) + 1
    history = EventHistory(tmp_path, max_bytes=line * 3, keep=2)
    for seq in range(10, 30):
        assert history.append(ev(seq))
    history.close()
    files = history_files(tmp_path)
    assert [f.name for f in files] == [HISTORY_FILE, HISTORY_FILE + ".1", HISTORY_FILE + ".2"]
    assert all(f.stat().st_size <= line * 3 for f in files)
    # 20 events, 3 per file, 3 files: the newest 8 (2 in the current one) are kept
    assert [e.seq for e in read_history(tmp_path).events] == list(range(22, 30))


def test_keep_zero_keeps_only_the_current_file(tmp_path: Path) -> None:
    line = len(ev(10).to_json()) + 1
    with EventHistory(tmp_path, max_bytes=line * 2, keep=0) as history:
        for seq in range(10, 15):
            history.append(ev(seq))
    assert [f.name for f in history_files(tmp_path)] == [HISTORY_FILE]
    assert [e.seq for e in read_history(tmp_path).events] == [14]


def test_a_line_torn_by_a_crash_is_skipped_and_the_next_write_starts_fresh(
    tmp_path: Path,
) -> None:
    with EventHistory(tmp_path) as history:
        history.append(ev(1))
        history.append(ev(2))
    path = tmp_path / HISTORY_FILE
    whole = ev(3).to_json()
    with open(path, "a") as f:
        f.write(whole[: len(whole) // 2])  # the crash: half a line, no newline
    torn = read_history(tmp_path)
    assert [e.seq for e in torn.events] == [1, 2] and torn.unreadable == 1
    with EventHistory(tmp_path) as history:  # the restarted daemon
        history.append(ev(4))
    after = read_history(tmp_path)
    assert [e.seq for e in after.events] == [1, 2, 4] and after.unreadable == 1
    assert "not JSON" in after.problems[0]


def test_a_file_seen_twice_during_a_rotation_is_read_once(tmp_path: Path) -> None:
    with EventHistory(tmp_path) as history:
        history.append(ev(1))
    # what a reader sees mid-rotation: the old current file is also the new .1
    os.link(tmp_path / HISTORY_FILE, tmp_path / (HISTORY_FILE + ".1"))
    assert [e.seq for e in read_history(tmp_path).events] == [1]


def test_a_history_that_cannot_be_written_is_logged_once_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "node"
    blocker.write_text("a file where the directory should be")
    history = EventHistory(blocker)
    with caplog.at_level(logging.WARNING, logger="hastack.crm.history"):
        assert history.append(ev(1)) is False
        assert history.append(ev(2)) is False
    failures = [r for r in caplog.records if getattr(r, "event", "") == "history-write-failed"]
    assert len(failures) == 1 and str(blocker) in failures[0].getMessage()


def test_bad_rotation_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        EventHistory(tmp_path, max_bytes=0)
    with pytest.raises(ValueError, match="keep"):
        EventHistory(tmp_path, keep=-1)


def test_an_event_is_made_from_a_controllers_flat_field_dict() -> None:
    event = ClusterEvent.from_fields(
        9,
        1009.0,
        "resource-failed",
        {
            "node": "n1",
            "resource": "web",
            "task": "monitor",
            "interval_ms": 10000,
            "rc": 7,
            "target_rc": 0,
            "status": 0,
            "desc": None,
            "tid": 4,
        },
    )
    assert (event.kind, event.node, event.resource, event.interval_ms, event.rc) == (
        "resource",
        "n1",
        "web",
        10000,
        7,
    )
    assert event.desc == "" and event.fields == {"tid": 4}
    with pytest.raises(EventError, match="unknown event 'transition-complete'"):
        ClusterEvent.from_fields(10, 1010.0, "transition-complete", {"tid": 4})
