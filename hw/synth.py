"""Synthesis flow: Amaranth -> Yosys -> nextpnr, with figures read from
nextpnr's ``--report`` JSON.

Usage::

    from tessera.hw.params import preset
    from tessera.hw.synth import synthesize
    report = synthesize(preset("small"), "ecp5-85k")
    report["luts"], report["fmax_mhz"]

The fabric has hundreds of I/O bits, more than an iCE40 package has pins, and
a fabric whose edges are left dangling would be optimized away. So the design
that is synthesized is :class:`SynthTop`: a small wrapper whose pins are a
clock, a reset, the config-word stream into a
:class:`~tessera.hw.loader.ConfigLoader` (which drives the fabric's config
bus) and a few observation pins. The fabric's edge inputs are driven from an
on-chip shift-register LFSR and every fabric output (edge payloads, valids
and readies, loader status) is XOR-reduced into the observation pins, so that
Yosys keeps all the logic. The same wrapper is used on every device, so the
numbers compare; on ECP5 nextpnr runs out of context (no I/O buffers, no pin
placement). The wrapper's own cost (the LFSR flops, the XOR tree) is given in
the report under ``"harness"``.

Tools are found as Amaranth finds them: the ``YOSYS``, ``NEXTPNR_ECP5`` and
``NEXTPNR_ICE40`` environment variables if set, else the ``yowasp-*``
executables next to ``sys.executable``, else ``yosys`` / ``nextpnr-*`` (and
then ``yowasp-*``) on ``PATH``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth import *
from amaranth.back import rtlil
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .links import Hop, scalar_layout
from .params import PRESETS, FabricParams, preset as _preset
from .pcu import LANE_COPIES
from .switch import ECP5_MUXES

__all__ = ["DEVICES", "TOPS", "SynthTop", "UnitTop", "HopTop", "SynthError", "DesignDoesNotFit",
           "ToolNotFound", "find_tool", "build_top", "synthesize", "add_synth_arguments",
           "main_synth", "format_report"]


# -- devices and tools ---------------------------------------------------------------

@dataclass(frozen=True)
class Device:
    name: str
    family: str                   # "ecp5" or "ice40"
    nextpnr_args: tuple
    out_of_context: bool
    ff_capacity: int              # flops (ECP5) or logic cells (iCE40)
    extra_args: tuple = ()
    #: nextpnr's ``--speed`` grades for the family (ECP5: 6, the slowest and
    #: nextpnr's default, to 8); the first is the default. Empty: no choice.
    speed_grades: tuple = ()

    @property
    def nextpnr(self) -> str:
        return f"nextpnr-{self.family}"


# router1 (nextpnr-ecp5's default) needed over an hour for the congested
# crossbar routing of the "small" fabric in the WebAssembly build; router2
# makes steadier progress on it.
_ECP5_EXTRA = ("--router", "router2")

DEVICES: dict[str, Device] = {
    "ecp5-85k": Device("ecp5-85k", "ecp5", ("--85k", "--package", "CABGA381"), True, 83640,
                       _ECP5_EXTRA, (6, 7, 8)),
    "ecp5-25k": Device("ecp5-25k", "ecp5", ("--25k", "--package", "CABGA381"), True, 24288,
                       _ECP5_EXTRA, (6, 7, 8)),
    "ice40-up5k": Device("ice40-up5k", "ice40", ("--up5k", "--package", "sg48"), False,
                         5280),
}

#: What `tessera synth --top` can build: the wrapped fabric, one PCU, one PMU,
#: one switch (each with the preset's parameters), or one scalar link hop.
TOPS = ("fabric", "pcu", "pmu", "switch", "hop")
#: nextpnr placers `synthesize` accepts; the first is the default (static: with
#: it `small` routes on an LFE5U-85F, with heap router2 does not converge).
PLACERS = ("static", "heap", "sa")

# nextpnr bel types -> report fields (ECP5 LUT4 cells are packed into TRELLIS_COMB).
_ECP5_MAP = {"luts": ("TRELLIS_COMB", "LUT4"), "ffs": ("TRELLIS_FF",),
             "dsps": ("MULT18X18D",), "brams": ("DP16KD",)}
_ICE40_MAP = {"luts": ("ICESTORM_LC",), "dsps": ("ICESTORM_DSP",), "brams": ("ICESTORM_RAM",)}


class SynthError(RuntimeError):
    """A tool of the flow failed; the message names the log file."""


class ToolNotFound(SynthError):
    pass


class DesignDoesNotFit(SynthError):
    """nextpnr could not place the design: it needs more of some resource than
    the device has. ``overflow`` maps bel type -> (used, available)."""

    def __init__(self, message, overflow=None):
        super().__init__(message)
        self.overflow = dict(overflow or {})


def _env_var(tool: str) -> str:
    # Amaranth's convention: "nextpnr-ecp5" -> NEXTPNR_ECP5.
    return tool.upper().replace("-", "_")


def find_tool(tool: str) -> list[str]:
    """Command (argv prefix) that runs `tool` ("yosys", "nextpnr-ecp5", "nextpnr-ice40")."""
    var = _env_var(tool)
    value = os.environ.get(var)
    if value:
        path = shutil.which(value)
        if path is None:
            raise ToolNotFound(f"{var}={value!r} does not name an executable "
                               f"(no such file, or not executable, or not on PATH)")
        return [path]
    bindir = Path(sys.executable).parent
    for cand in (bindir / f"yowasp-{tool}",):
        if cand.is_file() and os.access(cand, os.X_OK):
            return [str(cand)]
    for name in (tool, f"yowasp-{tool}"):
        path = shutil.which(name)
        if path is not None:
            return [path]
    raise ToolNotFound(f"cannot find {tool}: set {var}, or install yowasp-{tool} "
                       f"(pip install yowasp-{tool}) or put {tool} on PATH")


def _device(name) -> Device:
    try:
        return DEVICES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown device {name!r}; choose one of "
                         f"{', '.join(DEVICES)}") from None


# -- synthesis tops --------------------------------------------------------------------

class _Lfsr(wiring.Component):
    """A ``width``-bit Fibonacci shift register with XOR feedback, reset to a
    nonzero pattern. Its bits are independent flops, so no two fabric inputs
    it drives are provably equal and Yosys cannot merge their logic."""

    def __init__(self, width: int, seed: int = 0x5EED_1234_ABCD_0F0F):
        self.width = width
        self.seed = (seed % (1 << width)) or 1
        super().__init__({"state": Out(width, init=self.seed)})

    def elaborate(self, platform):
        m = Module()
        w = self.width
        taps = sorted({w - 1, (w * 5) // 7, (w * 3) // 5, w // 3} - {-1})
        fb = self.state[taps[0]]
        for t in taps[1:]:
            fb = fb ^ self.state[t]
        if w == 1:
            m.d.sync += self.state.eq(~self.state)
        else:
            m.d.sync += self.state.eq(Cat(fb, self.state[:-1]))
        return m


class _Observer:
    """Collects output bits and XOR-reduces them, pipelined, into ``n`` pins.

    Each bit is registered first (``obs_in*``: an output port that is
    combinational inside the design, e.g. a select from a configuration flop,
    ends its path there, as it would at the registered input of whatever the
    design drives, instead of running on through the harness's XOR tree).
    Then: XOR of chunks of up to 16 of those registers, registered (two LUT4
    levels); last, XOR of the chunk registers per pin, registered."""

    CHUNK = 16

    def __init__(self):
        self.bits = []

    def add(self, value):
        value = Value.cast(value)
        self.bits.extend(value[i] for i in range(len(value)))

    def reduce(self, m, pins: Signal):
        n = len(pins)
        bits = []
        for i, bit in enumerate(self.bits):
            r = Signal(name=f"obs_in{i}")
            m.d.sync += r.eq(bit)
            bits.append(r)
        chunks = [bits[i:i + self.CHUNK] for i in range(0, len(bits), self.CHUNK)]
        regs = []
        for k, chunk in enumerate(chunks):
            r = Signal(name=f"obs_chunk{k}")
            m.d.sync += r.eq(Cat(*chunk).xor())
            regs.append(r)
        for p in range(n):
            group = regs[p::n]
            m.d.sync += pins[p].eq(Cat(*group).xor() if group else 0)
        return len(bits) + len(regs) + n


class _PortHarness:
    """Ties off the ports of components inside a synthesis top: every input
    port signal is driven by an LFSR of its own (a different seed each, so no
    two inputs are the same signal and Yosys cannot merge the logic behind
    them), every output port signal is observed.

    One LFSR per signal, not one for all: the placer puts each next to the
    logic it drives. A single shared LFSR (as before) made every fabric edge
    input one long wire from one cluster of flops, and that cluster was a
    routing hot spot that kept router2 from converging on the fabric."""

    def __init__(self, m, components, *, skip=()):
        # components: list of (name, component); skip: {(name, first path element)}
        self.ins, self.outs = [], []
        for cname, comp in components:
            for path, member, value in comp.signature.flatten(comp):
                if (cname, path[0]) in skip:
                    continue
                (self.ins if member.flow == In else self.outs).append(Value.cast(value))
        self.width = 0
        for k, v in enumerate(self.ins):
            seed = (0x9E37_79B9_7F4A_7C15 * (k + 1)) & ((1 << 64) - 1)
            lfsr = _Lfsr(len(v) + 7, seed=seed)
            m.submodules[f"lfsr{k}"] = lfsr
            m.d.comb += v.eq(lfsr.state[:len(v)])
            self.width += lfsr.width
        self.observer = _Observer()
        for v in self.outs:
            self.observer.add(v)

    def info(self, **extra):
        return {"lfsr_bits": self.width, "driven_bits": sum(len(v) for v in self.ins),
                "observed_bits": len(self.observer.bits), **extra}


class _WordsToBeats(wiring.Component):
    """Packs a stream of 32-bit config words (``last`` on the final word) into
    the loader's beats of ``beat_words`` words; a ``last`` word ends its beat."""

    def __init__(self, beat_words: int):
        from .loader import config_beat_layout
        self.beat_words = beat_words
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"data": 32, "last": 1}))),
            "o": Out(stream.Signature(config_beat_layout(beat_words))),
        })

    def elaborate(self, platform):
        m = Module()
        B = self.beat_words
        idx = Signal(range(B))
        take = self.i.valid & self.i.ready
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take):
            with m.Switch(idx):
                for k in range(B):
                    with m.Case(k):
                        m.d.sync += self.o.payload.data[k].eq(self.i.payload.data)
            with m.If(self.i.payload.last | (idx == B - 1)):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.last.eq(self.i.payload.last),
                             idx.eq(0)]
            with m.Else():
                m.d.sync += idx.eq(idx + 1)
        return m


class SynthTop(wiring.Component):
    """Synthesis wrapper of the fabric with a small pin count.

    Pins: ``cfg_data``/``cfg_valid``/``cfg_last`` -> ``cfg_ready`` (a stream of
    32-bit config words, packed into beats for the ConfigLoader), ``obs``
    (XOR-reduced fabric and loader outputs), plus the ``clk``/``rst`` of the
    sync domain. Every other fabric port is tied to the on-chip harness.
    """

    def __init__(self, params: FabricParams, *, obs_pins: int = 2):
        if not isinstance(params, FabricParams):
            raise TypeError(f"params must be a FabricParams, not {params!r}")
        self.params = params
        self.harness_info = {}
        super().__init__({
            "cfg_data": In(32),
            "cfg_valid": In(1),
            "cfg_last": In(1),
            "cfg_ready": Out(1),
            "obs": Out(obs_pins),
        })

    def elaborate(self, platform):
        from .fabric import Fabric
        from .loader import ConfigLoader

        m = Module()
        p = self.params
        m.submodules.words = words = _WordsToBeats(getattr(p, "config_beat_words", 1))
        m.submodules.loader = loader = ConfigLoader(p)
        m.submodules.fabric = fabric = Fabric(p)
        m.d.comb += [
            words.i.valid.eq(self.cfg_valid),
            words.i.payload.data.eq(self.cfg_data),
            words.i.payload.last.eq(self.cfg_last),
            self.cfg_ready.eq(words.i.ready),
        ]
        wiring.connect(m, words.o, loader.i)
        wiring.connect(m, loader.cfg, fabric.cfg)
        h = _PortHarness(m, [("loader", loader), ("fabric", fabric)],
                         skip={("loader", "i"), ("loader", "cfg"), ("fabric", "cfg")})
        obs_regs = h.observer.reduce(m, self.obs)
        self.harness_info = h.info(observer_flops=obs_regs)
        return m


class UnitTop(wiring.Component):
    """One unit (``kind`` "pcu" or "pmu") or one switch (``kind`` "switch")
    of the preset, for per-block figures.

    Every port of the unit, its configuration included, is driven from the
    on-chip LFSR and every output is XOR-reduced into registered pins. In the
    fabric the configuration comes from the loader's registers, so an LFSR bit
    (a flop) per configuration bit is the same kind of source: no logic behind
    the configuration can be folded away as a constant."""

    def __init__(self, params: FabricParams, kind: str, *, obs_pins: int = 2):
        if not isinstance(params, FabricParams):
            raise TypeError(f"params must be a FabricParams, not {params!r}")
        if kind not in ("pcu", "pmu", "switch"):
            raise ValueError(f"unknown unit kind {kind!r}; choose pcu, pmu or switch")
        self.params = params
        self.kind = kind
        self.harness_info = {}
        super().__init__({"obs": Out(obs_pins)})

    @staticmethod
    def _unit_class(kind):
        if kind == "pcu":
            from .pcu import PCU
            return PCU
        if kind == "switch":
            from .switch import Switch
            return Switch
        from .pmu import PMU
        return PMU

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = unit = self._unit_class(self.kind)(self.params)
        h = _PortHarness(m, [("unit", unit)])
        obs_regs = h.observer.reduce(m, self.obs)
        self.harness_info = h.info(observer_flops=obs_regs)
        return m


class HopTop(wiring.Component):
    """A single :class:`~tessera.hw.links.Hop` of a scalar (32-bit + last)
    payload, with registered I/O: its input is driven from an LFSR and its
    output XOR-reduced into registered pins (the pin count fits any device)."""

    def __init__(self, params: FabricParams | None = None, *, obs_pins: int = 2):
        self.params = params if params is not None else FabricParams()
        self.harness_info = {}
        super().__init__({"obs": Out(obs_pins)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.hop = hop = Hop(scalar_layout(self.params))
        h = _PortHarness(m, [("hop", hop)])
        obs_regs = h.observer.reduce(m, self.obs)
        self.harness_info = h.info(observer_flops=obs_regs)
        return m


def build_top(params: FabricParams, top: str = "fabric"):
    if top == "fabric":
        return SynthTop(params)
    if top == "hop":
        return HopTop(params)
    if top in ("pcu", "pmu", "switch"):
        return UnitTop(params, top)
    raise ValueError(f"unknown synthesis top {top!r}; choose one of {', '.join(TOPS)}")


# -- running the tools -----------------------------------------------------------------

def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


class ToolTimeout(SynthError):
    """A tool ran past its time limit (it was stopped)."""


def _run(argv, *, cwd: Path, log: Path, what: str, timeout=None):
    """Run a tool with stdout+stderr into `log`; return the CompletedProcess."""
    with open(log, "w") as f:
        f.write("$ " + " ".join(argv) + "\n")
        f.flush()
        try:
            return subprocess.run(argv, cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=timeout)
        except FileNotFoundError as e:
            raise ToolNotFound(f"{what}: cannot execute {argv[0]}: {e}") from None
        except subprocess.TimeoutExpired:
            raise ToolTimeout(f"{what} timed out after {timeout} s; log: {log}") from None


_UTIL_LINE = re.compile(r"^\s*(?:Info:\s*)?\s*([A-Za-z0-9_]+):\s*(\d+)\s*/\s*(\d+)\s+\d+%")


_ROUTER_ITER = re.compile(r"iter=(\d+)\s+wires=(\d+)\s+overused=(\d+)")
_PLACE_FMAX = re.compile(r"Max frequency for clock '[^']*': ([0-9.]+) MHz")


def unrouted_figures(log_text: str) -> dict | None:
    """What a nextpnr log says about a run stopped while routing: the
    device utilisation after packing (as ``report.json`` gives it), the
    placer's Fmax estimate and router2's last iteration. None if the log
    does not reach routing (placement did not finish)."""
    if "Running router" not in log_text and "Routing.." not in log_text:
        return None
    util = {}
    for line in log_text.splitlines():
        mt = _UTIL_LINE.match(line)
        if mt:              # the last table wins: after packing, what is placed
            util[mt.group(1)] = {"used": int(mt.group(2)), "available": int(mt.group(3))}
    est = _PLACE_FMAX.findall(log_text)
    iters = _ROUTER_ITER.findall(log_text)
    last = None
    if iters:
        i, wires, over = iters[-1]
        last = {"iteration": int(i), "wires": int(wires), "overused_wires": int(over),
                "overused_by_iteration": [int(o) for _, _, o in iters]}
    return {"utilization": util, "placement_fmax_estimate_mhz": float(est[-1]) if est else None,
            "router": last}


_HIST_UNIT = re.compile(r"\* represents (\d+) endpoint")
_HIST_ROW = re.compile(r"\[\s*(-?\d+),\s*(-?\d+)\)\s*\|(\**)(\+?)")


def slack_summary(log_text: str) -> dict | None:
    """The bulk of the timing, from the last slack histogram of a nextpnr
    log (endpoints per slack bucket, in ps, against the target clock):
    estimates of the endpoints timed, those with negative slack, and their
    total negative slack (TNS). nextpnr draws ``*`` for N endpoints and
    ``+`` for 1 to N-1, so a ``+`` counts N/2, and a bucket straddling 0 is
    split in proportion: the counts are good to about N per bucket (N is in
    the result). None if the log has no histogram (not routed)."""
    lines = log_text.splitlines()
    heads = [i for i, line in enumerate(lines) if "Slack histogram" in line]
    if not heads:
        return None
    unit, rows = None, []
    for line in lines[heads[-1] + 1:]:
        mu = _HIST_UNIT.search(line)
        if mu:
            unit = int(mu.group(1))
            continue
        mr = _HIST_ROW.search(line)
        if mr is None:
            if rows:
                break
            continue
        rows.append((int(mr.group(1)), int(mr.group(2)),
                     len(mr.group(3)), bool(mr.group(4))))
    if unit is None or not rows:
        return None
    total = failing = tns_ps = 0.0
    for lo, hi, stars, plus in rows:
        n = stars * unit + (unit / 2 if plus else 0)
        total += n
        if lo < 0:
            share = 1.0 if hi <= 0 else -lo / (hi - lo)
            failing += n * share
            tns_ps += n * share * (lo + min(hi, 0)) / 2
    return {"endpoints": round(total), "failing_endpoints": round(failing),
            "tns_ns": round(tns_ps / 1000, 1), "worst_slack_ns": round(rows[0][0] / 1000, 3),
            "endpoints_per_mark": unit}


#: ECP5 cell pins joined inside a slice (no general routing between them):
#: a LUT4 into its PFUMX, a PFUMX into its L6MUX21 (and that into the PFU's
#: last L6MUX21), a carry into the next.
_ECP5_INTERNAL = {("LUT4", "Z", "PFUMX", "ALUT"), ("LUT4", "Z", "PFUMX", "BLUT"),
                  ("PFUMX", "Z", "L6MUX21", "D0"), ("PFUMX", "Z", "L6MUX21", "D1"),
                  ("L6MUX21", "Z", "L6MUX21", "D0"), ("L6MUX21", "Z", "L6MUX21", "D1"),
                  ("CCU2C", "COUT", "CCU2C", "CIN")}
#: Cells whose outputs start a timing path (their inputs end one), and the
#: routed nets their output counts as already (MULT18X18D with input
#: registers: about 3.9 ns from its registers to P, two nets' worth).
_ECP5_SOURCES = {"TRELLIS_FF": 0, "MULT18X18D": 2, "DP16KD": 1}
#: Inputs of combinational-read cells that are clocked (endpoints): a
#: distributed RAM's write side.
_ECP5_CLOCKED_IN = {"TRELLIS_DPR16X4": {"DI", "WAD", "WRE", "WCK"}}


def logic_depth(netlist: dict, top: str = "top", worst: int = 10) -> dict:
    """Routed nets per timing path of a Yosys JSON netlist mapped to ECP5
    cells (``synth.json``), counted before place and route: from a flop,
    DSP or block RAM output to a flop, DSP or RAM input, the most general
    routing nets any path to each endpoint crosses (a net from a LUT into
    its own slice's PFUMX, a PFUMX into its L6MUX21 or a carry into the next
    carry cell is not routed). On an ECP5 each routed net costs about
    1-2 ns after placement and each LUT 0.24 ns, so at 100 MHz (10 ns, 0.5 ns
    of it clock-to-out) an endpoint deeper than about 5 nets needs short
    nets to meet timing; the histogram shows how much of a design is that
    deep, where nextpnr's report names one worst path.

    Returns ``{"histogram": {nets: endpoints}, "endpoints": n, "worst":
    [{"nets": n, "endpoint": "cell.port", "path": [cell names, source
    first]}, ...]}``."""
    cells = netlist["modules"][top]["cells"]
    driver = {}                                       # bit -> (cell, output port)
    for name, c in cells.items():
        for port, bits in c["connections"].items():
            if c["port_directions"].get(port) == "output":
                driver.update((b, (name, port)) for b in bits if not isinstance(b, str))
    inputs_of = {name: [(port, b) for port, bits in c["connections"].items()
                        if c["port_directions"].get(port) == "input"
                        for b in bits if not isinstance(b, str)]
                 for name, c in cells.items()}

    def routed(b, cell, port):
        d = driver.get(b)
        if d is None:
            return 1
        return int((cells[d[0]]["type"], d[1], cells[cell]["type"], port) not in _ECP5_INTERNAL)

    def clocked(cell, port):
        t = cells[cell]["type"]
        return t in _ECP5_SOURCES or port in _ECP5_CLOCKED_IN.get(t, ())

    level, via = {}, {}                               # per driven bit

    def depth(b):
        """Routed nets up to bit b's driver output (not the net b itself)."""
        stack = [b]
        while stack:
            x = stack[-1]
            if x in level:
                stack.pop()
                continue
            d = driver.get(x)
            if d is None:                             # a top-level input
                level[x], via[x] = 0, None
                stack.pop()
                continue
            cell, _ = d
            t = cells[cell]["type"]
            if t in _ECP5_SOURCES:
                level[x], via[x] = _ECP5_SOURCES[t], None
                stack.pop()
                continue
            pending = [i for p, i in inputs_of[cell] if not clocked(cell, p) and i not in level]
            if pending:
                stack.extend(pending)
                continue
            best, arg = 0, None
            for p, i in inputs_of[cell]:
                if clocked(cell, p):
                    continue
                v = level[i] + routed(i, cell, p)
                if v > best or arg is None:
                    best, arg = v, i
            level[x], via[x] = best, arg
            stack.pop()
        return level[b]

    ends = []
    for name, c in cells.items():
        for port, b in inputs_of[name]:
            if clocked(name, port) and port != "WCK" and not port.startswith("CLK") \
                    and b in driver:
                ends.append((depth(b) + routed(b, name, port), f"{name}.{port}", b))
    hist = {}
    for n, _, _ in ends:
        hist[n] = hist.get(n, 0) + 1
    out = []
    for n, end, b in sorted(ends, key=lambda e: -e[0])[:worst]:
        path, x = [], b
        while x is not None:
            path.append(driver[x][0] if x in driver else "input")
            x = via.get(x)
        out.append({"nets": n, "endpoint": end, "path": path[::-1]})
    return {"histogram": dict(sorted(hist.items())), "endpoints": len(ends), "worst": out}


def _overflow_from_log(log: Path) -> dict:
    """Bel types used beyond their availability, from the utilisation table
    nextpnr prints before placing (only used to explain a placement failure)."""
    over = {}
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return over
    for line in text.splitlines():
        mt = _UTIL_LINE.match(line)
        if mt:
            used, avail = int(mt.group(2)), int(mt.group(3))
            if used > avail:
                over[mt.group(1)] = (used, avail)
    return over


def _yosys_cell_counts(stat_path: Path) -> dict:
    data = json.loads(stat_path.read_text())
    design = data.get("design")
    if design is None:                      # older yosys: only per-module figures
        mods = data.get("modules", {})
        design = next(iter(mods.values())) if len(mods) == 1 else {}
    return dict(design.get("num_cells_by_type", {}))


def _flops(cells: dict) -> int:
    return sum(n for c, n in cells.items() if c == "TRELLIS_FF" or c.startswith("SB_DFF"))


def _raise_yosys_failure(rc, log: Path, out: Path, dev):
    where = log if log.exists() else out
    msg = f"yosys failed (exit {rc}); log: {where}\n{_tail(where)}"
    out_text = _tail(out, 8) if out.exists() else ""
    if "wasm" in out_text.lower() or "Trap" in out_text:
        msg += ("\n(the WebAssembly Yosys crashed, most likely out of its 4 GiB memory; "
                "the design is probably far too large for "
                f"{dev.name}, or set YOSYS to a native yosys)\n{out_text}")
    elif where != out and out_text.strip():
        msg += "\n" + out_text
    raise SynthError(msg)


def _pick(util: dict, names) -> int:
    for n in names:
        if n in util:
            return int(util[n]["used"])
    return 0


@contextlib.contextmanager
def _nextpnr_slot(progress):
    """One nextpnr at a time per machine (it is the memory- and CPU-hungry
    step; parallel sweeps and test workers queue here): an exclusive lock on
    ``$TESSERA_CACHE`` (or ``~/.cache/tessera``) ``/nextpnr.lock``."""
    try:
        import fcntl
    except ImportError:                     # not POSIX: no queueing
        yield
        return
    root = Path(os.environ.get("TESSERA_CACHE") or Path.home() / ".cache" / "tessera")
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "nextpnr.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            progress("waiting for another nextpnr run to finish (one at a time) ...")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def default_workdir(params: FabricParams, device: str, top: str = "fabric") -> Path:
    tag = f"{params.name}-{device}" if top == "fabric" else f"{top}-{params.name}-{device}"
    return Path.cwd() / ".tessera-cache" / "synth" / tag


def keep_flops_commands(top: str) -> str:
    """The Yosys commands (run before ``synth_*``) that set ``keep`` on the
    flops that must stay apart from flops Yosys would merge them with."""
    # Flops named `*_rep` are deliberate copies (e.g. the PCU's per-lane copies
    # of its decoded control): `keep` stops opt_merge from merging them back
    # into one flop that drives every lane.
    #
    # The harness's LFSRs are shift registers: bit i + 1 has the same input
    # as any flop of the design that registers bit i. opt_merge would merge
    # the two (it merges a flop into a kept one, never two kept flops), and
    # in a unit top that made the unit's registered configuration (`cfg_r`,
    # unit.settled_config) a link of the harness's shift chain, placed along
    # it. Both are kept; in the fabric the configuration comes from the
    # loader, and there `cfg_r` is left to Yosys (unused bits are removed).
    #
    # A unit's settle flag (`*_quiet`, unit.settled_config) is kept too: its
    # copies are `_rep` flops loaded from the same flop, and opt_merge merged
    # the unkept shared flag into one of them (the PCU's `s0_quiet_rep`), so
    # that one copy drove stage 0 and the unit's control.
    keep = ["w:*_rep", "w:*_quiet", "top.lfsr*/w:state"] + (
        ["w:cfg_r"] if top in ("pcu", "pmu", "switch") else [])
    return "".join(f"setattr -set keep 1 {name} %ci1:+$dff[Q] t:$dff %i\n" for name in keep)


def synthesize(params, device, *, top="fabric", workdir=None, seed=1, progress=print,
               timeout=None, nextpnr_args=(), route=True, pnr=True,
               route_timeout=None, speed=None, placer="static", seeds=None, jobs=1) -> dict:
    """Synthesize, place and route `top` ("fabric": :class:`SynthTop`, "pcu" /
    "pmu" / "switch": :class:`UnitTop`, "hop": :class:`HopTop`) for `device` and return
    the figures from nextpnr's report.

    With ``route=False`` nextpnr stops after placement: ``fmax_mhz`` is None
    (nextpnr reports no Fmax without routing) and the placer's estimate, which
    nextpnr only logs, is given apart as ``placement_fmax_estimate_mhz``.
    Routing a congested fabric in the WebAssembly nextpnr can take an hour.

    `route_timeout` (seconds) bounds the whole nextpnr run once placement is
    done: if routing has not converged by then, nextpnr is stopped and the
    result says so (``routed`` False, ``fmax_mhz`` None, the placement
    estimate and router2's overuse by iteration under ``router``), with the
    utilisation nextpnr logged after packing.

    With ``pnr=False`` only Yosys runs (no flop check against the device):
    the figures are Yosys' cell counts (``"source": "yosys"``; on ECP5 ``luts``
    counts LUT4s plus two per CCU2C carry cell, as nextpnr's TRELLIS_COMB
    does), and there is no Fmax. That is how a design larger than any device
    is measured.

    `speed` is the device's speed grade (ECP5: 6, 7 or 8; default 6, the
    slowest, as on the ULX3S board's LFE5U-85F-6). Timing is that grade's;
    the report says which (``speed_grade``).

    `placer` is nextpnr's placer (``static``, its electrostatic placer, by
    default, as for ``tessera synth``; ``heap`` or ``sa``). The report names
    it (``placer``).

    `seeds` (several nextpnr seeds, e.g. ``[1, 2, 3]``) places and routes the
    one Yosys netlist once per seed, each in ``workdir/seed<N>``, `jobs` of
    them at a time (each nextpnr is single-threaded). The result is the best
    seed's report plus ``seed_sweep``: every seed's Fmax, failing endpoints
    and TNS, and their mean, min and max. One netlist's Fmax varies by
    several MHz between seeds (docs/area.md), so a change is judged on the
    mean. Without `seeds`, `seed` is the one seed.

    Raises ValueError (unknown device, top, preset, speed grade or placer; an
    empty or repeated seed list), ToolNotFound, DesignDoesNotFit
    (more flops than the device after Yosys' flop mapping, or nextpnr placement
    failed for lack of resources; ``.overflow`` has the figures) or SynthError
    (any other tool failure; the message names the log and quotes its tail).
    """
    if isinstance(params, str):
        params = _preset(params)
    if not isinstance(params, FabricParams):
        raise TypeError(f"params must be a FabricParams or a preset name, not {params!r}")
    dev = _device(device)
    if top not in TOPS:
        raise ValueError(f"unknown synthesis top {top!r}; choose one of {', '.join(TOPS)}")
    if not dev.speed_grades:
        if speed is not None:
            raise ValueError(f"device {device} has no speed grade to choose (got {speed!r})")
    elif speed is None:
        speed = dev.speed_grades[0]
    elif speed not in dev.speed_grades:
        raise ValueError(f"device {device} has speed grades "
                         f"{', '.join(map(str, dev.speed_grades))}; not {speed!r}")
    if seeds is not None:
        seeds = [int(x) for x in seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct nextpnr seeds, "
                             f"not {seeds!r}")
    if int(jobs) < 1:
        raise ValueError(f"jobs must be at least 1, not {jobs!r}")
    if placer not in PLACERS:
        raise ValueError(f"unknown nextpnr placer {placer!r}; choose one of {', '.join(PLACERS)}")
    if progress is None:
        progress = lambda msg: None
    yosys = find_tool("yosys")
    nextpnr = find_tool(dev.nextpnr)

    workdir = Path(workdir) if workdir is not None else default_workdir(params, device, top)
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in ("top.il", "stat_ffs.json", "synth.json", "stat.json",
                  "report.json"):
        (workdir / stale).unlink(missing_ok=True)

    t0 = time.monotonic()
    stages = {}

    def stage(name):
        progress(f"[synth {params.name}/{device}] {name} ... (t={time.monotonic() - t0:.1f} s)")
        return time.monotonic()

    # 1. Elaborate.
    t = stage("elaborate (amaranth -> rtlil)")
    design = build_top(params, top)
    # On ECP5 the wide selects are built from the slice's LUT4/PFUMX/L6MUX21
    # cells (tessera.hw.switch.mux_tree); elaboration happens in convert().
    # Per-lane copies of the PCU's control (tessera.hw.pcu.LANE_COPIES) are
    # for place and route only.
    token = ECP5_MUXES.set(dev.family == "ecp5")
    copies = LANE_COPIES.set(True)
    try:
        text = rtlil.convert(design, name="top", emit_src=False)
    finally:
        ECP5_MUXES.reset(token)
        LANE_COPIES.reset(copies)
    (workdir / "top.il").write_text(text)
    stages["elaborate"] = round(time.monotonic() - t, 2)

    # 2. Yosys. The flop count is checked against the device after flop mapping
    # (select -assert-max), so a fabric far too large for the device fails in
    # minutes rather than in LUT mapping, which can also exhaust the 4 GiB of a
    # WebAssembly Yosys.
    synth = "synth_ecp5 -abc9" if dev.family == "ecp5" else "synth_ice40 -dsp"
    ff_cells = "t:TRELLIS_FF" if dev.family == "ecp5" else "t:SB_DFF*"
    (workdir / "synth.ys").write_text(
        "read_rtlil top.il\n"
        + keep_flops_commands(top) +
        f"{synth} -top top -run :map_luts\n"
        "tee -q -o stat_ffs.json stat -json\n"
        + (f"select -assert-max {dev.ff_capacity} {ff_cells}\n" if pnr else "") +
        f"{synth} -top top -run map_luts: -json synth.json\n"
        "tee -q -o stat.json stat -json\n")
    t = stage(f"yosys ({synth})")
    ylog, yout = workdir / "yosys.log", workdir / "yosys.out"
    r = _run(yosys + ["-q", "-l", ylog.name, "-s", "synth.ys"], cwd=workdir, log=yout,
             what="yosys", timeout=timeout)
    stages["yosys"] = round(time.monotonic() - t, 2)
    if r.returncode != 0 or not (workdir / "synth.json").exists():
        if (workdir / "stat_ffs.json").exists():
            ffs_early = _flops(_yosys_cell_counts(workdir / "stat_ffs.json"))
            if ffs_early > dev.ff_capacity:
                bel = "TRELLIS_FF" if dev.family == "ecp5" else "ICESTORM_LC"
                raise DesignDoesNotFit(
                    f"{params.name} ({top}) does not fit {device}: Yosys maps "
                    f"{ffs_early} flops, the device has {dev.ff_capacity} "
                    f"{'flops' if dev.family == 'ecp5' else 'logic cells'} "
                    f"({100 * ffs_early // dev.ff_capacity}%); stopped before LUT mapping; "
                    f"log: {ylog}", {bel: (ffs_early, dev.ff_capacity)})
        _raise_yosys_failure(r.returncode, ylog, yout, dev)
    cells = _yosys_cell_counts(workdir / "stat.json")
    depth = None
    if dev.family == "ecp5":
        depth = logic_depth(json.loads((workdir / "synth.json").read_text()), worst=3)

    def report(**fields) -> dict:
        """The result: what every kind of run reports, around `fields`."""
        sd = fields.pop("seed", seed)
        return {"device": device, "speed_grade": speed, "preset": params.name, "top": top,
                "target_mhz": float(params.clock_mhz), **fields, "yosys_cells": cells,
                "routed_nets": depth,
                "harness": dict(design.harness_info), "seed": int(sd), "placer": placer,
                "nextpnr_args": [str(a) for a in nextpnr_args], "stage_seconds": stages, "wall_seconds": round(time.monotonic() - t0, 2),
                "workdir": str(workdir)}

    if not pnr:
        if dev.family == "ecp5":
            luts = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
            dsps, brams = cells.get("MULT18X18D", 0), cells.get("DP16KD", 0)
        else:
            luts = cells.get("SB_LUT4", 0)
            dsps, brams = cells.get("SB_MAC16", 0), cells.get("SB_RAM40_4K", 0)
        result = report(source="yosys", luts=luts, ffs=_flops(cells), ffs_source="yosys:stat",
                        dsps=dsps, brams=brams, fmax_mhz=None, timing_met=None,
                        fmax_kind="none (synthesis only)", fmax={}, utilization={})
        stage(f"done (synthesis only): {luts} LUTs, {result['ffs']} FFs, {dsps} DSPs")
        return result

    # 3. nextpnr, once per seed (each seed in a directory of its own when
    # there are several; they share the Yosys netlist).
    seeds = [int(seed)] if seeds is None else [int(x) for x in seeds]
    limit = min((x for x in (timeout, route_timeout) if x is not None), default=None)

    def place_and_route(sd: int) -> dict:
        rundir = workdir if len(seeds) == 1 else workdir / f"seed{sd}"
        rundir.mkdir(exist_ok=True)
        for stale in ("report.json", "nextpnr.log"):
            (rundir / stale).unlink(missing_ok=True)
        argv = nextpnr + list(dev.nextpnr_args) + [
            "--json", "synth.json" if rundir == workdir else "../synth.json", "--report", "report.json",
            "--log", "nextpnr.log", "--freq", f"{params.clock_mhz:g}", "--seed", str(sd),
            "--timing-allow-fail", "--placer", placer,
        ] + (["--speed", str(speed)] if speed is not None else [])
        if dev.out_of_context:
            argv.append("--out-of-context")
        argv += list(dev.extra_args) + [str(a) for a in nextpnr_args]
        if not route:
            argv.append("--no-route")
        if dev.family == "ice40":
            argv.append("--pcf-allow-unconstrained")
        (rundir / "nextpnr.cmd").write_text(" ".join(argv) + "\n")
        key = "nextpnr" if len(seeds) == 1 else f"nextpnr_seed{sd}"
        t = stage(f"nextpnr ({dev.nextpnr} {' '.join(dev.nextpnr_args)}"
                  f"{'' if speed is None else f' --speed {speed}'}"
                  f"{'' if len(seeds) == 1 else f' --seed {sd}'}"
                  f"{'' if route else ', placement only'})")
        nlog = rundir / "nextpnr.log"
        try:
            r = _run(argv, cwd=rundir, log=rundir / "nextpnr.out", what=dev.nextpnr,
                     timeout=limit)
        except ToolTimeout:
            late = unrouted_figures(nlog.read_text(errors="replace")) \
                if route and route_timeout is not None and nlog.exists() else None
            if late is None:
                raise
            stages[key] = round(time.monotonic() - t, 2)
            return _unrouted_result(dev, late, cells, limit, report, stage, sd)
        stages[key] = round(time.monotonic() - t, 2)
        if r.returncode != 0 or not (rundir / "report.json").exists():
            log = nlog if nlog.exists() else rundir / "nextpnr.out"
            over = _overflow_from_log(log)
            if over:
                what = ", ".join(f"{k} {u}/{a} ({100 * u // max(a, 1)}%)"
                                 for k, (u, a) in over.items())
                raise DesignDoesNotFit(
                    f"{params.name} ({top}) does not fit {device}: {what}; log: {log}", over)
            out = _tail(log)
            if "Unable to place cell" in out or "no BELs remaining" in out:
                raise DesignDoesNotFit(f"{params.name} ({top}) does not fit {device}: "
                                       f"placement failed; log: {log}\n{out}")
            raise SynthError(f"{dev.nextpnr} failed (exit {r.returncode}); log: {log}\n{out}")

        rep = json.loads((rundir / "report.json").read_text())
        util = rep.get("utilization", {})
        fmax = rep.get("fmax", {})
        if dev.family == "ecp5":
            fields = {k: _pick(util, v) for k, v in _ECP5_MAP.items()}
            ffs_source = "nextpnr:TRELLIS_FF"
        else:
            fields = {k: _pick(util, v) for k, v in _ICE40_MAP.items()}
            # nextpnr-ice40 reports logic cells, not how many of them use their flop.
            fields["ffs"] = _flops(cells)
            ffs_source = "yosys:stat SB_DFF*"
        achieved = [v["achieved"] for v in fmax.values() if "achieved" in v]
        constraints = [v["constraint"] for v in fmax.values() if "constraint" in v]
        extra = {}
        if not route:
            # nextpnr writes no fmax into --report without routing; its placer's
            # timing estimate is only in the log. Kept apart, and named as such.
            est = _PLACE_FMAX.findall(nlog.read_text())
            extra["placement_fmax_estimate_mhz"] = float(est[-1]) if est else None
        target = min(constraints) if constraints else float(params.clock_mhz)
        result = report(
            source="nextpnr", luts=fields["luts"], ffs=fields["ffs"], ffs_source=ffs_source,
            dsps=fields["dsps"], brams=fields["brams"],
            fmax_mhz=round(min(achieved), 2) if achieved else None, target_mhz=target,
            timing_met=min(achieved) >= target if achieved else None,
            fmax_kind="post-route" if route else "none (not routed)", routed=bool(route),
            fmax=fmax, utilization=util, seed=sd, **extra)
        if route:
            result["slack"] = slack_summary(nlog.read_text(errors="replace"))
        if len(seeds) > 1:
            result["workdir"] = str(rundir)
        stage(f"done{'' if len(seeds) == 1 else f' (seed {sd})'}: {result['luts']} LUTs, "
              f"{result['ffs']} FFs, fmax {result['fmax_mhz']} MHz")
        return result

    with _nextpnr_slot(progress):
        if len(seeds) == 1 or jobs <= 1:
            runs = [place_and_route(sd) for sd in seeds]
        else:
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                runs = list(pool.map(place_and_route, seeds))
    if len(seeds) == 1:
        return runs[0]
    return _seed_sweep(runs, workdir, stages, t0)


def _seed_sweep(runs: list, workdir: Path, stages: dict, t0: float) -> dict:
    """The report of one netlist placed and routed with several seeds: the
    best seed's report (its figures, its ``seed``), with ``seed_sweep``
    giving every seed's Fmax, failing endpoints and TNS and their mean, min
    and max. Placement and routing of one netlist vary by several MHz from
    seed to seed (docs/area.md), so a design change is judged on the mean
    over seeds and a bitstream is taken from the best one."""
    timed = [r for r in runs if r["fmax_mhz"] is not None]
    best = max(timed, key=lambda r: r["fmax_mhz"]) if timed else runs[0]
    per_seed = [{"seed": r["seed"], "fmax_mhz": r["fmax_mhz"], "luts": r["luts"],
                 "placement_fmax_estimate_mhz": r.get("placement_fmax_estimate_mhz"),
                 "failing_endpoints": (r.get("slack") or {}).get("failing_endpoints"),
                 "tns_ns": (r.get("slack") or {}).get("tns_ns"), "workdir": r["workdir"]}
                for r in runs]
    f = [r["fmax_mhz"] for r in timed]
    sweep = {"seeds": per_seed, "best_seed": best["seed"],
             "fmax_mhz_mean": round(sum(f) / len(f), 2) if f else None,
             "fmax_mhz_min": min(f) if f else None, "fmax_mhz_max": max(f) if f else None}
    return {**best, "seed_sweep": sweep, "stage_seconds": stages,
            "wall_seconds": round(time.monotonic() - t0, 2), "workdir": str(workdir)}


def _unrouted_result(dev, late: dict, cells: dict, limit: float, report, stage, seed) -> dict:
    """The report of a run whose routing was stopped after `limit` seconds:
    the figures nextpnr's log had (`late`, :func:`unrouted_figures`), no Fmax."""
    util = late["utilization"]
    fields = {k: _pick(util, v) for k, v in (_ECP5_MAP if dev.family == "ecp5"
                                             else _ICE40_MAP).items()}
    router = late["router"]
    status = (f"router2 at iteration {router['iteration']} with {router['overused_wires']} "
              f"overused wires" if router else "routing had not reported an iteration")
    result = report(
        source="nextpnr-log", luts=fields["luts"], ffs=fields.get("ffs", _flops(cells)),
        ffs_source="nextpnr log" if "ffs" in fields else "yosys:stat SB_DFF*",
        dsps=fields["dsps"], brams=fields["brams"], fmax_mhz=None, timing_met=None,
        fmax_kind=f"none (not routed: stopped after {limit:g} s, {status})", routed=False,
        placement_fmax_estimate_mhz=late["placement_fmax_estimate_mhz"], router=router,
        fmax={}, utilization=util, seed=seed)
    stage(f"stopped routing after {limit:g} s ({status}): {result['luts']} LUTs, "
          f"placement estimate {result['placement_fmax_estimate_mhz']} MHz")
    return result


# -- command line ----------------------------------------------------------------------

#: `tessera synth` stops nextpnr after this long (placement included) and
#: reports what it has: the congested fabrics of this project can keep
#: router2 busy for hours without converging (docs/area.md).
DEFAULT_ROUTE_TIMEOUT = 2400.0


def add_synth_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--preset", default="small", choices=list(PRESETS),
                        help="fabric preset (default: small)")
    parser.add_argument("--device", default="ecp5-85k", choices=list(DEVICES),
                        help="target device (default: ecp5-85k)")
    parser.add_argument("--top", default="fabric", choices=list(TOPS),
                        help="what to synthesize: the wrapped fabric, one PCU, PMU or "
                             "switch of the preset, or one link hop")
    parser.add_argument("--speed", type=int, default=None, metavar="GRADE",
                        help="the device's speed grade (ECP5: 6, 7 or 8; default 6, the "
                             "slowest, as on the ULX3S; timing is that grade's)")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                        help="place and route the one netlist with each of these seeds "
                             "(each in workdir/seed<N>) and report every seed's Fmax, their "
                             "mean, min and max, and the best seed's figures")
    parser.add_argument("--jobs", type=int, default=1,
                        help="with --seeds: how many nextpnr runs at a time (default 1)")
    parser.add_argument("--placer", default="static", choices=PLACERS,
                        help="nextpnr's placer (default static, its electrostatic placer: with it "
                             "small routes on an LFE5U-85F, with heap router2 does not converge; "
                             "docs/area.md)")
    parser.add_argument("--route-timeout", type=float, default=DEFAULT_ROUTE_TIMEOUT,
                        metavar="SECONDS",
                        help="stop nextpnr after this long and report the design unrouted "
                             f"(placement estimate, router progress); default "
                             f"{DEFAULT_ROUTE_TIMEOUT:g} s, 0 for no limit")
    parser.add_argument("--no-route", dest="route", action="store_false",
                        help="stop after placement (Fmax is nextpnr's post-placement estimate)")
    parser.add_argument("--synth-only", dest="pnr", action="store_false",
                        help="run Yosys only: its cell counts, no place and route, no Fmax "
                             "(for designs larger than the device)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object on stdout (progress on stderr)")
    return parser


def format_report(r: dict) -> str:
    util_rows = []
    for bel, u in sorted(r["utilization"].items()):
        if u.get("used"):
            util_rows.append(f"  {bel:<16} {u['used']:>7} / {u['available']:<7}"
                             f" {100 * u['used'] / max(u['available'], 1):5.1f}%")
    if r["fmax_mhz"] is not None:
        fmax = f"{r['fmax_mhz']:.1f} MHz"
    elif r.get("placement_fmax_estimate_mhz") is not None:
        fmax = f"~{r['placement_fmax_estimate_mhz']:.1f} MHz"
        r = {**r, "fmax_kind": "placement estimate from the nextpnr log; "
                               + r["fmax_kind"].removeprefix("none (").removesuffix(")")}
    else:
        fmax = "n/a"
    lines = [
        f"Tessera synthesis: preset {r['preset']} ({r['top']}) on {r['device']}"
        + (f", speed grade {r['speed_grade']}" if r.get("speed_grade") is not None else ""),
        f"  {'LUTs':<16} {r['luts']:>7}",
        f"  {'FFs':<16} {r['ffs']:>7}   ({r['ffs_source']})",
        f"  {'DSPs':<16} {r['dsps']:>7}",
        f"  {'BRAMs':<16} {r['brams']:>7}",
        f"  {'Fmax':<16} {fmax:>7}   ({r['fmax_kind']}; target {r['target_mhz']:g} MHz, "
        f"{ {True: 'met', False: 'NOT met', None: 'not timed'}[r['timing_met']]})",
        *([f"  {'slack':<16} {sl['failing_endpoints']:>7} of {sl['endpoints']} endpoints "
           f"fail, TNS {sl['tns_ns']:.1f} ns (from nextpnr's slack histogram, "
           f"+-{sl['endpoints_per_mark']} per bucket)"] if (sl := r.get("slack")) else []),
        *([f"  {'routed nets':<16} "
           + ", ".join(f"{n}: {c}" for n, c in dn["histogram"].items())
           + " (endpoints by the routed nets on their deepest path, before placement)"]
          if (dn := r.get("routed_nets")) else []),
        *([f"  {'seeds':<16} " + " / ".join(
            f"{x['seed']}: " + (f"{x['fmax_mhz']:.2f}" if x["fmax_mhz"] is not None else "n/a")
            for x in sw["seeds"])
           + (f" MHz; mean {sw['fmax_mhz_mean']:.2f}, min {sw['fmax_mhz_min']:.2f}, "
              f"max {sw['fmax_mhz_max']:.2f} (the figures above are seed {sw['best_seed']}'s)"
              if sw["fmax_mhz_mean"] is not None else " (none routed)")]
          if (sw := r.get("seed_sweep")) else []),
        f"  {'wall time':<16} {r['wall_seconds']:>7.1f} s",
        "nextpnr utilization:",
        *util_rows,
    ]
    if r.get("source") == "yosys":
        lines[-1 - len(util_rows):] = ["Yosys cells (no place and route):"] + [
            f"  {cell:<16} {n:>7}" for cell, n in sorted(r["yosys_cells"].items())]
    return "\n".join(lines)


def main_synth(args) -> int:
    def progress(msg):
        print(msg, file=sys.stderr, flush=True)

    try:
        params = _preset(getattr(args, "preset", "small"))
        result = synthesize(params, getattr(args, "device", "ecp5-85k"),
                            top=getattr(args, "top", "fabric"),
                            seed=getattr(args, "seed", 1), route=getattr(args, "route", True),
                            seeds=getattr(args, "seeds", None), jobs=getattr(args, "jobs", 1),
                            speed=getattr(args, "speed", None),
                            pnr=getattr(args, "pnr", True), progress=progress,
                            route_timeout=getattr(args, "route_timeout", None) or None,
                            placer=getattr(args, "placer", "static"))
    except (ValueError, SynthError) as e:
        if getattr(args, "json", False):
            out = {"error": type(e).__name__, "message": str(e)}
            if isinstance(e, DesignDoesNotFit):
                out["overflow"] = {k: {"used": u, "available": a}
                                   for k, (u, a) in e.overflow.items()}
            print(json.dumps(out))
        else:
            print(f"tessera synth: error: {e}", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        print(json.dumps(result))
    else:
        print(format_report(result))
    return 0


if __name__ == "__main__":       # python -m tessera.hw.synth
    sys.exit(main_synth(add_synth_arguments(argparse.ArgumentParser(prog="tessera synth"))
                        .parse_args()))
