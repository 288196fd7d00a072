"""Cluster messaging between two namespace hosts over two links, with links cut mid-way.

Each host runs this file as a driver (`python test_messaging_lab.py driver ...`, inside the
namespace): a MessagingCore on the message_link endpoints of two ucast links, sending N
messages of mixed sizes (up to 1 MiB, incompressible) to the other host and writing one JSON
line per delivered message. Mid-way the test drops all of n1's traffic on link 0 (nftables),
later cuts link 1 as well for a moment and heals only link 1: every message still arrives
once, in order, intact, over what is left.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from hastack.config.model import AuthKey, AuthKeys, Link

KEYS = AuthKeys(1, {1: AuthKey(1, "sha256", b"lab-messaging-key-0123456789abcdef")})
CLUSTER = "lab"
PORT = 7694  # heartbeat's would be 7694; messaging uses 7695
COUNT = 60
SIZES = (0, 100, 5000, 60_000, 300_000, 1024 * 1024)
KEEPALIVE = 0.1


def make_payload(seed: int, sender: str, number: int) -> bytes:
    """Message `number` of `sender`: its number, then random bytes of a drawn size (the test
    recomputes it to check what was delivered)."""
    rng = random.Random(f"{seed}:{sender}:{number}")
    return number.to_bytes(4, "big") + rng.randbytes(rng.choice(SIZES))


# ---- the driver (runs inside a namespace) ----------------------------------------------------


async def drive(args: argparse.Namespace) -> None:
    from hastack.messaging.core import (
        Deliver,
        Effect,
        MessagingCore,
        MessagingParams,
        StreamReset,
        Transmit,
    )
    from hastack.transport.base import LinkEndpoint
    from hastack.transport.message_link import message_endpoint_for

    loop = asyncio.get_running_loop()
    core = MessagingCore(CLUSTER, args.name, 1, KEYS, MessagingParams.from_timing(KEEPALIVE))
    out = open(args.out, "a", buffering=1)  # noqa: SIM115 (lives as long as the driver)
    received = 0
    timer: asyncio.TimerHandle | None = None
    endpoints: list[LinkEndpoint] = []
    stop = asyncio.Event()

    def log(**fields: Any) -> None:
        out.write(json.dumps(fields) + "\n")

    def execute(effects: list[Effect]) -> None:
        nonlocal received
        for effect in effects:
            if isinstance(effect, Transmit):
                for endpoint in endpoints:
                    endpoint.send(effect.data)
            elif isinstance(effect, Deliver):
                received += 1
                log(
                    event="deliver",
                    sender=effect.sender,
                    generation=effect.generation,
                    number=int.from_bytes(effect.payload[:4], "big"),
                    sha=hashlib.sha256(effect.payload).hexdigest(),
                )
            elif isinstance(effect, StreamReset):
                log(event="reset", sender=effect.sender, reason=effect.reason)
        arm()

    def arm() -> None:
        nonlocal timer
        if timer is not None:
            timer.cancel()
            timer = None
        deadline = core.next_deadline()
        if deadline != float("inf"):
            timer = loop.call_at(deadline, lambda: execute(core.tick(max(loop.time(), deadline))))

    for j, peer_address in enumerate(args.peer):
        link = Link(
            kind="ucast",
            name=f"ucast eth{j}",
            interface=f"eth{j}",
            addresses=(peer_address,),
            port=PORT,
        )
        endpoint = message_endpoint_for(
            link, lambda data, name: execute(core.receive(data, name, loop.time()))
        )
        assert endpoint is not None
        endpoint.on_batch_end = lambda: execute(core.flush(loop.time()))
        await endpoint.open()
        endpoints.append(endpoint)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    execute(core.set_peers([args.peer_name], loop.time()))
    log(event="ready")
    go = Path(args.go)
    while not go.exists():
        await asyncio.sleep(0.01)
    for number in range(args.count):
        execute(core.send(make_payload(args.seed, args.name, number), loop.time()))
        await asyncio.sleep(0.025)
    while core.pending() or core.backlog() or received < args.count:
        await asyncio.sleep(0.01)
    log(
        event="done",
        counters=core.counters,
        links={e.name: e.describe() for e in endpoints},
    )
    await stop.wait()  # keep acknowledging until the test is done with both sides
    for endpoint in endpoints:
        endpoint.close()


def driver_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="messaging lab driver (test use only)")
    parser.add_argument("--name", required=True)
    parser.add_argument("--peer-name", required=True)
    parser.add_argument("--peer", action="append", required=True, help="peer address per link")
    parser.add_argument("--count", type=int, default=COUNT)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--go", required=True, help="start sending once this file exists")
    asyncio.run(drive(parser.parse_args(argv)))


if __name__ == "__main__":
    if sys.argv[1:2] != ["driver"]:
        sys.exit("usage: test_messaging_lab.py driver --name N --peer-name P --peer ADDR ...")
    driver_main(sys.argv[2:])
    sys.exit(0)


# ---- the test (runs as root in the host namespace) ----------------------------------------

import pytest  # noqa: E402  (after the driver: it needs no pytest)

from hastack.lab.netns import Lab  # noqa: E402


def events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def wait_until(what: str, predicate: Any, timeout: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tails = "\n".join(f"{p}:\n{p.read_text()[-2000:]}" for p in logs if p.exists())
            pytest.fail(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.02)


def delivered(path: Path) -> list[dict[str, Any]]:
    return [e for e in events(path) if e["event"] == "deliver"]


def test_messages_arrive_once_in_order_over_the_remaining_link(tmp_path: Path) -> None:
    seed = 11
    with Lab(["n1", "n2"], links=2) as lab:
        outs = {name: tmp_path / f"{name}.jsonl" for name in ("n1", "n2")}
        logs = [tmp_path / f"{name}.log" for name in ("n1", "n2")]
        go = tmp_path / "go"
        for name, peer in (("n1", "n2"), ("n2", "n1")):
            argv = [sys.executable, __file__, "driver", "--name", name, "--peer-name", peer]
            for j in range(2):
                argv += ["--peer", lab[peer].addr(j)]
            argv += ["--seed", str(seed), "--out", str(outs[name]), "--go", str(go)]
            lab[name].start(argv, log_path=str(tmp_path / f"{name}.log"))
        paths = [*outs.values(), *logs]
        wait_until(
            "both drivers ready",
            lambda: all(any(e["event"] == "ready" for e in events(p)) for p in outs.values()),
            15,
            paths,
        )
        go.touch()
        # a third of the way: n1 loses link 0 for good
        wait_until("a third delivered", lambda: len(delivered(outs["n2"])) >= COUNT // 3, 30, paths)
        lab.cut("n1", link=0)
        # two thirds: link 1 goes too for a moment (retransmission repairs it), then comes back
        wait_until(
            "two thirds delivered", lambda: len(delivered(outs["n2"])) >= 2 * COUNT // 3, 30, paths
        )
        outage = lab.cut("n1", link=1)
        time.sleep(0.3)
        lab.heal(cuts=outage)
        wait_until(
            "both drivers done",
            lambda: all(any(e["event"] == "done" for e in events(p)) for p in outs.values()),
            60,
            paths,
        )
        link0_drops = lab["n1"].nft_counters()
        for proc in lab.processes:
            proc.reap(grace=2.0)

    for receiver, sender in (("n2", "n1"), ("n1", "n2")):
        got = delivered(outs[receiver])
        assert [e["number"] for e in got] == list(range(COUNT)), f"{receiver} from {sender}"
        expected = [hashlib.sha256(make_payload(seed, sender, n)).hexdigest() for n in range(COUNT)]
        assert [e["sha"] for e in got] == expected
        resets = [e for e in events(outs[receiver]) if e["event"] == "reset"]
        assert resets == [{"event": "reset", "sender": sender, "reason": "restarted"}]
    done = {name: next(e for e in events(p) if e["event"] == "done") for name, p in outs.items()}
    # the cuts bit: n1's link 0 refused sends, and the outage of both links needed repairs
    assert done["n1"]["links"]["ucast eth0"]["tx_errors"] > 0, done["n1"]["links"]
    assert "drop" in link0_drops and "packets 0 " not in link0_drops.split("oifname")[1]
    retransmits = sum(
        d["counters"].get("retransmits-timeout", 0) + d["counters"].get("retransmits-fast", 0)
        for d in done.values()
    )
    assert retransmits > 0, done
