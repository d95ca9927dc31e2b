"""Host-side jobs: what the CLI and the tests ask a simulated fabric to do.

Every job compiles (or reads) a bitstream, builds a driver script, runs it on
a backend and turns the measured counters into a report. All figures come
from counters in the RTL (cycles, words, first/last transfer), never from
shapes or assumptions.
"""

from __future__ import annotations

import time

from ..compiler.bitstream import BitstreamError, FabricConfig, bytes_to_beats, decode, encode
from ..compiler.route import compile_route
from ..hw.config import LoadError
from ..hw.params import FabricParams
from ..hw.tops import SimTop
from .backends import get_backend

__all__ = ["run_route", "load_bitstream", "copy_config", "run_copy", "run_gemm"]


def _load_report(result: dict) -> dict:
    code = result["error"]
    try:
        name = LoadError(code).name
    except ValueError:
        name = f"UNKNOWN_{code}"
    return {"accepted": result["accepted"], "error": name, "error_code": code,
            "config_cycles": result["config_cycles"], "ended": result["ended"]}


def run_route(params: FabricParams, *, hops: int, words: int = 4096, sim: str = "verilator",
              seed: int = 1, gen_stall: int = 0, chk_stall: int = 0,
              progress=None) -> dict:
    """Compile a route of `hops` switch hops, load it through the config
    loader, stream `words` vector words through it and check them."""
    if not isinstance(words, int) or words < 1:
        raise ValueError(f"words must be a positive integer, got {words!r}")
    if not (0 <= gen_stall < 256 and 0 <= chk_stall < 256):
        raise ValueError("stall probabilities are in 256ths: 0..255")
    t0 = time.perf_counter()
    route = compile_route(params, hops)
    bitstream = encode(route.config)
    script = [
        {"op": "load", "beats": bytes_to_beats(bitstream, params.config_beat_words)},
        {"op": "stream", "src": route.src, "dst": route.dst, "words": words,
         "seed": seed, "gen_stall": gen_stall, "chk_stall": chk_stall,
         "timeout": 64 * words + 10_000},
    ]
    res = get_backend(sim).run(params, script, progress=progress)
    load, stream = res.results
    received = stream["received"]
    span = stream["last"] - stream["first"]
    throughput = (received - 1) / span if received > 1 and span > 0 else float(received)
    ok = (load["accepted"] and not stream["timed_out"] and received == words
          and stream["mismatches"] == 0)
    return {
        "ok": bool(ok),
        "job": "route",
        "preset": params.name,
        "sim": sim,
        "hops": hops,
        "src": route.src_name,
        "dst": route.dst_name,
        "words": words,
        "received": received,
        "mismatches": stream["mismatches"],
        "cycles": stream["run_cycles"],
        "throughput": round(throughput, 4),
        "config_cycles": load["config_cycles"],
        "bitstream_bytes": len(bitstream),
        "load_error": _load_report(load)["error"],
        "timed_out": stream["timed_out"],
        "sim_cycles": res.sim_cycles,
        "sim_cycles_per_second": round(res.cycles_per_second),
        "build_seconds": round(res.build_seconds, 2),
        "model_cached": res.cached,
        "wall_seconds": round(time.perf_counter() - t0, 2),
    }


def load_bitstream(params: FabricParams, blob: bytes, *, sim: str = "verilator",
                   progress=None) -> dict:
    """Stream `blob` (any bytes) into the RTL config loader and report its
    verdict, beside the verdict of the Python decoder (the loader's model)."""
    try:
        decode(blob, params)
        expected = LoadError.OK
    except BitstreamError as e:
        expected = e.code
    beats = bytes_to_beats(blob, params.config_beat_words)
    depth = SimTop.default_boot_depth(params)
    if len(beats) > depth:
        raise ValueError(f"{len(blob)} bytes ({len(beats)} beats) do not fit the simulated boot "
                         f"memory of {depth} beats for preset {params.name!r}; a bitstream for "
                         f"it is {len(encode(FabricConfig(params)))} bytes")
    res = get_backend(sim).run(params, [{"op": "load", "beats": beats}], progress=progress)
    report = _load_report(res.results[0])
    report.update({"bytes": len(blob), "beats": len(beats), "sim": sim, "preset": params.name,
                   "model_error": expected.name,
                   "model_agrees": report["error"] == expected.name})
    return report


# -- host-top jobs (DRAM, AGCUs, config DMA, CSRs) ------------------------------------------

def _sim_figures(res, t0) -> dict:
    """The simulation's own figures, common to every job's report."""
    return {
        "sim_cycles": res.sim_cycles,
        "sim_cycles_per_second": round(res.cycles_per_second),
        "build_seconds": round(res.build_seconds, 2), "model_cached": res.cached,
        "wall_seconds": round(time.perf_counter() - t0, 2),
    }


def copy_config(params: FabricParams, *, src: int, dst: int, nbytes: int, hops: int,
                read_agcu: int = 0, write_agcu: int | None = None) -> FabricConfig:
    """A streaming copy: AGCU `read_agcu` reads `nbytes` from `src` into the
    fabric, a route of `hops` switch hops carries the vectors to AGCU
    `write_agcu`'s edge output, which writes them to `dst`."""
    from ..hw.topology import Topology
    from .agcu_model import Pattern, agcu_config

    topo = Topology(params)
    write_agcu = read_agcu if write_agcu is None else write_agcu
    vb = 4 * params.lanes
    if nbytes <= 0 or nbytes % vb:
        raise ValueError(f"a copy moves whole vectors: nbytes must be a positive multiple of "
                         f"{vb}, got {nbytes}")
    n = nbytes // vb
    if n >= 1 << 16:
        raise ValueError(f"a copy of {n} vectors exceeds the AGCU's 16-bit counter")
    route = compile_route(params, hops, src=topo.agcu_ports(read_agcu)[0],
                          dst=topo.agcu_ports(write_agcu)[1])
    config = route.config
    rd = Pattern(base=src, counts=(n,), strides=(vb,), last_on=1)
    wr = Pattern(base=dst, counts=(n,), strides=(vb,))
    if read_agcu == write_agcu:
        config.set(f"agcu_{read_agcu}", agcu_config(read=rd, write=wr))
    else:
        config.set(f"agcu_{read_agcu}", agcu_config(read=rd))
        config.set(f"agcu_{write_agcu}", agcu_config(write=wr))
    return config


def run_copy(params: FabricParams, *, nbytes: int = 65536, hops: int = 4,
             sim: str = "verilator", seed: int = 1, progress=None) -> dict:
    """DRAM -> AGCU -> `hops` switch hops -> AGCU -> DRAM, checked byte for
    byte; bandwidth from the AXI byte counters and the run's cycle counter."""
    import numpy as np
    from .host_driver import Host

    t0 = time.perf_counter()
    host = Host(params)
    src = host.alloc(nbytes)
    dst = host.alloc(nbytes)
    data = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8)
    host.write_tensor(src, data)
    bitstream = encode(copy_config(params, src=src, dst=dst, nbytes=nbytes, hops=hops))
    load = host.load_config(bitstream)
    host.start()
    done = host.wait(timeout=64 * nbytes + 100_000)
    counters = host.read_counters()
    out = host.read_tensor(dst, (nbytes,), "uint8")
    res = host.run(sim, progress=progress)
    c = counters.value
    moved = c["offchip_read_bytes"] + c["offchip_write_bytes"]
    cycles = c["run_cycles"]
    ok = bool(load.value["accepted"] and done.value["ok"]
              and np.array_equal(out.value, data))
    return {
        "ok": ok, "job": "copy", "preset": params.name, "sim": sim, "hops": hops,
        "bytes": nbytes, "cycles": cycles,
        "offchip_read_bytes": c["offchip_read_bytes"],
        "offchip_write_bytes": c["offchip_write_bytes"],
        "bandwidth_fraction": round(moved / (cycles * params.dram_bytes_per_cycle), 4)
        if cycles else 0.0,
        "config_cycles": load.value["config_cycles"],
        "bitstream_bytes": len(bitstream),
        **_sim_figures(res, t0),
    }


class ConfigSequence:
    """Run configurations back to back on one :class:`~.host_driver.Host`:
    the first is loaded, then each runs (start, wait for done, read the
    counters) while the next one is loaded deferred, and is switched in by
    one CSR write. The bitstreams are placed at the bottom of DRAM, below
    `below`. After :meth:`Host.run`, :meth:`figures` sums the per-run
    counters."""

    def __init__(self, host, bitstreams: list, *, below: int):
        self.host = host
        self.bitstreams = list(bitstreams)
        self.addrs = [host.alloc(len(bs), align=64) for bs in self.bitstreams]
        if host.allocated_end > below:
            raise ValueError(f"{len(self.bitstreams)} bitstreams ({host.allocated_end} bytes) overlap "
                             f"the tensors at {below:#x}")

    def run_all(self, *, timeout: int):
        host = self.host
        self.load = host.load_config(self.bitstreams[0], addr=self.addrs[0])
        self.deferred, self.runs = [], []
        self.c_start = host.csr_read("cycle")
        for i in range(len(self.bitstreams)):
            if i:
                host.switch()
            host.start()
            if i + 1 < len(self.bitstreams):
                self.deferred.append(host.load_config(self.bitstreams[i + 1],
                                                      addr=self.addrs[i + 1], defer=True))
            self.runs.append((host.wait(timeout=timeout), host.read_counters()))
        self.c_end = host.csr_read("cycle")

    @property
    def all_done(self) -> bool:
        return all(w.value["ok"] for w, _ in self.runs)

    @property
    def ok(self) -> bool:
        return bool(self.load.value["accepted"] and all(d.value["accepted"] for d in self.deferred)
                    and self.all_done)

    def figures(self) -> dict:
        """cycles: one configuration, start to done; several, the host's first
        start to its observation of the last done (the switches and counter
        reads between runs included, and reported as host_gap_cycles).
        Off-chip bytes and per-unit counters are summed over the runs."""
        from ..hw.host_top import PERF_EVENTS, HostTop
        counts = [c.value for _, c in self.runs]
        run_cycles = [c["run_cycles"] for c in counts]
        if len(counts) == 1:
            cycles = run_cycles[0]
        else:
            cycles = (self.c_end.value - self.c_start.value) & 0xFFFF_FFFF
        total = lambda key: sum(c[key] for c in counts)
        units = HostTop.perf_units(self.host.params)
        unit_perf = {u: {ev: total(f"perf_{u}_{ev}") for ev in PERF_EVENTS} for u in units}
        return {
            "cycles": cycles,
            "offchip_read_bytes": total("offchip_read_bytes"),
            "offchip_write_bytes": total("offchip_write_bytes"),
            "config_cycles": self.load.value["config_cycles"],
            "configurations": len(counts), "run_cycles": run_cycles,
            "host_gap_cycles": cycles - sum(run_cycles),
            "pcu_active_cycles": {u: unit_perf[u]["active"] for u in units
                                  if u.startswith("pcu")},
            "unit_perf": unit_perf,
            "timed_out": not self.all_done,
        }


def check_dram(params: FabricParams, need: int, what: str) -> None:
    """DoesNotFit unless `need` bytes fit the simulated DRAM of `params`."""
    from ..compiler.errors import DoesNotFit
    from ..hw.host_top import HostTop
    dram = HostTop.default_dram_bytes(params)
    if need > dram:
        raise DoesNotFit(f"{what} needs {need} bytes of DRAM; the simulated DRAM holds {dram}",
                         asked={"dram_bytes": need}, available={"dram_bytes": dram})


def mac_figures(params: FabricParams, *, macs: int, compulsory_bytes: int, cycles: int) -> dict:
    """utilization = macs / (cycles x the fabric's multipliers); roofline_cycles
    = max(macs / peak, compulsory bytes / DRAM bytes per cycle)."""
    from ..hw.pcu import mul_stages
    peak = params.num_pcus * params.lanes * len(mul_stages(params))
    roofline = max(macs / peak, compulsory_bytes / params.dram_bytes_per_cycle)
    return {
        "macs": macs, "peak_macs_per_cycle": peak,
        "utilization": round(macs / (cycles * peak), 4) if cycles else 0.0,
        "roofline_cycles": round(roofline, 1),
        "roofline_fraction": round(roofline / cycles, 4) if cycles else 0.0,
        "compulsory_bytes": compulsory_bytes,
    }


def run_gemm(params: FabricParams, *, m: int, n: int, k: int, dtype: str = "int8",
             b_dtype: str | None = None, sim: str = "verilator", seed: int = 1, a=None, b=None,
             progress=None, compiled=None, return_result: bool = False, wave=None,
             threads: int = 1) -> dict:
    """Compile C = A @ B for the fabric, run it on the host top and compare
    with NumPy. Every figure is measured by RTL counters: cycles from start to
    done, off-chip bytes on the AGCUs' AXI ports, per-unit activity. `wave`
    (a .fst or .vcd path) also writes the run's waveform there; `threads` > 1
    simulates on a multi-threaded Verilator model."""
    import numpy as np
    from ..compiler.gemm import DTYPES, compile_gemm
    from .host_driver import Host

    t0 = time.perf_counter()
    cg = compiled or compile_gemm(params, m, n, k, dtype, b_dtype=b_dtype, seed=seed)
    plan = cg.plan
    rng = np.random.default_rng(seed)
    np_dtype, b_np_dtype = DTYPES[plan.dtype][0], DTYPES[plan.bdt][0]
    if a is None:
        info = np.iinfo(np_dtype)
        a = rng.integers(info.min, info.max + 1, (m, k), dtype=np_dtype)
    if b is None:
        info = np.iinfo(b_np_dtype)
        b = rng.integers(info.min, info.max + 1, (k, n), dtype=b_np_dtype)
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != (m, k) or b.shape != (k, n):
        raise ValueError(f"operand shapes {a.shape} and {b.shape} do not match M={m}, N={n}, "
                         f"K={k}")
    check_dram(params, plan.dram_end,
               f"GEMM {m}x{n}x{k} (operands, {plan.T} partial product(s) and C)")
    host = Host(params)
    seq = ConfigSequence(host, cg.bitstreams, below=plan.a_addr)
    host.write_tensor(plan.a_addr, plan.pad_a(a))
    host.write_tensor(plan.b_addr, plan.pack_b(b))
    # a generous bound per run: every MAC on one lane, plus the traffic
    seq.run_all(timeout=4 * plan.Mp * plan.Np * plan.Kt // params.lanes + 200_000)
    c_out = host.read_tensor(plan.c_addr, (plan.Mp, plan.Np), "int32")
    res = host.run(sim, progress=progress, wave=wave, threads=threads)
    got = plan.crop_c(c_out.value)
    want = a.astype(np.int32) @ b.astype(np.int32)
    figures = seq.figures()
    ok = bool(seq.ok and np.array_equal(got, want))
    mismatches = int(np.count_nonzero(got != want)) if got.shape == want.shape else -1
    report = {
        "ok": ok, "job": "gemm", "preset": params.name, "sim": sim,
        "m": m, "n": n, "k": k, "dtype": dtype, "b_dtype": plan.bdt, "mismatches": mismatches,
        **mac_figures(params, macs=m * n * k, cycles=figures["cycles"],
                      compulsory_bytes=m * k * plan.esize + k * n * plan.b_esize + m * n * 4),
        "bitstream_bytes": len(cg.bitstream),
        "grid": f"{plan.R}x{plan.G}", "padded": [plan.Mp, plan.Np, plan.Kp],
        "k_tiles": plan.T, **figures,
        "compile_seconds": round(cg.compile_seconds, 3),
        **_sim_figures(res, t0),
    }
    if return_result:
        report["result"] = got
    return report
