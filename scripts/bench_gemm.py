#!/usr/bin/env python3
"""GEMM benchmark: a table over sizes and presets, on Verilator and Icarus in
one run, with cycles, utilization, roofline fraction and simulation speed,
and the Verilator/Icarus speed ratio per preset. Every figure is measured by
the RTL's counters (cycles start to done, AXI bytes) and the wall clock.

    python scripts/bench_gemm.py [--sizes 32 64 128 256] [--presets small default]
                                 [--sims verilator icarus] [--dtype int8] [--json]

Each (preset, simulator) model is built once and cached. Progress goes to
stderr; with --json stdout holds one JSON object {"rows": [...], "ratio": {...}}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def speed_ratios(rows):
    """Verilator/Icarus simulation speed per preset, on the same job: the
    largest size that ran on both (cycles per second of the whole host
    program, loads and read-back included)."""
    out = {}
    for name in dict.fromkeys(r["preset"] for r in rows):
        speed = {(r["sim"], r["m"]): r["sim_cycles_per_second"] for r in rows
                 if r["preset"] == name}
        common = [s for (sim, s) in speed if sim == "icarus" and ("verilator", s) in speed]
        if not common:
            continue
        s = max(common)
        v, i = speed[("verilator", s)], speed[("icarus", s)]
        if i:
            out[name] = {"size": s, "verilator": v, "icarus": i, "ratio": round(v / i, 1)}
    return out


def main(argv=None):
    from tessera.hw.params import preset
    from tessera.sim.backends import available
    from tessera.sim.host import run_gemm

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--presets", nargs="+", default=["small", "default"])
    ap.add_argument("--sims", nargs="+", default=["verilator", "icarus"],
                    help="simulators; with both, the Verilator/Icarus speed ratio per preset")
    ap.add_argument("--dtype", default="int8", choices=["int8", "int16"])
    ap.add_argument("--icarus-max", type=int, default=64,
                    help="largest size run on Icarus (it is ~100x slower)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    rows = []
    for name in args.presets:
        p = preset(name)
        for sim in args.sims:
            ok, why = available(sim)
            if not ok:
                print(f"[bench] skipping {sim}: {why}", file=sys.stderr)
                continue
            for s in args.sizes:
                if sim == "icarus" and s > args.icarus_max:
                    continue
                t0 = time.perf_counter()
                print(f"[bench] {name} {sim} {s}^3 ...", file=sys.stderr, flush=True)
                r = run_gemm(p, m=s, n=s, k=s, dtype=args.dtype, sim=sim,
                             progress=lambda m: print(f"[bench]   {m}", file=sys.stderr))
                rows.append({k: r[k] for k in (
                    "preset", "sim", "m", "n", "k", "dtype", "ok", "cycles", "utilization",
                    "roofline_cycles", "roofline_fraction", "offchip_read_bytes",
                    "offchip_write_bytes", "config_cycles", "sim_cycles",
                    "sim_cycles_per_second", "build_seconds")}
                    | {"wall_seconds": round(time.perf_counter() - t0, 2)})
    ratio = speed_ratios(rows)
    if args.json:
        print(json.dumps({"rows": rows, "verilator_over_icarus": ratio}))
        return 0
    head = (f"{'preset':8} {'sim':9} {'size':>5} {'ok':>3} {'cycles':>9} {'util':>6} "
            f"{'roofline':>8} {'rd B':>8} {'wr B':>8} {'cyc/s':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['preset']:8} {r['sim']:9} {r['m']:>5} {'yes' if r['ok'] else 'NO':>3} "
              f"{r['cycles']:>9} {r['utilization']:>6.3f} {r['roofline_fraction']:>8.3f} "
              f"{r['offchip_read_bytes']:>8} {r['offchip_write_bytes']:>8} "
              f"{r['sim_cycles_per_second']:>9}")
    for name, x in ratio.items():
        print(f"verilator / icarus simulation speed on {name} ({x['size']}^3, "
              f"{x['verilator']} / {x['icarus']} cycles/s): {x['ratio']}x")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
