"""The dataflow graph IR: what a user writes before anything is mapped.

A :class:`Graph` is a DAG of :class:`Node` s, each producing one tensor whose
shape and dtype are inferred (and checked) when the node is built, so a
mistake is reported at the line that made it::

    g = Graph()
    A = g.input("A", (M, K), "int8")
    B = g.input("B", (K, N), "int8")
    C = g.matmul(A, B)                    # (M, N) int32
    g.output("C", C)
    g.evaluate({"A": a, "B": b})          # {"C": a.astype(int32) @ b.astype(int32)}

This is the level of Plasticine's parallel patterns before they are split
into PCU/PMU programs: the lowering templates (GEMM, attention) walk
``g.nodes`` in topological order and build a :class:`~.netlist.Netlist`.

Integer semantics (the hardware's, and the reference evaluator's):

* dtypes are ``int8``, ``int16``, ``int32``; every arithmetic result is
  int32 and wraps modulo 2**32 (the fabric's 32-bit datapath);
* ``matmul`` and ``mul`` take int8/int16 operands only (the PCUs have
  16 x 16 -> 32 signed multipliers) and accumulate in int32 exactly as NumPy
  does with int32 operands;
* ``max``, ``min``, ``relu``, ``transpose`` and ``reduce`` max/min keep the
  (promoted) dtype;
* fixed point: ``exp2`` takes signed Q15.16 and returns
  round(2**x * 2**shift) (the PCU's SFU, bit exact: :func:`tessera.sim.pcu_model.exp2_fixed`);
  ``recip`` returns round(2**(shift+16) / x) (:func:`~tessera.sim.pcu_model.recip_fixed`);
  ``scale`` is (x * factor + 2**(shift-1)) >> shift, the PCU's QMUL;
  ``softmax`` is the fixed-point recipe of :func:`softmax_reference`.
"""

from __future__ import annotations

import numpy as np

from .errors import CompileError, DTypeError, ShapeError, UnsupportedOp

__all__ = ["Graph", "Node", "DTYPES", "ELEMENTWISE_OPS", "REDUCE_OPS", "softmax_reference",
           "LOG2E_Q14"]

DTYPES = {"int8": np.int8, "int16": np.int16, "int32": np.int32}
_WIDTH = {"int8": 8, "int16": 16, "int32": 32}
#: Operand dtypes the 16 x 16 multipliers take.
MUL_DTYPES = ("int8", "int16")

BINARY_OPS = ("add", "sub", "mul", "max", "min")
UNARY_OPS = ("neg", "relu", "exp2", "recip", "scale")
ELEMENTWISE_OPS = BINARY_OPS + UNARY_OPS
REDUCE_OPS = ("sum", "max", "min")

#: log2(e) in Q2.14: fits a signed 16-bit multiplier operand.
LOG2E_Q14 = round(np.log2(np.e) * 2 ** 14)


def _promote(*dtypes) -> str:
    return max(dtypes, key=_WIDTH.__getitem__)


def _wrap32(x) -> np.ndarray:
    """int64 -> int32 modulo 2**32 (the hardware's wrap-around)."""
    return np.asarray(x, dtype=np.int64).astype(np.int32)


def _shape_str(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class Node:
    """One operation of a :class:`Graph` and the tensor it produces.

    ``op`` is one of ``input``, ``matmul``, ``elementwise``, ``reduce``,
    ``softmax``, ``transpose``, ``cast``; ``attrs`` holds the op's parameters
    (``{"op": "add"}``, ``{"axis": 1, ...}``); ``inputs`` are the operand
    nodes. Python operators build nodes too: ``a + b``, ``a - b``, ``a * b``,
    ``a @ b``, ``a.T``.
    """

    __slots__ = ("graph", "id", "name", "op", "inputs", "shape", "dtype", "attrs")

    def __init__(self, graph, id, name, op, inputs, shape, dtype, attrs):
        self.graph = graph
        self.id = id
        self.name = name
        self.op = op
        self.inputs = tuple(inputs)
        self.shape = tuple(int(d) for d in shape)
        self.dtype = dtype
        self.attrs = dict(attrs)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self):
        args = ", ".join(i.name for i in self.inputs)
        extra = "".join(f", {k}={v!r}" for k, v in self.attrs.items())
        return (f"{self.name} = {self.op}({args}{extra}) : "
                f"{_shape_str(self.shape)} {self.dtype}")

    # NumPy-like sugar
    def __add__(self, other):
        return self.graph.elementwise("add", self, other)

    def __sub__(self, other):
        return self.graph.elementwise("sub", self, other)

    def __mul__(self, other):
        return self.graph.elementwise("mul", self, other)

    def __matmul__(self, other):
        return self.graph.matmul(self, other)

    def __neg__(self):
        return self.graph.elementwise("neg", self)

    @property
    def T(self):
        return self.graph.transpose(self)


class Graph:
    """A dataflow graph: named inputs, operations, named outputs."""

    def __init__(self, name: str = "graph"):
        self.name = name
        self.nodes: list[Node] = []          # topological order (construction order)
        self.inputs: dict[str, Node] = {}
        self.outputs: dict[str, Node] = {}
        self._names = set()
        self._counts = {}

    def __repr__(self):
        lines = [f"graph {self.name}:"]
        lines += [f"  {n!r}" for n in self.nodes]
        lines += [f"  output {k} = {v.name}" for k, v in self.outputs.items()]
        return "\n".join(lines)

    # -- construction helpers ----------------------------------------------------
    def _fresh(self, base: str) -> str:
        k = self._counts.get(base, 0)
        while f"{base}_{k}" in self._names:
            k += 1
        self._counts[base] = k + 1
        return f"{base}_{k}"

    def _add(self, op, inputs, shape, dtype, attrs=None, name=None) -> Node:
        name = name or self._fresh(attrs.get("op", op) if attrs else op)
        node = Node(self, len(self.nodes), name, op, inputs, shape, dtype, attrs or {})
        self.nodes.append(node)
        self._names.add(name)
        return node

    def _own(self, x, what: str) -> Node:
        if not isinstance(x, Node):
            raise CompileError(f"{what}: expected a tensor of this graph, got {x!r}")
        if x.graph is not self:
            raise CompileError(f"{what}: tensor {x.name} belongs to graph "
                               f"{x.graph.name!r}, not {self.name!r}")
        return x

    @staticmethod
    def _check_dtype(dtype, what: str) -> str:
        if dtype not in DTYPES:
            raise DTypeError(f"{what}: dtype {dtype!r} is not supported; use one of "
                             f"{', '.join(DTYPES)}")
        return dtype

    @staticmethod
    def _axis(x: Node, axis, what: str) -> int:
        if not isinstance(axis, int) or isinstance(axis, bool) or not -x.ndim <= axis < x.ndim:
            raise ShapeError(f"{what}: axis {axis!r} is out of range for {x.name} of shape "
                             f"{_shape_str(x.shape)}")
        return axis % x.ndim

    # -- operations ----------------------------------------------------------------
    def input(self, name: str, shape, dtype: str) -> Node:
        if not isinstance(name, str) or not name.isidentifier():
            raise CompileError(f"input name must be an identifier, got {name!r}")
        if name in self._names:
            raise CompileError(f"input {name!r}: the name is already used in graph {self.name!r}")
        try:
            shape = tuple(shape)
        except TypeError:
            raise ShapeError(f"input {name!r}: shape must be a tuple of positive ints, "
                             f"got {shape!r}") from None
        if not shape or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                                and d > 0 for d in shape):
            raise ShapeError(f"input {name!r}: shape must be a tuple of positive ints, "
                             f"got {shape!r}")
        self._check_dtype(dtype, f"input {name!r}")
        node = self._add("input", (), shape, dtype, name=name)
        self.inputs[name] = node
        return node

    def output(self, name: str, x: Node) -> Node:
        x = self._own(x, f"output {name!r}")
        if not isinstance(name, str) or not name.isidentifier():
            raise CompileError(f"output name must be an identifier, got {name!r}")
        if name in self.outputs or name in self.inputs:
            raise CompileError(f"output {name!r}: the name is already used in graph {self.name!r}")
        self.outputs[name] = x
        return x

    def matmul(self, a: Node, b: Node) -> Node:
        a = self._own(a, "matmul")
        b = self._own(b, "matmul")
        if a.ndim != 2 or b.ndim != 2:
            raise ShapeError(f"matmul({a.name}, {b.name}): operands must be 2-D, got "
                             f"{_shape_str(a.shape)} and {_shape_str(b.shape)}")
        if a.shape[1] != b.shape[0]:
            raise ShapeError(f"matmul({a.name}, {b.name}): inner dimensions differ: "
                             f"{_shape_str(a.shape)} @ {_shape_str(b.shape)} "
                             f"({a.shape[1]} != {b.shape[0]})")
        for x in (a, b):
            if x.dtype not in MUL_DTYPES:
                raise DTypeError(f"matmul({a.name}, {b.name}): {x.name} is {x.dtype}; the PCU "
                                 f"multipliers take int8 or int16 operands (cast it first)")
        return self._add("matmul", (a, b), (a.shape[0], b.shape[1]), "int32")

    def _broadcast(self, op, x, y) -> tuple:
        try:
            return tuple(np.broadcast_shapes(x.shape, y.shape))
        except ValueError:
            raise ShapeError(f"{op}({x.name}, {y.name}): shapes {_shape_str(x.shape)} and "
                             f"{_shape_str(y.shape)} do not broadcast") from None

    def elementwise(self, op: str, x: Node, y=None, **attrs) -> Node:
        """``op`` in :data:`ELEMENTWISE_OPS`. Binary ops broadcast as NumPy
        does; `y` may be a Python int (a constant). Attributes: ``exp2`` and
        ``recip`` take ``shift`` (default 16), ``scale`` takes ``factor`` (a
        16-bit signed int) and ``shift`` (0..31)."""
        if op not in ELEMENTWISE_OPS:
            raise UnsupportedOp(f"elementwise op {op!r} is not supported; the ops are "
                                f"{', '.join(ELEMENTWISE_OPS)}")
        x = self._own(x, op)
        if op in BINARY_OPS:
            if y is None:
                raise UnsupportedOp(f"{op}({x.name}): {op} takes two operands, got one")
            if attrs:
                raise UnsupportedOp(f"{op}({x.name}): unexpected attributes {sorted(attrs)}")
            if isinstance(y, (int, np.integer)) and not isinstance(y, bool):
                if not -2 ** 31 <= int(y) < 2 ** 31:
                    raise DTypeError(f"{op}({x.name}, {y}): the constant does not fit int32")
                ydt = next(dt for dt in DTYPES if np.iinfo(DTYPES[dt]).min <= int(y)
                           <= np.iinfo(DTYPES[dt]).max)
                operands, shape, const = (x,), x.shape, int(y)
                dts = (x.dtype, ydt)
                yname = str(const)
            else:
                y = self._own(y, op)
                operands, shape, const = (x, y), self._broadcast(op, x, y), None
                dts = (x.dtype, y.dtype)
                yname = y.name
            if op == "mul":
                for name, dt in zip((x.name, yname), dts):
                    if dt not in MUL_DTYPES:
                        raise DTypeError(f"mul({x.name}, {yname}): {name} is {dt}; the PCU "
                                         f"multipliers take int8 or int16 operands")
            dtype = _promote(*dts) if op in ("max", "min") else "int32"
            node_attrs = {"op": op}
            if const is not None:
                node_attrs["const"] = const
            return self._add("elementwise", operands, shape, dtype, node_attrs)
        # unary
        if y is not None:
            raise UnsupportedOp(f"{op}({x.name}, ...): {op} takes one operand, got two")
        allowed = {"exp2": {"shift"}, "recip": {"shift"}, "scale": {"factor", "shift"},
                   "neg": set(), "relu": set()}[op]
        if set(attrs) - allowed:
            raise UnsupportedOp(f"{op}({x.name}): unexpected attributes "
                                f"{sorted(set(attrs) - allowed)}; {op} takes {sorted(allowed)}")
        node_attrs = {"op": op}
        if op in ("exp2", "recip"):
            shift = attrs.get("shift", 16)
            if not isinstance(shift, int) or not 0 <= shift <= 31:
                raise UnsupportedOp(f"{op}({x.name}): shift must be in 0..31, got {shift!r}")
            node_attrs["shift"] = shift
        if op == "scale":
            if "factor" not in attrs:
                raise UnsupportedOp(f"scale({x.name}): needs factor= (and optionally shift=)")
            factor, shift = attrs["factor"], attrs.get("shift", 0)
            if not isinstance(factor, int) or not -2 ** 15 <= factor < 2 ** 15:
                raise DTypeError(f"scale({x.name}): factor {factor!r} is not a 16-bit signed "
                                 f"int (the multiplier operand)")
            if not isinstance(shift, int) or not 0 <= shift <= 31:
                raise UnsupportedOp(f"scale({x.name}): shift must be in 0..31, got {shift!r}")
            node_attrs.update(factor=factor, shift=shift)
        dtype = x.dtype if op == "relu" else "int32"
        return self._add("elementwise", (x,), x.shape, dtype, node_attrs)

    def reduce(self, x: Node, op: str, axis: int, *, keepdims: bool = False) -> Node:
        x = self._own(x, f"reduce {op}")
        if op not in REDUCE_OPS:
            raise UnsupportedOp(f"reduce({x.name}, {op!r}): the reductions are "
                                f"{', '.join(REDUCE_OPS)}")
        axis = self._axis(x, axis, f"reduce({x.name}, {op!r})")
        shape = list(x.shape)
        if keepdims:
            shape[axis] = 1
        else:
            del shape[axis]
        if not shape:
            shape = [1]
        dtype = "int32" if op == "sum" else x.dtype
        return self._add("reduce", (x,), shape, dtype,
                         {"op": op, "axis": axis, "keepdims": bool(keepdims)},
                         name=self._fresh(f"reduce_{op}"))

    def softmax(self, x: Node, axis: int = -1, *, frac_bits: int = 16,
                out_frac_bits: int = 16) -> Node:
        """Softmax along `axis` as one node (the lowering fuses it): `x` is
        int32 in signed Q.frac_bits, the result int32 in Q.out_frac_bits;
        the exact recipe is :func:`softmax_reference`."""
        x = self._own(x, "softmax")
        axis = self._axis(x, axis, f"softmax({x.name})")
        if x.dtype != "int32":
            raise DTypeError(f"softmax({x.name}): expects int32 fixed-point scores "
                             f"(Q.{frac_bits}), got {x.dtype}")
        if not 0 <= frac_bits <= 24 or not 1 <= out_frac_bits <= 30:
            raise UnsupportedOp(f"softmax({x.name}): frac_bits must be in 0..24 and "
                                f"out_frac_bits in 1..30, got {frac_bits}, {out_frac_bits}")
        return self._add("softmax", (x,), x.shape, "int32",
                         {"axis": axis, "frac_bits": frac_bits, "out_frac_bits": out_frac_bits})

    def transpose(self, x: Node, axes=None) -> Node:
        x = self._own(x, "transpose")
        if axes is None:
            axes = tuple(reversed(range(x.ndim)))
        axes = tuple(axes)
        ok = (len(axes) == x.ndim
              and all(isinstance(a, int) and -x.ndim <= a < x.ndim for a in axes)
              and sorted(a % x.ndim for a in axes) == list(range(x.ndim)))
        if not ok:
            raise ShapeError(f"transpose({x.name}): axes {axes} are not a permutation of "
                             f"the {x.ndim} axes of {_shape_str(x.shape)}")
        axes = tuple(a % x.ndim for a in axes)
        return self._add("transpose", (x,), tuple(x.shape[a] for a in axes), x.dtype,
                         {"axes": axes})

    def cast(self, x: Node, dtype: str) -> Node:
        """Change the dtype, wrapping (two's complement truncation) as the
        hardware's narrow writes do."""
        x = self._own(x, "cast")
        self._check_dtype(dtype, f"cast({x.name})")
        return self._add("cast", (x,), x.shape, dtype, {"dtype": dtype})

    # -- reference evaluator ---------------------------------------------------------
    def evaluate(self, inputs: dict) -> dict:
        """Run the graph on NumPy arrays with the hardware's integer semantics;
        returns {output name: array}."""
        missing = [n for n in self.inputs if n not in inputs]
        if missing:
            raise CompileError(f"evaluate: no value for input(s) {', '.join(missing)}")
        extra = [n for n in inputs if n not in self.inputs]
        if extra:
            raise CompileError(f"evaluate: graph {self.name!r} has no input(s) "
                               f"{', '.join(extra)}; inputs are {', '.join(self.inputs)}")
        values = {}
        for node in self.nodes:
            if node.op == "input":
                values[node.id] = self._input_value(node, inputs[node.name])
            else:
                values[node.id] = self._eval(node, [values[i.id] for i in node.inputs])
        return {name: values[node.id] for name, node in self.outputs.items()}

    @staticmethod
    def _input_value(node, value):
        arr = np.asarray(value)
        if arr.shape != node.shape:
            raise ShapeError(f"evaluate: input {node.name} has shape {_shape_str(arr.shape)}, "
                             f"the graph declares {_shape_str(node.shape)}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise DTypeError(f"evaluate: input {node.name} is {arr.dtype}, expected integers "
                             f"({node.dtype})")
        info = np.iinfo(DTYPES[node.dtype])
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise DTypeError(f"evaluate: input {node.name} has values in "
                             f"{arr.min()}..{arr.max()}, outside {node.dtype}")
        return arr.astype(DTYPES[node.dtype])

    @staticmethod
    def _eval(node, args):
        a = node.attrs
        wide = [np.asarray(v, dtype=np.int64) for v in args]
        if node.op == "matmul":
            # int64 products and sums, wrapped once: the same as NumPy's int32
            # matmul (which wraps at every step; addition is modular).
            return _wrap32(wide[0] @ wide[1])
        if node.op == "elementwise":
            op = a["op"]
            if op in BINARY_OPS:
                x = wide[0]
                y = np.int64(a["const"]) if "const" in a else wide[1]
                if op == "add":
                    return _wrap32(x + y)
                if op == "sub":
                    return _wrap32(x - y)
                if op == "mul":
                    return _wrap32(x * y)
                r = np.maximum(x, y) if op == "max" else np.minimum(x, y)
                return np.broadcast_to(r, node.shape).astype(DTYPES[node.dtype])
            x = wide[0]
            if op == "neg":
                return _wrap32(-x)
            if op == "relu":
                return np.maximum(x, 0).astype(DTYPES[node.dtype])
            if op == "scale":
                s = a["shift"]
                return _wrap32((x * a["factor"] + ((1 << s) >> 1)) >> s)
            from ..sim.pcu_model import exp2_fixed, recip_fixed
            fn = exp2_fixed if op == "exp2" else recip_fixed
            return _wrap32(fn(x, a["shift"]))
        if node.op == "reduce":
            fn = {"sum": np.sum, "max": np.max, "min": np.min}[a["op"]]
            r = fn(wide[0], axis=a["axis"], keepdims=a["keepdims"]).reshape(node.shape)
            return _wrap32(r) if a["op"] == "sum" else r.astype(DTYPES[node.dtype])
        if node.op == "softmax":
            return softmax_reference(args[0], a["axis"], a["frac_bits"], a["out_frac_bits"])
        if node.op == "transpose":
            return np.transpose(args[0], a["axes"]).copy()
        if node.op == "cast":
            return wide[0].astype(DTYPES[a["dtype"]])
        raise UnsupportedOp(f"{node.name}: no evaluator for op {node.op!r}")


def softmax_reference(x, axis: int = -1, frac_bits: int = 16, out_frac_bits: int = 16):
    """The fixed-point softmax of the IR, bit exact; what a fused lowering
    must reproduce (each step is one PCU stage or SFU operation):

    1. ``m = max(x)`` along `axis`; ``d = x - m`` (<= 0, Q.frac_bits);
    2. ``t = (d * LOG2E_Q14 + 2**(13 + frac_bits - 16)) >> (14 + frac_bits - 16)``
       -- the exponent in log2 units, Q15.16 (clamped below at -2**31);
    3. ``e = exp2(t)`` with shift 16: Q16.16 in [0, 2**16];
    4. ``s = sum(e)`` (>= 2**16 since the maximum contributes 1.0);
    5. ``r = recip(s)`` with shift 30: round(2**46 / s) < 2**31;
    6. ``y = (e * r + 2**(45 - out_frac_bits)) >> (46 - out_frac_bits)``.
    """
    from ..sim.pcu_model import exp2_fixed, recip_fixed
    x = np.asarray(x, dtype=np.int64)
    m = x.max(axis=axis, keepdims=True)
    d = x - m
    sh = 14 + frac_bits - 16
    prod = d * LOG2E_Q14
    t = ((prod + (1 << (sh - 1))) >> sh) if sh > 0 else prod << -sh
    t = np.maximum(t, -2 ** 31)
    e = exp2_fixed(t, 16).astype(np.int64)
    s = e.sum(axis=axis, keepdims=True)
    r = recip_fixed(np.minimum(s, 2 ** 31 - 1), 30).astype(np.int64)
    k = 46 - out_frac_bits
    return _wrap32((e * r + (1 << (k - 1))) >> k)
