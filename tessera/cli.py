"""The ``tessera`` command: the user's entry point.

    tessera run gemm --m M --n N --k K [--dtype int8|int16] [--preset P] [--sim S] [--heatmap FILE.png] [--wave FILE.vcd] [--json]
    tessera run copy [--bytes B] [--hops H] [--preset P] [--sim S] [--json]
    tessera run route --hops H [--preset P] [--sim S] [--words N] [--json]
    tessera run attention --seq N --kv M --dim D [--causal] [--unfused] [--preset P] [--sim S] [--heatmap FILE.png] [--wave FILE.vcd] [--json]
    tessera compile gemm --m M --n N --k K [--dtype D] [--preset P] -o FILE.bit [--draw FILE.png]
    tessera load FILE [--preset P] [--sim S] [--json]
    tessera synth [--preset P] [--device D] [--json]
    tessera info [--preset P] [--json]

Errors a user can cause (bad preset, missing simulator, unroutable request,
unreadable file) are one line on stderr and exit code 2, never a traceback.
With --json, stdout holds exactly one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main"]

SIMS = ("verilator", "icarus", "pysim")


class UserError(Exception):
    pass


def _progress(args):
    def say(msg):
        print(f"[tessera] {msg}", file=sys.stderr, flush=True)
    return say


def _params(args):
    from tessera.hw.params import preset
    try:
        return preset(args.preset)
    except ValueError as e:
        raise UserError(str(e)) from None


def _emit(args, report: dict, human):
    if args.json:
        print(json.dumps(report))
    else:
        human(report)


def _human_route(r):
    status = "OK" if r["ok"] else "FAILED"
    print(f"route: {r['hops']} switch hops on preset {r['preset']} ({r['src']} -> {r['dst']}), "
          f"sim {r['sim']}: {status}")
    print(f"  words          {r['received']}/{r['words']} received, {r['mismatches']} mismatches")
    print(f"  cycles         {r['cycles']} (start to last word)")
    print(f"  throughput     {r['throughput']:.4f} words/cycle in steady state")
    print(f"  config_cycles  {r['config_cycles']} ({r['bitstream_bytes']} byte bitstream)")
    print(f"  simulation     {r['sim_cycles_per_second']} cycles/s, wall {r['wall_seconds']} s")


def _human_gemm(r):
    status = "OK (bit-exact vs NumPy)" if r["ok"] else f"FAILED ({r['mismatches']} mismatches)"
    print(f"gemm {r['m']}x{r['n']}x{r['k']} {r['dtype']} on preset {r['preset']} "
          f"({r['grid']} PCU grid), sim {r['sim']}: {status}")
    print(f"  cycles             {r['cycles']} (start to done: loads, compute, write-back)")
    if r.get("configurations", 1) > 1:
        print(f"  K tiles            {r['k_tiles']} + a reduction: runs of {r['run_cycles']} "
              f"cycles, {r['host_gap_cycles']} between them (switches, counter reads)")
    print(f"  MACs               {r['macs']} at peak {r['peak_macs_per_cycle']}/cycle")
    print(f"  utilization        {r['utilization']:.4f}")
    print(f"  roofline           {r['roofline_cycles']} cycles, fraction {r['roofline_fraction']:.4f}")
    print(f"  off-chip bytes     read {r['offchip_read_bytes']}, write {r['offchip_write_bytes']} "
          f"(compulsory {r['compulsory_bytes']})")
    print(f"  config_cycles      {r['config_cycles']} ({r['bitstream_bytes']} byte bitstream, "
          f"fetched from DRAM)")
    print(f"  simulation         {r['sim_cycles_per_second']} cycles/s, wall {r['wall_seconds']} s"
          + (" (model cached)" if r.get("model_cached") else f", model build {r['build_seconds']} s"))
    if r.get("heatmap"):
        print(f"  unit activity      {r['heatmap']}")
    if r.get("wave"):
        print(f"  waveform           {r['wave']}")


def _human_attention(r):
    status = ("OK (bit-exact vs the golden model)" if r["ok"]
              else f"FAILED ({r['mismatches']} mismatches)")
    kind = "fused" if r["fused"] else "unfused"
    heads = ""
    if r.get("heads", 1) > 1:
        side = r.get("heads_side_by_side", 1)
        heads = (f" x {r['heads']} heads, {side} side by side per configuration" if side > 1
                 else f" x {r['heads']} heads, one after the other")
    print(f"attention N={r['seq']} M={r['kv']} d={r['dim']}{' causal' if r['causal'] else ''} "
          f"({kind}{heads}) on preset {r['preset']}, sim {r['sim']}: {status}")
    print(f"  cycles             {r['cycles']} over {r['configurations']} configurations "
          f"({', '.join(r['kernels'])}): {r['run_cycles']}")
    print(f"  MACs               {r['macs']} at peak {r['peak_macs_per_cycle']}/cycle, "
          f"utilization {r['utilization']:.4f}")
    print(f"  error vs float64   rel_err {r['rel_err']:.3e}, max_abs_err {r['max_abs_err']:.3e}")
    print(f"  off-chip bytes     read {r['offchip_read_bytes']}, write "
          f"{r['offchip_write_bytes']} (Q, K, V, out: {r['compulsory_bytes']}; scores and "
          f"other intermediates: {r['score_offchip_bytes']})")
    print(f"  simulation         {r['sim_cycles_per_second']} cycles/s, wall {r['wall_seconds']} s")
    if r.get("heatmap"):
        print(f"  unit activity      {r['heatmap']}")
    if r.get("wave"):
        print(f"  waveform           {r['wave']}")


def _human_copy(r):
    status = "OK" if r["ok"] else "FAILED"
    print(f"copy {r['bytes']} bytes DRAM -> {r['hops']} hops -> DRAM on preset {r['preset']}, "
          f"sim {r['sim']}: {status}")
    print(f"  cycles          {r['cycles']}")
    print(f"  off-chip bytes  read {r['offchip_read_bytes']}, write {r['offchip_write_bytes']}")
    print(f"  bandwidth       {r['bandwidth_fraction']:.4f} of the DRAM model's")
    print(f"  config_cycles   {r['config_cycles']}")


def _heatmap(args, params, report):
    """--heatmap FILE.png: the run's measured unit activity on the grid."""
    if not args.heatmap:
        return
    from tessera.compiler.draw import draw_activity
    job = report.get("job", args.job)
    draw_activity(params, report["unit_perf"], report["cycles"], args.heatmap,
                  title=f"Tessera {params.name}: {job}, unit activity over "
                        f"{report['cycles']} cycles (RTL counters)")
    report["heatmap"] = str(args.heatmap)


def _wave(report, args):
    if args.wave:
        report["wave"] = str(args.wave)


def cmd_run(args):
    from tessera.compiler.errors import CompileError
    from tessera.compiler.route import RouteError
    from tessera.sim.backends import SimulatorMissing
    from tessera.sim.host import run_copy, run_gemm, run_route
    params = _params(args)
    if args.job == "gemm":
        try:
            report = run_gemm(params, m=args.m, n=args.n, k=args.k, dtype=args.dtype,
                              sim=args.sim, seed=args.seed, progress=_progress(args),
                              wave=args.wave, threads=args.threads)
        except (CompileError, SimulatorMissing, ValueError) as e:
            raise UserError(str(e)) from None
        _heatmap(args, params, report)
        _wave(report, args)
        _emit(args, report, _human_gemm)
        return 0 if report["ok"] else 1
    if args.job == "attention":
        from tessera.sim.attention import run_attention
        try:
            report = run_attention(params, seq=args.seq, kv=args.kv, dim=args.dim,
                                   causal=args.causal, fused=not args.unfused, sim=args.sim,
                                   seed=args.seed, heads=args.heads, progress=_progress(args),
                                   wave=args.wave, threads=args.threads)
        except (CompileError, SimulatorMissing, ValueError) as e:
            raise UserError(str(e)) from None
        _heatmap(args, params, report)
        _wave(report, args)
        _emit(args, report, _human_attention)
        return 0 if report["ok"] else 1
    if args.job == "copy":
        try:
            report = run_copy(params, nbytes=args.bytes, hops=args.hops, sim=args.sim,
                              seed=args.seed, progress=_progress(args))
        except (RouteError, SimulatorMissing, ValueError) as e:
            raise UserError(str(e)) from None
        _emit(args, report, _human_copy)
        return 0 if report["ok"] else 1
    if args.job == "route":
        if args.hops < 3:
            raise UserError(f"--hops must be >= 3, got {args.hops}")
        try:
            report = run_route(params, hops=args.hops, words=args.words, sim=args.sim,
                               seed=args.seed, gen_stall=args.gen_stall,
                               chk_stall=args.chk_stall, progress=_progress(args))
        except (RouteError, SimulatorMissing, ValueError) as e:
            raise UserError(str(e)) from None
        _emit(args, report, _human_route)
        return 0 if report["ok"] else 1
    raise UserError(f"unknown job {args.job!r}")


def _compile_attention(args, params):
    """`tessera compile attention`: the fused kernel's bitstream (the formats
    of the inputs `tessera run attention --seed S` draws)."""
    from tessera.compiler.attention import check_attention_shape, compile_attention_fused
    from tessera.compiler.attention_model import AttentionFormats
    from tessera.compiler.errors import CompileError
    from tessera.sim.attention import random_qkv
    N, M, d = args.seq, args.kv, args.dim
    try:
        check_attention_shape(N, M, d, args.causal)
        q8, k8, _, scales = random_qkv(N, M, d, args.seed)
        att = compile_attention_fused(params, N, M, d,
                                      AttentionFormats.for_inputs(q8, k8, scales),
                                      causal=args.causal, seed=args.seed)
    except CompileError as e:
        raise UserError(str(e)) from None
    try:
        with open(args.output, "wb") as f:
            f.write(att.bitstream)
    except OSError as e:
        raise UserError(f"cannot write {e.filename}: {e.strerror}") from None
    units = att.kernel.netlist.units
    report = {"ok": True, "job": "attention", "fused": True, "preset": params.name,
              "seq": N, "kv": M, "dim": d, "causal": args.causal, "output": args.output,
              "bitstream_bytes": len(att.bitstream), "kv_resident": att.resident,
              "units": {kind: sum(u.kind == kind for u in units.values())
                        for kind in ("pcu", "pmu", "agcu")},
              "routing_iterations": att.routing.iterations,
              "compile_seconds": round(att.compile_seconds, 3),
              "layout": {"q_addr": att.q_addr, "k_addr": att.k_addr, "v_addr": att.v_addr,
                         "out_addr": att.out_addr}}
    if args.draw:
        from tessera.compiler.draw import draw
        draw(params, att.placement, att.routing, args.draw,
             title=f"fused attention N={N} M={M} d={d}{' causal' if args.causal else ''} "
                   f"on {params.name}")
        report["draw"] = args.draw

    def human(r):
        u = r["units"]
        print(f"fused attention N={N} M={M} d={d}{' causal' if args.causal else ''} on preset "
              f"{params.name}: {u['pcu']} PCUs, {u['pmu']} PMUs, {u['agcu']} AGCUs, K and V "
              f"{'resident in PMUs' if r['kv_resident'] else 'streamed per row'}")
        print(f"  bitstream  {r['output']} ({r['bitstream_bytes']} bytes), routed in "
              f"{r['routing_iterations']} PathFinder iteration(s), {r['compile_seconds']} s")
        if r.get("draw"):
            print(f"  picture    {r['draw']}")
    _emit(args, report, human)
    return 0


def cmd_compile(args):
    from tessera.compiler.errors import CompileError
    from tessera.compiler.gemm import compile_gemm
    params = _params(args)
    if args.job == "attention":
        return _compile_attention(args, params)
    missing = [f"--{x}" for x in "mnk" if getattr(args, x) is None]
    if missing:
        raise UserError(f"compile gemm needs {', '.join(missing)}")
    try:
        cg = compile_gemm(params, args.m, args.n, args.k, args.dtype, seed=args.seed)
    except CompileError as e:
        raise UserError(str(e)) from None
    # One file per configuration: FILE for the first, FILE with .tileN / .reduce
    # before its suffix for the further K tiles and the reduction.
    outputs = [args.output]
    stem, dot, ext = args.output.rpartition(".")
    base, suffix = (stem, dot + ext) if stem else (args.output, "")
    outputs += [f"{base}.tile{t}{suffix}" for t in range(1, len(cg.tiles))]
    if cg.reduce_bitstream:
        outputs.append(f"{base}.reduce{suffix}")
    try:
        for path, blob in zip(outputs, cg.bitstreams):
            with open(path, "wb") as f:
                f.write(blob)
    except OSError as e:
        raise UserError(f"cannot write {e.filename}: {e.strerror}") from None
    report = {"ok": True, "job": "gemm", "preset": params.name, "output": args.output,
              "outputs": outputs, "k_tiles": cg.plan.T,
              "bitstream_bytes": len(cg.bitstream), "summary": cg.plan.summary(),
              "routing_iterations": cg.routing.iterations,
              "compile_seconds": round(cg.compile_seconds, 3),
              "layout": {"a_addr": cg.plan.a_addr, "b_addr": cg.plan.b_addr,
                         "c_addr": cg.plan.c_addr, "padded": [cg.plan.Mp, cg.plan.Np, cg.plan.Kp]}}
    if args.draw:
        from tessera.compiler.draw import draw
        draw(params, cg.placement, cg.routing, args.draw)
        report["draw"] = args.draw

    def human(r):
        print(f"{r['summary']}")
        print(f"  bitstream  {r['output']} ({r['bitstream_bytes']} bytes), routed in "
              f"{r['routing_iterations']} PathFinder iteration(s), {r['compile_seconds']} s")
        for path in r["outputs"][1:]:
            print(f"             {path} (run in this order)")
        if r.get("draw"):
            print(f"  picture    {r['draw']}")
    _emit(args, report, human)
    return 0


def cmd_load(args):
    from tessera.sim.backends import SimulatorMissing
    from tessera.sim.host import load_bitstream
    params = _params(args)
    try:
        with open(args.file, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise UserError(f"cannot read {args.file}: {e.strerror}") from None
    try:
        report = load_bitstream(params, blob, sim=args.sim, progress=_progress(args))
    except (SimulatorMissing, ValueError) as e:
        raise UserError(str(e)) from None
    report["file"] = args.file

    def human(r):
        verdict = "accepted" if r["accepted"] else f"rejected: {r['error']}"
        print(f"{r['file']}: {r['bytes']} bytes, {verdict} by the RTL loader "
              f"({r['config_cycles']} cycles, sim {r['sim']}); decoder model says {r['model_error']}")
    _emit(args, report, human)
    return 0


def cmd_synth(args):
    try:
        from tessera.hw.synth import main_synth
    except ImportError as e:
        raise UserError(f"synthesis flow unavailable: {e}") from None
    return main_synth(args) or 0


def cmd_info(args):
    from tessera.hw.topology import Topology
    params = _params(args)
    topo = Topology(params)
    report = {"preset": params.name, "params": params.to_dict(), "hash32": params.hash32,
              "pcus": params.num_pcus, "pmus": params.num_pmus, "agcus": params.agcus,
              "config_units": len(topo.config_units), "payload_words": topo.payload_words,
              "edge_ports": {f"{n}_{d}": len(v) for (n, d), v in topo.edge_ports.items()}}

    def human(r):
        for k, v in r.items():
            print(f"{k:15} {v}")
    _emit(args, report, human)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tessera", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p, sim=True):
        p.add_argument("--preset", default="default", help="fabric preset (tiny, small, "
                       "default, plasticine)")
        if sim:
            p.add_argument("--sim", default="verilator", choices=SIMS)
        p.add_argument("--json", action="store_true", help="print one JSON object")

    run = sub.add_parser("run", help="compile, load and run a job on the simulated fabric")
    run.add_argument("job", choices=["gemm", "copy", "route", "attention"])
    run.add_argument("--m", type=int, default=64, help="gemm: rows of A and C")
    run.add_argument("--n", type=int, default=64, help="gemm: columns of B and C")
    run.add_argument("--k", type=int, default=64, help="gemm: columns of A, rows of B")
    run.add_argument("--dtype", default="int8", choices=["int8", "int16"],
                     help="gemm: operand type (the result is int32)")
    run.add_argument("--seq", type=int, default=64, help="attention: queries N")
    run.add_argument("--kv", type=int, default=64, help="attention: keys M")
    run.add_argument("--dim", type=int, default=32, help="attention: head dim d (16, 32, 64)")
    run.add_argument("--heads", type=int, default=1,
                     help="attention: heads (fused: side by side as far as the fabric holds "
                          "them, then one configuration after the other)")
    run.add_argument("--causal", action="store_true", help="attention: causal mask")
    run.add_argument("--unfused", action="store_true",
                     help="attention: the unfused baseline (S and P through DRAM) instead of "
                          "the fused kernel (docs/attention.md)")
    run.add_argument("--bytes", type=int, default=65536, help="copy: bytes to move")
    run.add_argument("--hops", type=int, default=6, help="route/copy: switch hops (>= 3)")
    run.add_argument("--words", type=int, default=4096)
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--threads", type=int, default=1, metavar="N",
                     help="gemm/attention: simulate on an N-threaded Verilator model (built "
                          "and cached apart); pays only with N idle cores (docs/simulation.md)")
    run.add_argument("--heatmap", metavar="FILE.png",
                     help="gemm/attention: PNG of each unit's measured activity on the grid")
    run.add_argument("--wave", metavar="FILE.vcd",
                     help="gemm/attention: write the whole run's waveform (.vcd; .fst on "
                          "verilator where lz4.h is installed); a traced model is built "
                          "once and cached")
    run.add_argument("--gen-stall", type=int, default=0,
                     help="probability in 256ths that the source idles a cycle")
    run.add_argument("--chk-stall", type=int, default=0,
                     help="probability in 256ths that the sink applies backpressure")
    common(run)
    run.set_defaults(func=cmd_run)

    comp = sub.add_parser("compile", help="compile a job to a bitstream (and a picture)")
    comp.add_argument("job", choices=["gemm", "attention"])
    comp.add_argument("--m", type=int, help="gemm: rows of A and C")
    comp.add_argument("--n", type=int, help="gemm: columns of B and C")
    comp.add_argument("--k", type=int, help="gemm: columns of A, rows of B")
    comp.add_argument("--dtype", default="int8", choices=["int8", "int16"])
    comp.add_argument("--seq", type=int, default=64, help="attention (fused): queries N")
    comp.add_argument("--kv", type=int, default=64, help="attention (fused): keys M")
    comp.add_argument("--dim", type=int, default=32, help="attention (fused): head dim d")
    comp.add_argument("--causal", action="store_true", help="attention: causal mask")
    comp.add_argument("--seed", type=int, default=0, help="placement seed")
    comp.add_argument("-o", "--output", required=True, help="bitstream file to write")
    comp.add_argument("--draw", help="PNG of the placement and routes")
    common(comp, sim=False)
    comp.set_defaults(func=cmd_compile)

    load = sub.add_parser("load", help="load a file as a bitstream through the RTL loader")
    load.add_argument("file")
    common(load)
    load.set_defaults(func=cmd_load)

    synth = sub.add_parser("synth", help="synthesize with yosys + nextpnr")
    try:
        from tessera.hw.synth import add_synth_arguments
        add_synth_arguments(synth)
    except ImportError:
        pass
    synth.set_defaults(func=cmd_synth)

    info = sub.add_parser("info", help="print a preset's parameters and sizes")
    common(info, sim=False)
    info.set_defaults(func=cmd_info)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"tessera: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tessera: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
