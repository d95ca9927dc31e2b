#!/usr/bin/env python3
"""Synthesize presets x devices, print a table and write the results as JSON.

    python scripts/synth_sweep.py                               # tiny, small on every device
    python scripts/synth_sweep.py --presets tiny small default --devices ecp5-85k
    python scripts/synth_sweep.py --top hop --out hop.json
    python scripts/synth_sweep.py --top pcu --presets small default --devices ecp5-85k
    python scripts/synth_sweep.py --presets default --devices ecp5-85k --synth-only
    python scripts/synth_sweep.py --top pcu --presets small --devices ecp5-85k --seeds 1 2 3 --jobs 2

A combination that does not fit its device is listed with the overflowing
resource instead of figures; a tool failure is listed with its message (the
sweep goes on either way). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tessera.hw.params import PRESETS, preset
from tessera.hw.synth import DEVICES, TOPS, DesignDoesNotFit, SynthError, synthesize


def _row(r: dict) -> list:
    if "error" in r:
        return [r["preset"], r["device"], "-", "-", "-", "-", "-", f"{r['status']}: {r['reason']}"]
    if r["fmax_mhz"] is not None:
        fmax = f"{r['fmax_mhz']:.1f}"
        if r.get("seed_sweep"):            # the best seed's, and the mean over seeds
            fmax += f" (mean {r['seed_sweep']['fmax_mhz_mean']:.1f})"
    elif r.get("placement_fmax_estimate_mhz") is not None:
        fmax = f"~{r['placement_fmax_estimate_mhz']:.1f}"      # placement estimate
    else:
        fmax = "-"
    status = "ok" if r.get("source", "nextpnr") == "nextpnr" else "yosys only"
    return [r["preset"], r["device"], str(r["luts"]), str(r["ffs"]), str(r["dsps"]),
            str(r["brams"]), fmax, f"{status} ({r['wall_seconds']:.0f} s)"]


def format_table(results: list) -> str:
    head = ["preset", "device", "LUTs", "FFs", "DSPs", "BRAMs", "Fmax MHz", "status"]
    rows = [head] + [_row(r) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head) - 1)]
    lines = []
    for row in rows:
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells + [row[-1]]))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["tiny", "small"], choices=list(PRESETS))
    ap.add_argument("--devices", nargs="+", default=list(DEVICES), choices=list(DEVICES))
    ap.add_argument("--top", default="fabric", choices=list(TOPS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                    help="place and route each netlist with each of these nextpnr seeds; "
                         "Fmax is the best seed's, with the mean over seeds")
    ap.add_argument("--jobs", type=int, default=1, help="with --seeds: nextpnr runs at a time")
    ap.add_argument("--timeout", type=float, default=None,
                    help="per-tool timeout in seconds (default: none)")
    ap.add_argument("--no-route", dest="route", action="store_false",
                    help="stop after placement (much faster; no routed Fmax)")
    ap.add_argument("--synth-only", dest="pnr", action="store_false",
                    help="Yosys only: cell counts, no place and route (designs larger "
                         "than the device)")
    ap.add_argument("--out", default="synth_sweep.json", help="JSON output file")
    args = ap.parse_args(argv)

    def progress(msg):
        print(msg, file=sys.stderr, flush=True)

    results = []
    t0 = time.monotonic()
    for pname in args.presets:
        for dname in args.devices:
            base = {"preset": pname, "device": dname, "top": args.top}
            try:
                r = synthesize(preset(pname), dname, top=args.top, seed=args.seed,
                               progress=progress, timeout=args.timeout, route=args.route,
                               pnr=args.pnr, seeds=args.seeds, jobs=args.jobs)
                results.append(r)
            except DesignDoesNotFit as e:
                reason = ", ".join(f"{k} {u}/{a}" for k, (u, a) in e.overflow.items()) \
                    or str(e).splitlines()[0]
                progress(f"[sweep] {pname}/{dname} does not fit: {reason}")
                results.append({**base, "error": "DesignDoesNotFit", "status": "does not fit",
                                "reason": reason,
                                "overflow": {k: {"used": u, "available": a}
                                             for k, (u, a) in e.overflow.items()}})
            except SynthError as e:
                first = str(e).splitlines()[0]
                progress(f"[sweep] {pname}/{dname} failed: {first}")
                results.append({**base, "error": type(e).__name__, "status": "failed",
                                "reason": first, "message": str(e)})
    table = format_table(results)
    print(table)
    out = Path(args.out)
    out.write_text(json.dumps({"results": results,
                               "wall_seconds": round(time.monotonic() - t0, 1)}, indent=2))
    print(f"\nwrote {out}", file=sys.stderr)
    return 0 if any("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
