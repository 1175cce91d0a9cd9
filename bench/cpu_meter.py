"""CPU seconds spent by each role of a benchmark (servers, PostgreSQL, Redis, the load
generator) over a measured interval, beside the whole machine's busy time.

On a 2-core box the load generator, the database, Redis and the API processes all
share the same cores (and other people's work shares them too), so a throughput
number alone cannot say whether a second replica would scale: the CPU each role
burns per request can. Read with psutil from /proc, so it needs no cooperation
from the measured processes; a process that exits during the interval loses its
time (PostgreSQL backends of a connection pool live for the whole pass).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psutil

LOAD_GENERATOR = "load generator"

# (pid, create_time) so that a reused pid is a different process.
ProcessKey = tuple[int, float]


@dataclass(frozen=True)
class CpuSample:
    per_role: dict[str, dict[ProcessKey, float]]
    machine_busy_s: float
    machine_steal_s: float


def _cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _tree(pid: int) -> dict[ProcessKey, float]:
    """User + system CPU seconds of `pid` and every descendant alive now."""
    out: dict[ProcessKey, float] = {}
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return out
    for proc in procs:
        try:
            out[(proc.pid, proc.create_time())] = _cpu_s(proc)
        except psutil.Error:
            continue
    return out


def _machine() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, all cores summed."""
    t = psutil.cpu_times()
    # Linux already counts guest time inside user and nice: summing every field would
    # count it twice.
    busy = sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq"))
    return float(busy), float(getattr(t, "steal", 0.0))


class CpuMeter:
    """`sample()` before and after an interval; `delta()` says who used the CPU.

    `roles` maps a role name to the root pids whose whole process trees count for it
    (a server and any children; PostgreSQL's postmaster and its backends). The load
    generator is this process only, never its children: the servers are its children.
    """

    def __init__(self, roles: Mapping[str, Sequence[int]]) -> None:
        self.roles = {name: list(pids) for name, pids in roles.items()}
        self._own = psutil.Process(os.getpid())

    def sample(self) -> CpuSample:
        per_role: dict[str, dict[ProcessKey, float]] = {}
        for name, pids in self.roles.items():
            merged: dict[ProcessKey, float] = {}
            for pid in pids:
                merged.update(_tree(pid))
            per_role[name] = merged
        per_role[LOAD_GENERATOR] = {(self._own.pid, self._own.create_time()): _cpu_s(self._own)}
        busy, steal = _machine()
        return CpuSample(per_role, busy, steal)

    @staticmethod
    def delta(before: CpuSample, after: CpuSample, wall_s: float) -> dict[str, float]:
        """CPU seconds per role, the machine's busy seconds, and what no role explains
        ("other processes": anything else running on the box, e.g. other benchmarks)."""
        out: dict[str, float] = {}
        for name, now in after.per_role.items():
            then = before.per_role.get(name, {})
            out[name] = round(sum(s - then.get(key, 0.0) for key, s in now.items()), 3)
        busy = after.machine_busy_s - before.machine_busy_s
        ours = sum(out.values())
        out["machine busy"] = round(busy, 3)
        out["other processes"] = round(max(0.0, busy - ours), 3)
        out["steal"] = round(after.machine_steal_s - before.machine_steal_s, 3)
        out["capacity"] = round(wall_s * (psutil.cpu_count() or 1), 3)
        return out
