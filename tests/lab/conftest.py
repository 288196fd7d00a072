"""Lab tests: real network namespaces, veth, bridges and nftables. They need root.

A test module that sets `NEEDS_ROOT = False` (the loopback cluster) runs without root and is
not marked `lab`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from hastack.lab.netns import NETNS_PREFIX, cleanup_stale, lab_unavailable_reason, list_netns


def _needs_root(module: object) -> bool:
    return bool(getattr(module, "NEEDS_ROOT", True))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every namespace test under tests/lab is a lab test, so `-m "not lab"` leaves them out.
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here) and _needs_root(getattr(item, "module", None)):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(autouse=True)
def _needs_lab(request: pytest.FixtureRequest) -> None:
    if not _needs_root(request.module):
        return
    reason = lab_unavailable_reason()
    if reason:
        print(f"skipping lab test: {reason}")
        pytest.skip(reason)


@pytest.fixture(autouse=True, scope="session")
def _no_namespace_left_behind() -> Iterator[None]:
    """Remove leftovers of killed earlier runs, and prove this run leaves none of its own."""
    if lab_unavailable_reason() is None:
        cleanup_stale()
    yield
    if lab_unavailable_reason() is None:
        mine = [n for n in list_netns() if n.startswith(f"{NETNS_PREFIX}{os.getpid()}x")]
        assert mine == [], f"lab namespaces left behind: {mine}"
