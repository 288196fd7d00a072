"""The index of byte ranges in flight: exactly the overlapping keys, whatever the ranges."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hastack.replica.ranges import RangeIndex

_range = st.tuples(st.integers(0, 1 << 16), st.integers(0, 20000)).map(
    lambda r: (r[0], r[0] + r[1])
)


@given(
    st.lists(_range, max_size=30),
    st.lists(st.integers(0, 29), max_size=15),
    _range,
)
def test_overlapping_is_exactly_the_ranges_sharing_a_byte(
    ranges: list[tuple[int, int]], removed: list[int], probe: tuple[int, int]
) -> None:
    index = RangeIndex()
    live = dict(enumerate(ranges))
    for key, (start, stop) in live.items():
        index.add(key, start, stop)
    for key in removed:
        if key in live:
            live.pop(key)
            index.remove(key)
    start, stop = probe
    expected = {key for key, (a, b) in live.items() if a < stop and start < b}
    got = index.overlapping(start, stop)
    assert sorted(got) == sorted(expected)  # each key once
    assert len(index) == len(live)


def test_a_large_write_is_found_from_any_block_it_covers_and_gone_once_removed() -> None:
    index = RangeIndex()
    index.add(7, 4096, 4096 + (1 << 20))
    assert index.overlapping(512 * 1024, 512 * 1024 + 4096) == [7]
    assert index.overlapping(0, 4096) == []  # touching is not overlapping
    index.remove(7)
    index.remove(8)  # not there: nothing happens
    assert index.overlapping(512 * 1024, 512 * 1024 + 4096) == [] and len(index) == 0
