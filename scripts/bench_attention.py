#!/usr/bin/env python3
"""Attention benchmark: fused vs unfused over N = M, with cycles, utilization,
off-chip bytes (total and beyond Q, K, V and the output) and the error against
float64. Every figure is measured: cycles and bytes by the RTL's counters,
errors against the float64 reference, simulation speed by the wall clock.

    python scripts/bench_attention.py [--sizes 64 128 256 512] [--dim 32] [--causal]
                                      [--kinds fused unfused] [--preset default]
                                      [--sim verilator] [--json]

A shape a kernel cannot run (e.g. fused K or V larger than a PMU) is
reported with the compiler's message in its row, never estimated. Progress goes to stderr; with --json stdout
holds one JSON object {"rows": [...]}.
"""

from __future__ import annotations

import argparse
import json
import sys

COLUMNS = ("kind", "seq", "kv", "dim", "causal", "ok", "cycles", "utilization",
           "offchip_read_bytes", "offchip_write_bytes", "score_offchip_bytes", "rel_err",
           "max_abs_err", "sim_cycles_per_second")


def main(argv=None):
    from tessera.compiler.errors import CompileError
    from tessera.hw.params import preset
    from tessera.sim.attention import run_attention

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--kinds", nargs="+", default=["fused", "unfused"],
                    choices=["fused", "unfused"])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--sim", default="verilator")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    p = preset(args.preset)
    rows = []
    for s in args.sizes:
        for kind in args.kinds:
            print(f"[bench] {kind} N=M={s} d={args.dim} ...", file=sys.stderr, flush=True)
            row = {"kind": kind, "seq": s, "kv": s, "dim": args.dim, "causal": args.causal}
            try:
                r = run_attention(p, seq=s, kv=s, dim=args.dim, causal=args.causal,
                                  fused=kind == "fused", sim=args.sim, seed=args.seed)
                row.update({k: r[k] for k in COLUMNS if k in r})
            except CompileError as e:
                row.update({"ok": False, "error": str(e)})
            rows.append(row)
    if args.json:
        print(json.dumps({"preset": p.name, "sim": args.sim, "rows": rows}))
        return 0
    print(f"attention on preset {p.name}, sim {args.sim}, d={args.dim}"
          f"{', causal' if args.causal else ''}")
    head = ("kind", "N=M", "ok", "cycles", "util", "offchip B", "beyond QKV/out B",
            "rel_err", "cycles/s")
    print(" | ".join(f"{h:>10}" for h in head))
    for r in rows:
        if "error" in r:
            print(f"{r['kind']:>10} | {r['seq']:>10} | cannot run: {r['error']}")
            continue
        vals = (r["kind"], r["seq"], r["ok"], r["cycles"], f"{r['utilization']:.4f}",
                r["offchip_read_bytes"] + r["offchip_write_bytes"], r["score_offchip_bytes"],
                f"{r['rel_err']:.2e}", r["sim_cycles_per_second"])
        print(" | ".join(f"{v!s:>10}" for v in vals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
