"""``--plot FILE.png``: the run's timeline, drawn with matplotlib (the ``plot`` extra).

Three panels sharing the time axis: the stored state, calls admitted and refused per second,
store reads and writes per second; one line style per protocol.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any, Final

from fleetbreaker import CircuitState
from fleetbreaker._sim.engine import Result

__all__ = ["PlotUnavailableError", "plot", "pyplot"]

_LEVEL: Final = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}
_STYLES: Final = ("-", "--")


class PlotUnavailableError(Exception):
    """matplotlib is not installed."""


def pyplot() -> Any:
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        raise PlotUnavailableError(
            "--plot needs matplotlib: pip install 'fleetbreaker[plot]'"
        ) from None
    matplotlib.use("Agg")  # a file, never a window
    return importlib.import_module("matplotlib.pyplot")


def _state_steps(result: Result) -> tuple[list[float], list[int]]:
    times, levels = [0.0], [0]
    for at, _old, new in result.tally.transitions:
        times.append(at)
        levels.append(_LEVEL[new])
    times.append(result.p.duration)
    levels.append(levels[-1])
    return times, levels


def plot(results: list[Result], path: Path) -> None:
    """Draw the timeline of ``results`` (one or two protocols, one run) into ``path`` (PNG)."""
    plt = pyplot()
    p = results[0].p
    figure, (state, calls, store) = plt.subplots(
        3, 1, sharex=True, figsize=(10, 8), constrained_layout=True
    )
    for axis in (state, calls, store):
        axis.axvspan(p.outage_start, p.heal, color="tab:red", alpha=0.08)
        axis.grid(visible=True, alpha=0.3)
    for result, style in zip(results, _STYLES, strict=False):
        name = result.protocol
        # The buckets past the run's end hold only the calls still in flight: left out.
        seconds = list(range(math.ceil(p.duration)))
        count = len(seconds)
        times, levels = _state_steps(result)
        state.step(times, levels, where="post", linestyle=style, label=name)
        calls.step(
            seconds,
            result.admitted_by_second[:count],
            where="post",
            linestyle=style,
            color="tab:green",
            label=f"{name}: admitted",
        )
        calls.step(
            seconds,
            result.refused_by_second[:count],
            where="post",
            linestyle=style,
            color="tab:red",
            label=f"{name}: refused",
        )
        store.step(
            seconds,
            result.tally.reads[:count],
            where="post",
            linestyle=style,
            color="tab:blue",
            label=f"{name}: reads",
        )
        store.step(
            seconds,
            result.tally.writes[:count],
            where="post",
            linestyle=style,
            color="tab:orange",
            label=f"{name}: writes",
        )
    state.set_yticks([0, 1, 2], ["closed", "half-open", "open"])
    state.set_ylabel("stored state")
    state.set_title(
        f"{p.envs:,} environments x {p.rps:g} requests/s; outage "
        f"{p.outage_start:g}..{p.heal:g} s ({p.shape.text}, shaded)"
    )
    calls.set_ylabel("calls per second")
    store.set_ylabel("store operations per second")
    store.set_yscale("symlog")  # a thousand reads and a handful of writes on one axis
    store.set_ylim(bottom=0)
    store.set_xlim(0, p.duration)
    store.set_xlabel("simulated time (s)")
    for axis in (state, calls, store):
        axis.legend(loc="upper right", fontsize="small")
    figure.savefig(path, dpi=100)
    plt.close(figure)
