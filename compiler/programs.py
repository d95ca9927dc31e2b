"""Pieces of unit programs that every lowering writes: counters of a
counter chain padded to the preset's chain, and a PMU side (``wr``/``rd``)
that streams whole vectors through a run of counters."""

from __future__ import annotations

from ..hw.params import FabricParams

__all__ = ["counter", "pad_counters", "pad_zeros", "pmu_stream"]


def counter(n: int, stride: int = 1) -> dict:
    """A counter from 0 while below `n`, by `stride`."""
    return {"start": 0, "stop": n, "stride": stride}


def pad_counters(p: FabricParams, counters: list) -> list:
    """`counters` (innermost first), padded with one-iteration counters."""
    return (list(counters) + [counter(1)] * p.counters)[:p.counters]


def pad_zeros(p: FabricParams, values: list) -> list:
    return (list(values) + [0] * p.counters)[:p.counters]


def pmu_stream(p: FabricParams, counters: list, astride: list) -> dict:
    """A PMU side on vector port 0, no lane rotation, row address
    ``sum(astride_i * k_i)`` in the current buffer."""
    return {"en": 1, "scalar": 0, "port": 0, "counters": pad_counters(p, counters),
            "astride": pad_zeros(p, astride), "rstride": pad_zeros(p, []), "base": 0,
            "rbase": 0, "lstride": 0, "last": 0}
