#!/usr/bin/env python3
"""PMU throughput figures (issue 4), printed as one JSON object.

* ``patterns``: concurrent vector write and read, double-buffered, for the
  row, strided and transposed patterns: the writer fills buffer i+1 while
  the reader drains buffer i, inputs offered every cycle and outputs always
  ready. ``read_per_cycle`` is measured on the output transfers,
  ``write_per_cycle`` on the "buffer written" tokens (``ctrl_out[0]``: one
  per buffer of ``vectors_per_buffer`` writes), both in steady state (the
  middle 3/4 of the run).
* ``double_buffer``: a producer/consumer pair through the PMU with the token
  hand-off: the consumer side reads every tile ``reuse`` times (as a GEMM
  operand tile is), the producer fills the other buffer meanwhile;
  ``consumer_busy`` is the fraction of steady-state cycles with a consumer
  transfer. With ``reuse = 1`` the two sides run at the same rate and every
  buffer hand-off is on the critical path.
* ``credit_loop``: the same hand-off between two PMUs (always on pysim):
  PMU A sends a tile only with a credit, PMU B returns one per buffer its
  reader releases. With B double-buffered the consumer loses part of the
  credit's round trip (about 9 cycles A to B and back) per tile; a third
  buffer (or long tiles) hides it.
* ``synth`` (``--synth``, ``--synth-only``): LUTs, FFs, BRAMs, DSPs and Fmax
  of one default-preset PMU on ECP5 through
  :func:`tessera.hw.synth.synthesize` (with a local PMU top,
  :class:`PMUSynthTop`, until synth.py offers one).

    python scripts/bench_pmu.py [--preset small] [--sim verilator|pysim] [--synth]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.hw.links import vector_layout
from tessera.hw.params import preset as get_preset
from tessera.hw.pmu import EV_RELEASED, EV_WRITTEN, PMU, RD
from tessera.sim.harness import run_streams
from tessera.sim.pmu_model import PMUModel, ag, encode_config, pmu_config, unpack_vec, vec_payload


def _pow2(n):
    return 1 << max(0, (n - 1).bit_length())


def pattern_programs(p, vectors=32):
    """(write AG, read AG, rows per buffer) of the measured patterns, with
    `vectors` vector accesses per buffer on each side."""
    B = p.pmu_banks
    n = vectors
    s = 4
    ncb = max(1, vectors // (2 * B))        # transposed: R = 2B rows x ncb column blocks
    R = vectors // ncb
    return {
        "rows": (ag(p, [(n, 1, 0)]), ag(p, [(n, 1, 0)], last=1), n),
        "strided": (ag(p, [(n, 1, 0)]), ag(p, [(n // s, s, 0), (s, 1, 0)], last=1), n),
        "transposed": (ag(p, [(ncb, 1, 0), (R, ncb, 1)]),
                       ag(p, [(B, 0, 1), (ncb, 1, 0), (R // B, B * ncb, 0)], lstride=ncb, last=1),
                       R * ncb),
    }


def _rate(times, per_event=1):
    """Events per cycle over the middle 3/4 of `times`."""
    n = len(times)
    if n < 4:
        return None
    a, b = n // 8, n - 1 - n // 8
    return per_event * (b - a) / (times[b] - times[a])


def _run(p, cfg, inputs, expect, sim, **kw):
    return run_streams(lambda: PMU(p), sim=sim, key=f"pmu-{p.name}",
                       static={"config": encode_config(p, cfg)}, inputs=inputs, expect=expect,
                       timeout=200_000, **kw)


def _vectors(p, n, seed):
    rng = random.Random(seed)
    return [vec_payload(p, [rng.getrandbits(32) for _ in range(p.lanes)]) for _ in range(n)]


def measure_pattern(p, name, *, buffers=32, vectors=32, sim="verilator", check=True):
    wr, rd, rows = pattern_programs(p, vectors)[name]
    rows = _pow2(rows)
    cfg = pmu_config(p, wr=wr, rd=rd, nbuf=2, buf_lg=rows.bit_length() - 1,
                     ctrl_out={0: {"event": EV_WRITTEN}, 1: {"event": EV_RELEASED}})
    words = _vectors(p, buffers * vectors, seed=1)
    inputs = {"i_vec[0]": words}
    want = PMUModel(p, cfg).run(inputs)
    expect = {"o_vec[0]": len(want["o_vec[0]"]), "o_ctrl[0]": buffers, "o_ctrl[1]": buffers}
    res = _run(p, cfg, inputs, expect, sim, in_gap=0.0, out_stall=0.0, seed=0)
    if check:
        assert not res.timed_out, f"{name}: timed out"
        assert res.outputs["o_vec[0]"] == want["o_vec[0]"], f"{name}: RTL differs from the model"
    return {
        "vectors_per_buffer": vectors, "buffers": buffers, "cycles": res.cycles,
        "read_per_cycle": round(_rate(res.transfers["o_vec[0]"]), 4),
        "write_per_cycle": round(_rate(res.transfers["o_ctrl[0]"], vectors), 4),
    }


def measure_double_buffer(p, *, tiles=24, vectors=32, reuse=4, sim="verilator", check=True,
                          out_stall=0.0):
    """Producer -> PMU (2 buffers) -> consumer reading each tile `reuse` times."""
    rows = _pow2(vectors)
    cfg = pmu_config(p, wr=ag(p, [(vectors, 1, 0)]),
                     rd=ag(p, [(vectors, 1, 0), (reuse, 0, 0)], last=1),
                     nbuf=2, buf_lg=rows.bit_length() - 1,
                     ctrl_out={0: {"event": EV_WRITTEN}, 1: {"event": EV_RELEASED}})
    inputs = {"i_vec[0]": _vectors(p, tiles * vectors, seed=2)}
    want = PMUModel(p, cfg).run(inputs)
    n_out = len(want["o_vec[0]"])
    res = _run(p, cfg, inputs, {"o_vec[0]": n_out, "o_ctrl[0]": tiles, "o_ctrl[1]": tiles}, sim,
               in_gap=0.0, out_stall=out_stall, seed=3)
    if check:
        assert not res.timed_out
        assert res.outputs["o_vec[0]"] == want["o_vec[0]"], "double buffer: RTL differs from the model"
    t = res.transfers["o_vec[0]"]
    return {"tiles": tiles, "vectors_per_tile": vectors, "reuse": reuse, "out_stall": out_stall,
            "cycles": res.cycles, "consumer_busy": round(_rate(t), 4),
            "first_output_cycle": t[0]}


class _PMUPair(wiring.Component):
    """Two PMUs in a row with a credit loop: A's read side sends a tile only
    with a credit from ``i_ctrl[0]`` (init 2 = B's two buffers); B returns a
    credit (``ctrl_out[0]``, event released) each time its reader frees a
    buffer. The hand-off is tokens between units, no shared state."""

    def __init__(self, p):
        self.p = p
        sig = stream.Signature(vector_layout(p))
        super().__init__({"i": In(sig), "o": Out(sig),
                          "config_a": In(PMU.config_layout(p)),
                          "config_b": In(PMU.config_layout(p))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.a = a = PMU(self.p)
        m.submodules.b = b = PMU(self.p)
        m.d.comb += [a.config.eq(self.config_a), b.config.eq(self.config_b)]
        wiring.connect(m, wiring.flipped(self.i), a.i_vec[0])
        wiring.connect(m, a.o_vec[0], b.i_vec[0])
        wiring.connect(m, b.o_ctrl[0], a.i_ctrl[0])
        wiring.connect(m, b.o_vec[0], wiring.flipped(self.o))
        return m


def run_pmu_pair(p, *, n=16, tiles=10, nbuf=2, out_stall=0.0, seed=8):
    """Tiles of `n` vectors through A -> B with B's `nbuf` buffers handed back
    to A as credits. Returns (sent rows, received payloads, HarnessResult)."""
    lg = (n - 1).bit_length()
    tile = ag(p, [(n, 1, 0)])
    cfg_a = pmu_config(p, wr=tile, rd=ag(p, [(n, 1, 0)], last=1), nbuf=2, buf_lg=lg,
                       ctrl_in={0: {"side": RD, "init": nbuf}})
    cfg_b = pmu_config(p, wr=tile, rd=ag(p, [(n, 1, 0)], last=1), nbuf=nbuf, buf_lg=lg,
                       ctrl_out={0: {"event": EV_RELEASED}})
    rng = random.Random(seed)
    rows = [[rng.getrandbits(32) for _ in range(p.lanes)] for _ in range(n * tiles)]
    words = [vec_payload(p, d) for d in rows]
    res = run_streams(lambda: _PMUPair(p), sim="pysim",
                      static={"config_a": encode_config(p, cfg_a),
                              "config_b": encode_config(p, cfg_b)},
                      inputs={"i": words}, expect={"o": len(words)},
                      in_gap=0.0, out_stall=out_stall, seed=seed)
    return rows, res


def measure_credit_loop(p, *, n=32, tiles=16, nbuf=2):
    rows, res = run_pmu_pair(p, n=n, tiles=tiles, nbuf=nbuf)
    assert not res.timed_out and [unpack_vec(p, w)[0] for w in res.outputs["o"]] == rows
    return {"vectors_per_tile": n, "tiles": tiles, "buffers_in_b": nbuf,
            "consumer_busy": round(_rate(res.transfers["o"]), 4)}


class PMUSynthTop(wiring.Component):
    """One PMU for synthesis: every input (streams and configuration) driven
    from an LFSR, every output XOR-observed into two pins, with the helpers of
    :mod:`tessera.hw.synth` (used until synth.py has a ``pmu`` top)."""

    def __init__(self, params, obs_pins: int = 2):
        self.params = params
        self.harness_info = {}
        super().__init__({"obs": Out(obs_pins)})

    def elaborate(self, platform):
        from tessera.hw import synth
        m = Module()
        m.submodules.pmu = pmu = PMU(self.params)
        h = synth._PortHarness(m, [("pmu", pmu)])
        regs = h.observer.reduce(m, self.obs)
        self.harness_info = h.info(observer_flops=regs)
        return m


def measure_synth(p, device="ecp5-85k"):
    """LUTs/FFs/BRAMs/DSPs/Fmax of one PMU (nextpnr's report)."""
    try:
        from tessera.hw import synth
    except ImportError as e:                    # pragma: no cover
        return {"skipped": f"tessera.hw.synth unavailable: {e}"}
    saved = synth.TOPS, synth.build_top
    if "pmu" not in synth.TOPS:
        synth.TOPS = tuple(synth.TOPS) + ("pmu",)
        synth.build_top = (lambda params, top="fabric":
                           PMUSynthTop(params) if top == "pmu" else saved[1](params, top))
    try:
        r = synth.synthesize(p, device, top="pmu",
                             progress=lambda msg: print(msg, file=sys.stderr))
    except Exception as e:                      # tools missing, flow changed, ...
        return {"skipped": f"{type(e).__name__}: {e}"}
    finally:
        synth.TOPS, synth.build_top = saved
    return {k: r.get(k) for k in ("device", "luts", "ffs", "brams", "dsps", "fmax_mhz",
                                  "target_mhz", "timing_met")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--sim", default="verilator", choices=["verilator", "pysim", "icarus"])
    ap.add_argument("--buffers", type=int, default=32)
    ap.add_argument("--vectors", type=int, default=32)
    ap.add_argument("--synth", action="store_true",
                    help="also synthesize one PMU of the default preset for ECP5")
    ap.add_argument("--synth-only", action="store_true", help="only the synthesis figures")
    args = ap.parse_args(argv)
    p = get_preset(args.preset)
    t0 = time.perf_counter()
    out = {"preset": p.name, "sim": args.sim, "banks": p.pmu_banks, "depth": p.pmu_depth,
           "capacity_words": PMU.capacity(p),
           "config_words": -(-PMU.config_layout(p).size // 32), "patterns": {}}
    if args.synth_only:
        out = {"synth": measure_synth(get_preset("default"))}
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    for name in ("rows", "strided", "transposed"):
        out["patterns"][name] = measure_pattern(p, name, buffers=args.buffers,
                                                vectors=args.vectors, sim=args.sim)
    out["double_buffer"] = [
        measure_double_buffer(p, reuse=4, vectors=args.vectors, sim=args.sim),
        measure_double_buffer(p, reuse=1, vectors=args.vectors, sim=args.sim),
    ]
    out["credit_loop"] = [measure_credit_loop(p, nbuf=2), measure_credit_loop(p, nbuf=3),
                          measure_credit_loop(p, n=128, tiles=6, nbuf=2)]
    if args.synth:
        out["synth"] = measure_synth(get_preset("default"))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
