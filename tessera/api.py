"""NumPy-like entry points: compile, run on the simulated fabric, return the
result and its measured report."""

from __future__ import annotations

import numpy as np

__all__ = ["gemm"]


def gemm(a, b, *, preset: str = "default", sim: str = "verilator", seed: int = 0,
         progress=None):
    """``C = A @ B`` on the fabric. `a` (M x K) and `b` (K x N) are int8 or
    int16 arrays of one type; returns (C as int32, report). The report's
    figures are measured by the RTL (see ``tessera run gemm``); ``report["ok"]``
    says whether C equals NumPy's int32 product bit for bit."""
    from .compiler.errors import DTypeError, ShapeError
    from .compiler.graph import Graph
    from .compiler.lower import lower
    from .hw.params import preset as get_preset
    from .sim.host import run_gemm

    a, b = np.asarray(a), np.asarray(b)
    for name, x in (("A", a), ("B", b)):
        if x.dtype.name not in ("int8", "int16"):
            raise DTypeError(f"gemm: {name} is {x.dtype}; the fabric multiplies int8 or int16 "
                             f"operands (cast first)")
    if a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"gemm: A and B must be 2-D, got shapes {a.shape} and {b.shape}")
    params = get_preset(preset)
    g = Graph("gemm")
    A = g.input("A", a.shape, a.dtype.name)
    B = g.input("B", b.shape, b.dtype.name)
    g.output("C", g.matmul(A, B))
    compiled, _ = lower(g, params, seed=seed)
    m, k = a.shape
    n = b.shape[1]
    report = run_gemm(params, m=m, n=n, k=k, dtype=a.dtype.name, sim=sim, a=a, b=b,
                      compiled=compiled, progress=progress, return_result=True)
    c = report.pop("result")
    return c, report
