"""Attention on the RTL (default preset, Verilator). Fused: one
configuration, bit-exact against the fused fixed-point golden model
(attention_fixed), no score off chip. Unfused: four configurations back to
back, bit-exact against attention_unfused_fixed. Both with the error against
float64 inside the documented bound. Shapes include N != M, M not a multiple of the 8 lanes,
causal and not, and d = 16, 32, 64."""

import pytest

from tessera.hw.params import preset
from tessera.sim.attention import run_attention

CASES = [(5, 13, 16, False), (12, 20, 32, True), (7, 9, 64, False), (16, 16, 32, True),
         (24, 64, 16, True)]


@pytest.mark.verilator
@pytest.mark.parametrize("N,M,d,causal", CASES,
                         ids=[f"{n}x{m}x{d}{'-causal' if c else ''}" for n, m, d, c in CASES])
def test_fused_attention_verilator(need_sim, N, M, d, causal):
    need_sim("verilator")
    r = run_attention(preset("default"), seq=N, kv=M, dim=d, causal=causal, fused=True,
                      sim="verilator", seed=N * M, return_result=True)
    assert r["ok"], {k: r[k] for k in ("mismatches", "timed_out", "run_cycles")}
    assert r["mismatches"] == 0 and r["fused"] and (r["result"] == r["golden"]).all()
    assert r["configurations"] == 1 and r["run_cycles"][0] > 0
    assert r["rel_err"] <= 2e-3
    # nothing but Q, K, V (padded to whole key vectors) and the output moved
    assert r["score_offchip_bytes"] == 0
    Mk = -(-M // 8) * 8
    assert r["offchip_read_bytes"] == N * d + 2 * Mk * d
    assert r["offchip_write_bytes"] == 2 * N * d
    assert 0 < r["utilization"] <= 1


@pytest.mark.verilator
@pytest.mark.parametrize("N,M,d,causal", [(4, 300, 64, False), (5, 257, 32, True)])
def test_fused_attention_streaming_kv_verilator(need_sim, N, M, d, causal):
    """K and V beyond a PMU (M x d > 8192) stream from DRAM once per row."""
    need_sim("verilator")
    r = run_attention(preset("default"), seq=N, kv=M, dim=d, causal=causal, fused=True,
                      sim="verilator", seed=N + M)
    assert r["ok"] and r["mismatches"] == 0 and not r["kv_resident"]
    Mk = -(-M // 8) * 8
    assert r["offchip_read_bytes"] == N * d + N * 2 * Mk * d
    assert r["score_offchip_bytes"] == 0 and r["rel_err"] <= 2e-3


@pytest.mark.verilator
def test_fused_attention_heads_verilator(need_sim):
    """Two heads of the fused kernel, one after the other, each bit-exact."""
    need_sim("verilator")
    r = run_attention(preset("default"), seq=5, kv=12, dim=32, causal=True, heads=2,
                      fused=True, sim="verilator", seed=3, return_result=True)
    assert r["ok"] and r["mismatches"] == 0
    assert r["configurations"] == 2 and r["result"].shape == (2, 5, 32)
    assert (r["result"] == r["golden"]).all() and r["score_offchip_bytes"] == 0


@pytest.mark.verilator
@pytest.mark.parametrize("N,M,d,causal", CASES,
                         ids=[f"{n}x{m}x{d}{'-causal' if c else ''}" for n, m, d, c in CASES])
def test_unfused_attention_verilator(need_sim, N, M, d, causal):
    need_sim("verilator")
    r = run_attention(preset("default"), seq=N, kv=M, dim=d, causal=causal, sim="verilator",
                      seed=N * M)
    assert r["ok"], {k: r[k] for k in ("mismatches", "timed_out", "run_cycles")}
    assert r["mismatches"] == 0 and not r["fused"]
    assert r["configurations"] == 4 and min(r["run_cycles"]) > 0
    assert r["rel_err"] <= 2e-3
    # S (and P, l, O) went through DRAM: more than the compulsory traffic
    assert r["score_offchip_bytes"] >= 4 * N * M
    assert 0 < r["utilization"] <= 1


@pytest.mark.verilator
def test_unfused_attention_heads_verilator(need_sim):
    """Three heads, each with its own tensors and formats, one after the
    other in one sequence (12 configurations): each head bit-exact."""
    need_sim("verilator")
    r = run_attention(preset("default"), seq=6, kv=11, dim=16, causal=True, heads=3,
                      sim="verilator", seed=5, return_result=True)
    assert r["ok"] and r["mismatches"] == 0, {k: r[k] for k in ("mismatches", "timed_out")}
    assert r["heads"] == 3 and r["configurations"] == 12 and len(r["formats"]) == 3
    assert r["result"].shape == (3, 6, 16)
    assert (r["result"] == r["golden"]).all()
    # the heads are different problems, not one head three times
    assert not (r["result"][0] == r["result"][1]).all()
    assert r["macs"] == 3 * 2 * 6 * 11 * 16 and r["rel_err"] <= 2e-3


def test_attention_heads_errors():
    from tessera.compiler.errors import ShapeError
    with pytest.raises(ShapeError, match="heads must be a positive int"):
        run_attention(preset("default"), seq=4, kv=4, dim=16, heads=0, sim="pysim")
    with pytest.raises(ShapeError, match="1 sets of Q, K, V for 2 heads"):
        from tessera.sim.attention import random_qkv
        run_attention(preset("default"), seq=4, kv=4, dim=16, heads=2, sim="pysim",
                      qkv=[random_qkv(4, 4, 16)])


@pytest.mark.slow
@pytest.mark.verilator
def test_fused_heads_side_by_side_verilator(need_sim):
    """Two heads in one configuration on a 4 x 8 grid (16 PCUs): each
    bit-exact, in about the cycles of one head. Slow: its own model (about
    8 minutes to build here)."""
    need_sim("verilator")
    wide = preset("default").replace(name="wide", cols=8)
    r = run_attention(wide, seq=8, kv=16, dim=32, heads=2, fused=True, sim="verilator",
                      seed=7, return_result=True)
    one = run_attention(wide, seq=8, kv=16, dim=32, heads=1, fused=True, sim="verilator",
                        seed=7)
    assert r["ok"] and r["mismatches"] == 0 and (r["result"] == r["golden"]).all()
    assert r["heads_side_by_side"] == 2 and r["configurations"] == 1
    assert r["score_offchip_bytes"] == 0
    assert r["cycles"] < 1.2 * one["cycles"]
