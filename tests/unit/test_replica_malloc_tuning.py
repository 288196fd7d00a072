"""The replica daemon keeps freed memory for reuse: a large block allocated again after one
was freed comes from memory already mapped, not from the kernel (page faults, counted)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# In a fresh interpreter (malloc settings are per process): allocate 1 MiB blocks, eight alive
# at a time, and count the minor page faults of the last 200 of them.
PROBE = textwrap.dedent(
    """\
    import collections, ctypes, resource, sys
    from hastack.replica.malloc_tuning import keep_freed_memory
    mode = sys.argv[1]
    if mode == "tuned":
        assert keep_freed_memory()
    elif mode == "from-the-kernel":  # every block mapped afresh: what the tuning avoids
        assert ctypes.CDLL(None).mallopt(-3, 64 << 10) == 1
    parts = [bytes(256 << 10) for _ in range(4)]
    held = collections.deque()
    def cycle():
        held.append(b"".join(parts))
        if len(held) > 8:
            held.popleft()
    for _ in range(50):
        cycle()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):
        cycle()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_freed_blocks_are_reused_without_page_faults() -> None:
    # 200 MiB allocated: fresh from the kernel that is 51,200 faults; reused, next to none.
    assert faults("tuned") < 200
    # the measure can tell: blocks mapped afresh fault on every page
    assert faults("from-the-kernel") > 200 * 200
