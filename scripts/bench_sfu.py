#!/usr/bin/env python3
"""Accuracy of the PCU's special functions (exp2, reciprocal) against float64.

Measures the golden model (tessera.sim.pcu_model.exp2_fixed / recip_fixed),
which the RTL equals bit for bit (tests/unit/test_sfu.py, test_pcu.py).

* exp2, input Q15.16, output with F fraction bits, for F in 14, 16, 20, 24:
  max abs error relative to 1.0 over EVERY x <= 0 with a nonzero exact
  result above 2**-(F+2) (x >= -(F+2), exhaustive: ~1M points per F), plus
  a check that every x below that rounds to 0 (its error is < 2**-(F+2)),
  exhaustively over 2**20 evenly spaced points and the 100,000 closest to
  the boundary, and 1,000,000 random x over the whole negative domain.
* reciprocal, output round(2**(F+16)/a): max relative error over every
  24-bit mantissa (all a in [2**24, 2**25), 16.7M points, F = 30), plus
  1,000,000 random a per F in 14, 16, 30, wherever the exact result is in
  [2**14, 2**31) (at least 15 significant bits; smaller results are
  representable only to their absolute precision, larger ones saturate).

    python scripts/bench_sfu.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from tessera.sim.pcu_model import exp2_fixed, recip_fixed

EXP2_BOUND = 2e-3
RECIP_BOUND = 1e-4
EXP2_SHIFTS = (14, 16, 20, 24)
RECIP_SHIFTS = (14, 16, 30)


def bench_exp2(rng):
    worst = 0.0
    points = 0
    per_shift = {}
    for f in EXP2_SHIFTS:
        lo = -(f + 2) << 16
        x = np.arange(lo, 1, dtype=np.int64)                       # exhaustive near 0
        xr = np.concatenate([rng.integers(-2 ** 31, 1, 1_000_000),
                             np.linspace(-2 ** 31, lo - 1, 2 ** 20).astype(np.int64),
                             np.arange(lo - 100_000, lo)])
        got = np.concatenate([exp2_fixed(x, f), exp2_fixed(xr, f)]) / 2.0 ** f
        exact = np.exp2(np.concatenate([x, xr]) / 2.0 ** 16)
        err = float(np.abs(got - exact).max())
        per_shift[f] = err
        worst = max(worst, err)
        points += len(x) + len(xr)
    # positive inputs: relative error until saturation
    xp = rng.integers(0, 15 << 16, 1_000_000)
    f = 14
    got = exp2_fixed(xp, f) / 2.0 ** f
    exact = np.exp2(xp / 2.0 ** 16)
    ok = exact * 2 ** f < 2 ** 31 - 1
    rel_pos = float((np.abs(got - exact) / exact)[ok].max())
    return worst, points, per_shift, rel_pos


def bench_recip(rng):
    worst = 0.0
    points = 0
    per_shift = {}
    # every 24-bit mantissa, in chunks
    f = 30
    err = 0.0
    for start in range(2 ** 24, 2 ** 25, 2 ** 22):
        a = np.arange(start, start + 2 ** 22, dtype=np.int64)
        exact = 2.0 ** (f + 16) / a
        err = max(err, float((np.abs(recip_fixed(a, f) - exact) / exact).max()))
        points += len(a)
    per_shift["mantissas_f30"] = err
    worst = max(worst, err)
    for f in RECIP_SHIFTS:
        k = f + 16
        lo = max(1, int(2.0 ** k / 2 ** 31) + 1)          # result < 2**31
        hi = min(2 ** 31 - 1, int(2.0 ** k / 2 ** 14))    # result >= 2**14
        a = np.unique(np.concatenate([rng.integers(lo, hi + 1, 1_000_000),
                                      np.arange(lo, min(hi, lo + 1000) + 1),
                                      np.arange(max(lo, hi - 1000), hi + 1)]))
        exact = 2.0 ** k / a
        err = float((np.abs(recip_fixed(a, f) - exact) / exact).max())
        per_shift[f] = err
        worst = max(worst, err)
        points += len(a)
    return worst, points, per_shift


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    e_err, e_pts, e_per, e_rel_pos = bench_exp2(rng)
    r_err, r_pts, r_per = bench_recip(rng)
    report = {
        "exp2_max_abs_err": e_err,
        "recip_max_rel_err": r_err,
        "exp2_bound": EXP2_BOUND,
        "recip_bound": RECIP_BOUND,
        "ok": e_err <= EXP2_BOUND and r_err <= RECIP_BOUND,
        "exp2_points": e_pts,
        "recip_points": r_pts,
        "exp2_max_abs_err_by_F": {str(k): v for k, v in e_per.items()},
        "recip_max_rel_err_by_F": {str(k): v for k, v in r_per.items()},
        "exp2_max_rel_err_positive_x": e_rel_pos,
        "exp2_format": "in Q15.16 (x <= 0 domain for the abs error), out round(2**x * 2**F)",
        "recip_format": "in positive int32, out round(2**(F+16) / a), exact result in [2**14, 2**31)",
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"exp2:  max abs error {e_err:.3e} (bound {EXP2_BOUND}) over {e_pts} points")
        print(f"recip: max rel error {r_err:.3e} (bound {RECIP_BOUND}) over {r_pts} points")
        print("OK" if report["ok"] else "FAILED")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
