"""Graph IR: shape/dtype inference, the reference evaluator's integer
semantics, and the user errors (one exception family, messages naming the cause)."""

import numpy as np
import pytest

from tessera.compiler.errors import (CompileError, DTypeError, ShapeError, UnsupportedOp)
from tessera.compiler.graph import LOG2E_Q14, Graph, softmax_reference


def rand(rng, shape, dtype):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("dt_a,dt_b", [("int8", "int8"), ("int16", "int16"), ("int8", "int16")])
@pytest.mark.parametrize("M,K,N", [(1, 1, 1), (5, 7, 3), (16, 64, 8), (3, 300, 2)])
def test_matmul_matches_numpy_int32(dt_a, dt_b, M, K, N):
    rng = np.random.default_rng(M * 100 + K + N)
    g = Graph()
    A = g.input("A", (M, K), dt_a)
    B = g.input("B", (K, N), dt_b)
    C = g.matmul(A, B)
    g.output("C", C)
    assert C.shape == (M, N) and C.dtype == "int32"
    a, b = rand(rng, (M, K), dt_a), rand(rng, (K, N), dt_b)
    out = g.evaluate({"A": a, "B": b})["C"]
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, a.astype(np.int32) @ b.astype(np.int32))


def test_matmul_wraps_like_numpy_int32():
    # 40000 * int16 extremes overflow int32: NumPy's int32 matmul wraps; so must we.
    K = 40000
    g = Graph()
    A = g.input("A", (1, K), "int16")
    B = g.input("B", (K, 1), "int16")
    g.output("C", A @ B)
    a = np.full((1, K), -32768, np.int16)
    b = np.full((K, 1), -32768, np.int16)
    out = g.evaluate({"A": a, "B": b})["C"]
    assert out[0, 0] == np.int32((2 ** 30 * K) % 2 ** 32 - (2 ** 32 if (2 ** 30 * K) % 2 ** 32 >= 2 ** 31 else 0))
    np.testing.assert_array_equal(out, a.astype(np.int32) @ b.astype(np.int32))


def test_elementwise_reduce_transpose_semantics():
    rng = np.random.default_rng(1)
    g = Graph()
    X = g.input("X", (4, 6), "int16")
    Y = g.input("Y", (4, 1), "int8")
    W = g.input("W", (4, 6), "int32")
    outs = {
        "add": X + Y, "sub": X - Y, "mul": X * Y,
        "max": g.elementwise("max", X, Y), "min": g.elementwise("min", X, 3),
        "neg": -W, "relu": g.elementwise("relu", X),
        "scale": g.elementwise("scale", W, factor=-300, shift=5),
        "sum": g.reduce(X, "sum", axis=1), "rmax": g.reduce(X, "max", axis=0, keepdims=True),
        "T": X.T, "cast": g.cast(W, "int8"), "wrap": W + W,
    }
    for k, v in outs.items():
        g.output(k, v)
    assert outs["add"].dtype == "int32" and outs["max"].dtype == "int16"
    assert outs["min"].dtype == "int16" and outs["relu"].dtype == "int16"
    assert outs["sum"].shape == (4,) and outs["rmax"].shape == (1, 6)
    assert outs["T"].shape == (6, 4) and outs["cast"].dtype == "int8"
    x, y, w = rand(rng, (4, 6), np.int16), rand(rng, (4, 1), np.int8), rand(rng, (4, 6), np.int32)
    r = g.evaluate({"X": x, "Y": y, "W": w})
    x64, y64, w64 = x.astype(np.int64), y.astype(np.int64), w.astype(np.int64)
    np.testing.assert_array_equal(r["add"], x64 + y64)
    np.testing.assert_array_equal(r["sub"], x64 - y64)
    np.testing.assert_array_equal(r["mul"], x64 * y64)
    np.testing.assert_array_equal(r["max"], np.maximum(x, y))
    np.testing.assert_array_equal(r["min"], np.minimum(x, 3))
    np.testing.assert_array_equal(r["neg"], (-w64).astype(np.int32))
    np.testing.assert_array_equal(r["relu"], np.maximum(x, 0))
    np.testing.assert_array_equal(r["scale"], ((w64 * -300 + 16) >> 5).astype(np.int32))
    np.testing.assert_array_equal(r["sum"], x64.sum(1))
    np.testing.assert_array_equal(r["rmax"], x.max(0, keepdims=True))
    np.testing.assert_array_equal(r["T"], x.T)
    np.testing.assert_array_equal(r["cast"], w.astype(np.int8))
    np.testing.assert_array_equal(r["wrap"], w + w)    # NumPy int32 wraps too
    assert r["wrap"].dtype == np.int32


def test_exp2_is_the_sfu_model():
    from tessera.sim.pcu_model import exp2_fixed
    g = Graph()
    X = g.input("X", (64,), "int32")
    g.output("E", g.elementwise("exp2", X, shift=14))
    x = np.arange(-32, 32) * (1 << 14)
    e = g.evaluate({"X": x})["E"]
    np.testing.assert_array_equal(e, exp2_fixed(x, 14))
    np.testing.assert_allclose(e / 2 ** 14, 2.0 ** (x / 2 ** 16), rtol=1e-3, atol=2 ** -14)


def test_softmax_is_close_to_float_and_exact_to_its_recipe():
    rng = np.random.default_rng(2)
    g = Graph()
    S = g.input("S", (8, 33), "int32")
    P = g.softmax(S, axis=1)
    g.output("P", P)
    s = rng.integers(-6 * 2 ** 16, 6 * 2 ** 16, (8, 33))
    p = g.evaluate({"S": s})["P"]
    f = s / 2 ** 16
    ref = np.exp(f - f.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    assert np.abs(p / 2 ** 16 - ref).max() < 2e-4
    np.testing.assert_array_equal(p, softmax_reference(s, 1))
    assert LOG2E_Q14 < 2 ** 15        # fits a 16-bit multiplier operand
    # Shift invariance is exact: softmax subtracts the row maximum first.
    np.testing.assert_array_equal(g.evaluate({"S": s + 12345})["P"], p)


def test_names_and_repr():
    g = Graph("net")
    A = g.input("A", (2, 3), "int8")
    B = A.T
    C = A.T
    assert B.name != C.name
    g.output("out", C)
    text = repr(g)
    assert "A = input() : (2, 3) int8" in text and "output out" in text


# -- user errors: one family, messages that name the cause ---------------------------

def test_shape_error_names_the_shapes():
    g = Graph()
    A = g.input("A", (4, 5), "int8")
    B = g.input("B", (6, 3), "int8")
    with pytest.raises(ShapeError, match=r"matmul\(A, B\).*\(4, 5\) @ \(6, 3\) \(5 != 6\)"):
        g.matmul(A, B)
    with pytest.raises(ShapeError, match=r"\(4, 5\) and \(6, 3\) do not broadcast"):
        A + B
    with pytest.raises(ShapeError, match="axis 2 is out of range for A"):
        g.reduce(A, "sum", axis=2)
    for axes in [(0, 5), (0, 0), (1,), ("a", 0)]:
        with pytest.raises(ShapeError, match="are not a permutation of the 2 axes"):
            g.transpose(A, axes)
    assert g.transpose(A, (-1, 0)).shape == (5, 4)
    with pytest.raises(ShapeError, match="shape must be a tuple of positive ints"):
        g.input("Z", (0, 3), "int8")
    with pytest.raises(ShapeError, match=r"input A has shape \(4, 4\), the graph declares \(4, 5\)"):
        g.output("A2", A)
        g.evaluate({"A": np.zeros((4, 4), int), "B": np.zeros((6, 3), int)})


def test_dtype_error_names_the_operand():
    g = Graph()
    A = g.input("A", (4, 5), "int32")
    B = g.input("B", (5, 3), "int8")
    with pytest.raises(DTypeError, match=r"matmul\(A, B\): A is int32; the PCU multipliers"):
        g.matmul(A, B)
    with pytest.raises(DTypeError, match="dtype 'float32' is not supported"):
        g.input("F", (2,), "float32")
    with pytest.raises(DTypeError, match="softmax\\(B\\): expects int32"):
        g.softmax(B)
    g2 = Graph()
    X = g2.input("X", (2,), "int8")
    g2.output("Y", X)
    with pytest.raises(DTypeError, match=r"input X has values in 0..300, outside int8"):
        g2.evaluate({"X": np.array([0, 300])})


def test_unsupported_op_names_the_op():
    g = Graph()
    A = g.input("A", (4, 5), "int16")
    with pytest.raises(UnsupportedOp, match="elementwise op 'tanh' is not supported"):
        g.elementwise("tanh", A)
    with pytest.raises(UnsupportedOp, match="add takes two operands"):
        g.elementwise("add", A)
    with pytest.raises(UnsupportedOp, match="exp2 takes one operand"):
        g.elementwise("exp2", A, A)
    with pytest.raises(UnsupportedOp, match="reductions are sum, max, min"):
        g.reduce(A, "prod", 0)


def test_every_user_error_is_a_compile_error():
    g = Graph()
    A = g.input("A", (2, 2), "int8")
    other = Graph("other").input("Q", (2, 2), "int8")
    with pytest.raises(CompileError, match="belongs to graph 'other'"):
        g.matmul(A, other)
    with pytest.raises(CompileError, match="name is already used"):
        g.input("A", (1,), "int8")
    with pytest.raises(CompileError, match="no value for input"):
        g.evaluate({})
    for cls in (ShapeError, DTypeError, UnsupportedOp):
        assert issubclass(cls, CompileError) and issubclass(cls, ValueError)
