"""Lowering a :class:`~.graph.Graph` onto the fabric.

Today one template exists: a graph that is one matmul of two inputs
(``C = A @ B``) lowers to the GEMM mapping of :mod:`.gemm`. Any other node
raises :class:`~.errors.UnsupportedOp` naming it (attention is the next
template)."""

from __future__ import annotations

from ..hw.params import FabricParams
from .errors import UnsupportedOp
from .gemm import CompiledGemm, compile_gemm
from .graph import Graph

__all__ = ["lower"]


def lower(graph: Graph, params: FabricParams, *, seed: int = 0) -> tuple[CompiledGemm, dict]:
    """Compile `graph`; returns the compiled kernel and {role: graph name} of
    its operands ({"A": ..., "B": ..., "C": ...})."""
    if not isinstance(graph, Graph):
        raise TypeError(f"lower() takes a Graph, not {type(graph).__name__}")
    for node in graph.nodes:
        if node.op not in ("input", "matmul"):
            raise UnsupportedOp(f"node {node!r}: the {node.op!r} operation has no lowering to "
                                f"the fabric yet (supported: a single matmul of two inputs)")
    mms = [n for n in graph.nodes if n.op == "matmul"]
    if len(mms) != 1 or len(graph.outputs) != 1 or next(iter(graph.outputs.values())) is not mms[0]:
        raise UnsupportedOp(f"graph {graph.name!r}: only a graph whose one output is one matmul "
                            f"of two inputs lowers today; it has {len(mms)} matmul(s) and "
                            f"outputs {list(graph.outputs)}")
    mm = mms[0]
    a, b = mm.inputs
    if a.op != "input" or b.op != "input":
        raise UnsupportedOp(f"node {mm!r}: matmul operands must be graph inputs")
    if a.dtype != b.dtype:
        from .errors import DTypeError
        raise DTypeError(f"node {mm!r}: the fabric's GEMM takes operands of one type, got "
                         f"{a.dtype} and {b.dtype}")
    (m, k), (_, n) = a.shape, b.shape
    compiled = compile_gemm(params, m, n, k, a.dtype, seed=seed)
    names = {"A": a.name, "B": b.name, "C": next(iter(graph.outputs))}
    return compiled, names
