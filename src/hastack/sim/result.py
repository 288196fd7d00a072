"""What a simulation run returns: violations (with the log that led to them) and a trace hash."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hastack.sim.scenario import FAULT_KINDS

INVARIANTS = {
    "two-dc": "(a) never two nodes holding a valid DC lease at the same real time",
    "split-quorum": "(b) no quorum on both sides of a stable symmetric partition",
    "no-dc": "(c) a stable quorate partition elects a DC within the bound",
    "no-convergence": "(d) after the network heals, live members agree on members and DC",
    "core-error": "the core raised an exception or stopped making progress",
    "crm-double-active": "(1) no resource active on two live nodes for longer than the bound",
    "crm-no-convergence": "(2) stable and all up: every resource active exactly once, DC idle",
    "crm-stale-order": "(3) every action a node runs was ordered by the DC of its term",
    "crm-error": "the controller or messaging core raised or stopped making progress",
    "fence-before-move": "(4, fencing) a resource that ran on a node starts on another only "
    "after that node was powered off (fenced or crashed) or stopped it itself",
    "minority-stops": "(5, fencing) a node cut off in a minority has stopped its resources "
    "within its bound (unless it was fenced first)",
    "fence-without-quorum": "(6, fencing) only a quorate partition fences: the controller asks "
    "for a fencing, and hands it to its fencer, only while its node's membership is quorate "
    "(no-quorum-policy=suicide and a two_node survivor's own fencing excepted)",
    "qserver-error": "the quorum server's core or a node's client of it raised",
}


@dataclass(frozen=True)
class SimConfig:
    """Everything besides the seed that determines a run."""

    nodes: int = 3
    faults: tuple[str, ...] = FAULT_KINDS
    duration: float | None = None  # None: long enough for two fault windows
    keepalive: float = 0.1
    deadtime: float = 0.5
    log_lines: int = 200  # the ring buffer of recent events kept for a violation report
    socket_buffer: int = 64  # datagrams queued per link for a paused node; more are dropped
    core: str = ""  # "module:Class" of another core (a mutant, to prove the checker); "" = real
    crm: bool = False  # run the resource manager too (controller, messaging, executor)
    controller: str = ""  # "module:Class" of another controller (with crm); "" = the real one
    # with crm: stonith-enabled=true, a simulated fence device, a real Fencer per node, and
    # the strict invariants (no double activity at all; fence before move; minority stops)
    fencing: bool = False

    def replay_command(self, seed: int, duration: float) -> str:
        return (
            f"hastack sim --nodes {self.nodes} --seed {seed} --faults {','.join(self.faults)}"
            f" --duration {duration:g} --keepalive {self.keepalive:g} --deadtime {self.deadtime:g}"
            + (f" --core {self.core}" if self.core else "")
            + (" --crm" if self.crm else "")
            + (f" --controller {self.controller}" if self.crm and self.controller else "")
            + (" --fencing" if self.crm and self.fencing else "")
        )


@dataclass(frozen=True)
class Violation:
    seed: int
    time: float  # simulated real time, seconds
    invariant: str  # a key of INVARIANTS
    message: str
    log: tuple[str, ...]  # the most recent events before the violation, oldest first
    replay: str  # the command that replays this run

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def description(self) -> str:
        """What the violated invariant promises (its entry in INVARIANTS)."""
        return INVARIANTS.get(self.invariant, self.invariant)

    def render(self) -> str:
        lines = [
            f"VIOLATION seed={self.seed} t={self.time:.6f} {self.invariant}: {self.message}",
            f"  invariant: {self.description()}",
            f"  replay:    {self.replay}",
            "  recent events:",
        ]
        lines += [f"    {line}" for line in self.log]
        return "\n".join(lines)


@dataclass
class SimResult:
    seed: int
    config: SimConfig
    duration: float
    violations: list[Violation]
    trace_hash: str  # over every step and every effect: equal hashes = identical runs
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def replay(self) -> str:
        return self.config.replay_command(self.seed, self.duration)

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "nodes": self.config.nodes,
            "faults": list(self.config.faults),
            "duration": self.duration,
            "ok": self.ok,
            "violations": [v.to_json() for v in self.violations],
            "trace_hash": self.trace_hash,
            "stats": self.stats,
            "replay": self.replay,
        }
