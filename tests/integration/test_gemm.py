"""GEMM on the RTL against NumPy, bit for bit: shapes that include 1x1x1,
non-multiples of every tile size, tall and wide, int8 and int16, on the
small and default presets (Verilator, one model per preset reused by every
case) and on tiny/small with Amaranth's simulator."""

import numpy as np
import pytest

from tessera.hw.params import preset
from tessera.sim.host import run_gemm


def _check(r):
    assert r["ok"], {k: r[k] for k in ("mismatches", "timed_out", "cycles")}
    assert r["mismatches"] == 0
    assert r["configurations"] == (1 if r["k_tiles"] == 1 else r["k_tiles"] + 1)
    assert len(r["run_cycles"]) == r["configurations"] and min(r["run_cycles"]) > 0
    assert r["cycles"] >= sum(r["run_cycles"])
    # every PCU did its share of the (padded) MACs: no PCU idle
    per_pcu = r["pcu_active_cycles"]
    assert min(per_pcu.values()) > 0
    assert r["offchip_read_bytes"] > 0 and r["offchip_write_bytes"] >= 4 * r["m"] * r["n"]
    assert 0 < r["utilization"] <= 1 and 0 < r["roofline_fraction"] <= 1


@pytest.mark.parametrize("name,shape,dtype", [
    ("tiny", (1, 1, 1), "int8"),
    ("tiny", (7, 10, 9), "int16"),
    ("small", (5, 13, 11), "int8"),
    ("tiny", (3, 5, 300), "int8"),      # K > pmu_depth: 2 K tiles and a reduction
])
def test_gemm_pysim(name, shape, dtype):
    m, n, k = shape
    _check(run_gemm(preset(name), m=m, n=n, k=k, dtype=dtype, sim="pysim"))


def test_gemm_extreme_values_pysim():
    """int16 extremes: products of -32768 and sums that need all 32 bits."""
    p = preset("tiny")
    a = np.full((3, 8), -32768, dtype=np.int16)
    b = np.full((8, 4), -32768, dtype=np.int16)
    b[0, 0] = 32767
    r = run_gemm(p, m=3, n=4, k=8, dtype="int16", sim="pysim", a=a, b=b)
    assert r["ok"], r


# the last case of each has K > pmu_depth (K tiles, then the reduction)
SMALL = [((1, 1, 1), "int8"), ((33, 17, 29), "int8"), ((64, 8, 16), "int8"),
         ((8, 64, 16), "int16"), ((24, 24, 40), "int16"), ((64, 64, 64), "int8"),
         ((9, 12, 600), "int16")]
DEFAULT = [((1, 1, 1), "int8"), ((37, 50, 23), "int8"), ((100, 20, 9), "int16"),
           ((16, 96, 64), "int8"), ((64, 64, 64), "int16"), ((16, 40, 1100), "int8")]


@pytest.mark.verilator
@pytest.mark.parametrize("shape,dtype", SMALL, ids=[f"{s[0]}x{s[1]}x{s[2]}-{d}" for s, d in SMALL])
def test_gemm_small_verilator(need_sim, shape, dtype):
    need_sim("verilator")
    m, n, k = shape
    _check(run_gemm(preset("small"), m=m, n=n, k=k, dtype=dtype, sim="verilator"))


@pytest.mark.verilator
@pytest.mark.parametrize("shape,dtype", DEFAULT,
                         ids=[f"{s[0]}x{s[1]}x{s[2]}-{d}" for s, d in DEFAULT])
def test_gemm_default_verilator(need_sim, shape, dtype):
    need_sim("verilator")
    m, n, k = shape
    _check(run_gemm(preset("default"), m=m, n=n, k=k, dtype=dtype, sim="verilator"))


@pytest.mark.icarus
def test_gemm_small_icarus(need_sim):
    """The same host program on Icarus. (It once never finished loading: see
    ``ICARUS_GENERATION`` in sim/backends.py.)"""
    need_sim("icarus")
    _check(run_gemm(preset("small"), m=9, n=10, k=11, sim="icarus"))


@pytest.mark.verilator
def test_threaded_verilator_model_gives_the_same_run(need_sim):
    """threads=2: a multi-threaded Verilator model (cached apart) runs the
    same GEMM to the same result in the same number of cycles."""
    need_sim("verilator")
    p = preset("small")
    one = run_gemm(p, m=16, n=16, k=24, sim="verilator", seed=3)
    two = run_gemm(p, m=16, n=16, k=24, sim="verilator", seed=3, threads=2)
    assert one["ok"] and two["ok"]
    assert two["cycles"] == one["cycles"] and two["offchip_read_bytes"] == one["offchip_read_bytes"]
