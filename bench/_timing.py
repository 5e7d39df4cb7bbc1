"""Timing shared by the benchmarks: interleaved repetitions, medians, and a check for other load.

On a small shared machine (2 cores) another process taking one core does not slow a 2-thread
torch run by half but by 2-10x: every OpenMP region waits for the preempted thread. Such a
repetition says nothing about the code being timed, so each repetition is watched: the CPU time
the whole machine spent (``/proc/stat``) minus what this process spent (``time.process_time``)
is the share taken by others. Before each repetition the benchmark waits (up to ``patience``
seconds in all) for a moment when others use less than ``max_other`` of the machine, and a
repetition during which they used more is discarded and run again (at most ``3 * reps`` times);
how many were discarded is reported. Off Linux there is no ``/proc/stat``: no waiting, nothing
discarded.
"""
from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (None off Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guest = sum(fields[8:10])  # guest time is already counted in user
    return (sum(fields) - idle - guest) / _TICK


class Watch:
    """Wall time of a block, and the share of the machine other processes used meanwhile."""

    def __enter__(self) -> Watch:
        self._busy, self._own = _busy_seconds(), time.process_time()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self._wall
        own = time.process_time() - self._own
        busy = _busy_seconds()
        if busy is None or self._busy is None:
            self.other = 0.0
        else:
            # /proc/stat counts in ticks (10 ms): allow one tick per core of rounding.
            others = max(0.0, busy - self._busy - own - (os.cpu_count() or 1) / _TICK)
            self.other = others / (self.seconds * (os.cpu_count() or 1))


def other_load(window: float = 0.5) -> float:
    """The share of the machine other processes used over the next ``window`` seconds."""
    with Watch() as w:
        time.sleep(window)
    return w.other


def wait_quiet(max_other: float, deadline: float) -> float:
    """Sleep until others use at most ``max_other`` of the machine, or until ``deadline``.

    Returns the seconds waited.
    """
    start = time.perf_counter()
    while time.perf_counter() < deadline and other_load() > max_other:
        pass
    return time.perf_counter() - start


def measure(
    calls: dict[str, Callable[[], Any]], *, reps: int, warmup: int, max_other: float = 0.10,
    patience: float = 900.0,
) -> dict[str, Any]:
    """Run every call ``warmup`` times, then ``reps`` accepted interleaved repetitions.

    Within a repetition the calls run in an order rotated by one each time, so none always
    follows the same neighbour. Returns ``{"times": {name: [seconds per accepted rep]},
    "discarded": n, "other": [share per accepted rep], "waited": seconds}``.
    """
    deadline = time.perf_counter() + patience
    waited = 0.0
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    other: list[float] = []
    discarded = attempt = 0
    while len(other) < reps:
        order = names[attempt % len(names):] + names[:attempt % len(names)]
        attempt += 1
        rep: dict[str, float] = {}
        waited += wait_quiet(max_other, deadline)
        with Watch() as whole:
            for name in order:
                gc.collect()
                with Watch() as w:
                    calls[name]()
                rep[name] = w.seconds
        if whole.other > max_other and discarded < 3 * reps and time.perf_counter() < deadline:
            discarded += 1
            continue
        for name in names:
            times[name].append(rep[name])
        other.append(whole.other)
    return {"times": times, "discarded": discarded, "other": other, "waited": waited}


def median_ratio(a: list[float], b: list[float]) -> float:
    """The median over repetitions of ``a[i] / b[i]``."""
    return statistics.median(p / q for p, q in zip(a, b))


def summarize(measured: dict[str, Any], ratios: Any, bare_batches: Any = None) -> dict[str, Any]:
    """Medians (and minima), medians of the per-repetition ratios, and the load record.

    With ``bare_batches``, the contenders ``bare@B`` are the same bare work at several batch sizes
    and ``bare`` is the fastest of them (its batch size under ``bare_batch``).
    """
    times = measured["times"]
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    series, out = dict(times), {}
    if bare_batches:
        best = min(bare_batches, key=lambda b: medians[f"bare@{b}"])
        series["bare"] = times[f"bare@{best}"]
        medians["bare"] = medians[f"bare@{best}"]
        out["bare_batch"] = best
    return {
        "seconds": medians,
        "min_seconds": {name: min(ts) for name, ts in series.items()},
        **out,
        "ratios": {f"{a}/{b}": median_ratio(series[a], series[b]) for a, b in ratios},
        "discarded_reps": measured["discarded"],
        "waited_seconds": measured.get("waited"),
        "other_load": measured.get("other"),
        "runs": times,
    }
