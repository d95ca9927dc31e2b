"""The synthesis flow (tessera.hw.synth): error handling, and small end-to-end
runs through Yosys and nextpnr (a single link hop; seconds once the YoWASP
WebAssembly cache is warm). Whole-fabric runs are marked slow."""

import argparse
import json
import stat
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil

from tessera.hw import synth
from tessera.hw.params import preset
from tessera.hw.synth import (DEVICES, DesignDoesNotFit, SynthError, SynthTop, ToolNotFound,
                              add_synth_arguments, main_synth, synthesize)


def _have(tool):
    try:
        synth.find_tool(tool)
        return True
    except ToolNotFound:
        return False


needs_ice40 = pytest.mark.skipif(not (_have("yosys") and _have("nextpnr-ice40")),
                                 reason="yosys / nextpnr-ice40 not available")
needs_ecp5 = pytest.mark.skipif(not (_have("yosys") and _have("nextpnr-ecp5")),
                                reason="yosys / nextpnr-ecp5 not available")


def _check_report(r, device, speed=None):
    assert r["device"] == device
    assert r["speed_grade"] == (speed or 6 if device.startswith("ecp5") else None)
    assert r["luts"] > 0
    assert r["ffs"] > 0
    assert r["fmax_mhz"] is not None and r["fmax_mhz"] > 0
    assert r["target_mhz"] == pytest.approx(100.0)
    assert r["dsps"] >= 0 and r["brams"] >= 0
    assert r["wall_seconds"] > 0
    # nextpnr's static placer unless told otherwise, from the API as from the CLI
    assert r["placer"] == "static"
    d = Path(r["workdir"])
    if "seed_sweep" in r:                           # the best seed's run
        d = d / f"seed{r['seed']}"
    assert "--placer static" in (d / "nextpnr.cmd").read_text()
    # The raw nextpnr utilization is passed through as {bel: {used, available}}.
    for bel, u in r["utilization"].items():
        assert set(u) >= {"used", "available"}, bel
    json.dumps(r)                                   # the report is plain JSON


# -- errors ----------------------------------------------------------------------------

def test_unknown_device_names_choices(tmp_path):
    with pytest.raises(ValueError) as e:
        synthesize(preset("tiny"), "virtex-7", workdir=tmp_path, progress=None)
    for name in DEVICES:
        assert name in str(e.value)
    assert "virtex-7" in str(e.value)


@pytest.mark.parametrize("device, speed, match", [
    ("ecp5-85k", 9, "ecp5-85k has speed grades 6, 7, 8; not 9"),
    ("ice40-up5k", 8, "ice40-up5k has no speed grade to choose"),
])
def test_bad_speed_grade_names_the_choices(tmp_path, device, speed, match):
    with pytest.raises(ValueError, match=match):
        synthesize(preset("tiny"), device, top="hop", workdir=tmp_path, progress=None,
                   speed=speed)
    assert not any(tmp_path.iterdir())              # nothing ran


def test_unknown_placer_names_the_choices(tmp_path):
    with pytest.raises(ValueError, match="unknown nextpnr placer 'annealing'; choose one of "
                                         "static, heap, sa"):
        synthesize(preset("tiny"), "ecp5-25k", top="hop", workdir=tmp_path, progress=None,
                   placer="annealing")
    assert not any(tmp_path.iterdir())              # nothing ran


def test_unknown_top(tmp_path):
    with pytest.raises(ValueError, match="hop.*|pcu"):
        synthesize(preset("tiny"), "ice40-up5k", top="cpu", workdir=tmp_path, progress=None)


def test_missing_tool_in_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("YOSYS", str(tmp_path / "no-such-yosys"))
    with pytest.raises(ToolNotFound, match="YOSYS") as e:
        synthesize(preset("tiny"), "ice40-up5k", top="hop", workdir=tmp_path, progress=None)
    assert "no-such-yosys" in str(e.value)
    assert isinstance(e.value, RuntimeError)


def test_missing_nextpnr_in_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTPNR_ECP5", str(tmp_path / "nope"))
    with pytest.raises(ToolNotFound, match="NEXTPNR_ECP5"):
        synthesize(preset("tiny"), "ecp5-25k", top="hop", workdir=tmp_path, progress=None)


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as fake tool")
def test_tool_failure_names_log(tmp_path, monkeypatch):
    fake = tmp_path / "fake-yosys"
    fake.write_text("#!/bin/sh\necho 'ERROR: something broke in the fake tool'\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("YOSYS", str(fake))
    monkeypatch.setenv("NEXTPNR_ICE40", str(fake))
    work = tmp_path / "work"
    with pytest.raises(SynthError) as e:
        synthesize(preset("tiny"), "ice40-up5k", top="hop", workdir=work, progress=None)
    msg = str(e.value)
    assert "yosys failed (exit 3)" in msg
    assert str(work) in msg
    assert "something broke" in msg


_HISTOGRAM_LOG = """Info: Max frequency for clock 'clk': 75.00 MHz (FAIL at 100.00 MHz)
Info: Slack histogram:
Info:  legend: * represents 10 endpoint(s)
Info:          + represents [1,10) endpoint(s)
Info: [ -3000,  -2000) |*+
Info: [ -2000,  -1000) |***
Info: [ -1000,    500) |****+
Info: [   500,   2000) |**********
1 warning, 0 errors
"""


def test_slack_summary_reads_the_last_histogram():
    s = synth.slack_summary("Info: Slack histogram:\nInfo: [ -9, 0) |*\n" + _HISTOGRAM_LOG)
    # 15 + 30 + 45 + 100 endpoints; failing: 15 + 30 + 45 * 2/3
    assert s["endpoints"] == 190 and s["failing_endpoints"] == 75
    assert s["worst_slack_ns"] == -3.0 and s["endpoints_per_mark"] == 10
    # bucket midpoints: 15 x -2.5, 30 x -1.5, 30 x -0.5 ns
    assert s["tns_ns"] == pytest.approx(-(15 * 2.5 + 30 * 1.5 + 30 * 0.5), abs=0.05)
    assert synth.slack_summary("Info: Program finished normally.") is None


def _cell(kind, **ports):
    """A Yosys JSON cell: ports given as (direction, [bits])."""
    return {"type": kind, "port_directions": {p: d for p, (d, _) in ports.items()},
            "connections": {p: bits for p, (_, bits) in ports.items()}}


def test_logic_depth_counts_routed_nets():
    I, O = "input", "output"
    cells = {
        # ff1 -> lut -> (its PFUMX, no routing) -> ff2: two routed nets
        "ff1": _cell("TRELLIS_FF", CLK=(I, [1]), DI=(I, [9]), Q=(O, [2])),
        "lut": _cell("LUT4", A=(I, [2]), B=(I, ["0"]), C=(I, ["0"]), D=(I, ["0"]), Z=(O, [3])),
        "lutb": _cell("LUT4", A=(I, [2]), B=(I, ["0"]), C=(I, ["0"]), D=(I, ["0"]), Z=(O, [4])),
        "mux": _cell("PFUMX", ALUT=(I, [3]), BLUT=(I, [4]), C0=(I, [2]), Z=(O, [5])),
        "ff2": _cell("TRELLIS_FF", CLK=(I, [1]), DI=(I, [5]), Q=(O, [6])),
        # ff2 -> carry -> (carry, no routing) -> sum -> ff3: two
        "cc0": _cell("CCU2C", A0=(I, [6]), B0=(I, ["0"]), CIN=(I, ["0"]), S0=(O, [7]),
                     COUT=(O, [8])),
        "cc1": _cell("CCU2C", A0=(I, ["0"]), CIN=(I, [8]), S0=(O, [10]), COUT=(O, [11])),
        "ff3": _cell("TRELLIS_FF", CLK=(I, [1]), DI=(I, [10]), Q=(O, [9])),
        # a DSP's registered product counts as two nets, then one to ff4
        "dsp": _cell("MULT18X18D", A0=(I, [9]), CLK0=(I, [1]), P0=(O, [12])),
        "ff4": _cell("TRELLIS_FF", CLK=(I, [1]), DI=(I, [12]), Q=(O, [13])),
    }
    r = synth.logic_depth({"modules": {"top": {"cells": cells}}}, worst=2)
    # endpoints: ff1.DI (ff3 -> ff1: 1), ff2.DI 2, ff3.DI 2, dsp.A0 1, ff4.DI 3
    assert r["histogram"] == {1: 2, 2: 2, 3: 1} and r["endpoints"] == 5
    assert r["worst"][0] == {"nets": 3, "endpoint": "ff4.DI", "path": ["dsp"]}
    assert r["worst"][1]["path"] in (["ff1", "lut", "mux"], ["ff2", "cc0", "cc1"])


def test_overflow_parser(tmp_path):
    log = tmp_path / "nextpnr.log"
    log.write_text(
        "Info: Device utilisation:\n"
        "Info: \t         ICESTORM_LC:   32233/   5280   610%\n"
        "Info: \t        ICESTORM_RAM:       0/     30     0%\n"
        "Info: \t               SB_IO:      39/     39   100%\n"
        "ERROR: Unable to place cell 'x', no BELs remaining to implement cell type "
        "'ICESTORM_LC'\n")
    assert synth._overflow_from_log(log) == {"ICESTORM_LC": (32233, 5280)}


def test_tool_lookup_prefers_env(tmp_path, monkeypatch):
    fake = tmp_path / "my-yosys"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("YOSYS", str(fake))
    assert synth.find_tool("yosys") == [str(fake)]


# -- command line ----------------------------------------------------------------------

def test_arguments_defaults():
    p = add_synth_arguments(argparse.ArgumentParser())
    a = p.parse_args([])
    assert (a.preset, a.device, a.json, a.top, a.seed) == ("small", "ecp5-85k", False,
                                                            "fabric", 1)
    assert a.pnr is True and a.route is True
    a = p.parse_args(["--top", "pcu", "--preset", "default", "--synth-only"])
    assert (a.top, a.preset, a.pnr) == ("pcu", "default", False)
    a = p.parse_args(["--top", "pmu"])
    assert a.top == "pmu"
    a = p.parse_args(["--preset", "tiny", "--device", "ice40-up5k", "--json"])
    assert (a.preset, a.device, a.json) == ("tiny", "ice40-up5k", True)
    with pytest.raises(SystemExit):
        p.parse_args(["--device", "gowin"])


# -- the wrapper -----------------------------------------------------------------------

def test_synth_top_pins_fit_ice40_package():
    top = SynthTop(preset("tiny"))
    text = rtlil.convert(top, name="top", emit_src=False)
    # Pins: clk, rst, cfg_data[32], cfg_valid, cfg_last, cfg_ready, obs: at most
    # the 39 user I/O of the UP5K SG48 package.
    widths = [len(getattr(top, name)) for name in top.signature.members]
    assert sum(widths) + 2 <= 39
    assert "fabric" in text and "loader" in text
    info = top.harness_info
    # Every fabric edge port is tied to the harness: the vector payloads alone
    # are (lanes * 32 + 1) bits per port.
    p = preset("tiny")
    assert info["driven_bits"] > p.lanes * 32
    assert info["observed_bits"] > p.lanes * 32
    assert info["lfsr_bits"] > p.lanes * 32 + 1


@pytest.mark.parametrize("kind", ["pcu", "pmu", "switch"])
def test_unit_top_drives_every_port(kind):
    """`--top pcu|pmu|switch`: one unit or switch, every input (its
    configuration included) driven from the LFSR and every output observed."""
    from amaranth.lib import wiring

    from tessera.hw.synth import TOPS, UnitTop, build_top
    assert kind in TOPS
    p = preset("tiny")
    top = build_top(p, kind)
    assert isinstance(top, UnitTop) and top.kind == kind
    text = rtlil.convert(top, name="top", emit_src=False)
    assert "unit" in text
    info = top.harness_info
    unit_cls = type(top)._unit_class(kind)
    unit = unit_cls(p)
    ins = sum(len(v.as_value() if hasattr(v, "as_value") else v)
              for path, m, v in unit.signature.flatten(unit) if m.flow == wiring.In)
    assert info["driven_bits"] == ins
    assert info["driven_bits"] > len(unit.config.as_value())
    assert info["observed_bits"] > p.lanes * 32
    with pytest.raises(ValueError, match="unit kind"):
        UnitTop(p, "agcu")


def test_ecp5_flag_builds_mux_cells():
    """Synthesis for ECP5 elaborates with ECP5_MUXES set: the PCU's operand
    selects become PFUMX cells; simulation elaborates without them."""
    from tessera.hw.switch import ECP5_MUXES
    p = preset("tiny")
    plain = rtlil.convert(synth.build_top(p, "pcu"), name="top", emit_src=False)
    assert "PFUMX" not in plain
    token = ECP5_MUXES.set(True)
    try:
        cells = rtlil.convert(synth.build_top(p, "pcu"), name="top", emit_src=False)
    finally:
        ECP5_MUXES.reset(token)
    assert "PFUMX" in cells


def test_words_to_beats():
    from amaranth.sim import Simulator
    dut = synth._WordsToBeats(4)
    beats = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        words = [0x100 + k for k in range(6)]
        for k, w in enumerate(words):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload.data, w)
            ctx.set(dut.i.payload.last, k == len(words) - 1)
            await ctx.tick().until(dut.i.ready)
            if ctx.get(dut.o.valid):
                beats.append((list(ctx.get(dut.o.payload.data)), ctx.get(dut.o.payload.last)))
        ctx.set(dut.i.valid, 0)
        for _ in range(3):
            await ctx.tick()
            if ctx.get(dut.o.valid):
                beats.append((list(ctx.get(dut.o.payload.data)), ctx.get(dut.o.payload.last)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert beats[0] == ([0x100, 0x101, 0x102, 0x103], 0)
    assert beats[1][0][:2] == [0x104, 0x105] and beats[1][1] == 1
    assert len(beats) == 2


# -- end to end ------------------------------------------------------------------------

@needs_ice40
def test_hop_ice40(tmp_path):
    lines = []
    r = synthesize(preset("tiny"), "ice40-up5k", top="hop", workdir=tmp_path,
                   progress=lines.append)
    _check_report(r, "ice40-up5k")
    assert r["ffs_source"].startswith("yosys")
    # 2 x 33 payload flops + 2 count flops in the hop, plus the harness.
    assert r["ffs"] >= 68
    assert "ICESTORM_LC" in r["utilization"]
    assert any("yosys" in s for s in lines) and any("nextpnr" in s for s in lines)
    assert (tmp_path / "report.json").exists()


@needs_ecp5
def test_hop_ecp5_synth_only(tmp_path):
    r = synthesize(preset("tiny"), "ecp5-25k", top="hop", workdir=tmp_path, progress=None,
                   pnr=False)
    assert r["source"] == "yosys" and r["fmax_mhz"] is None
    # the lean hop: one 2:1 mux per payload bit (33) plus a few control LUTs,
    # on top of the harness's XOR tree
    assert r["ffs"] >= 68 and 0 < r["luts"] < 200
    assert r["yosys_cells"]["TRELLIS_FF"] == r["ffs"]
    assert not (tmp_path / "report.json").exists()
    assert "Yosys cells" in synth.format_report(r)


@needs_ecp5
def test_unit_config_register_is_not_merged_into_the_harness(tmp_path):
    # The harness's LFSRs are shift registers: without `keep` on both, Yosys
    # merged each bit of the unit's registered configuration (`cfg_r`) into
    # the LFSR flop with the same input, and the netlist had no `unit.cfg_r`.
    r = synthesize(preset("tiny"), "ecp5-25k", top="pmu", workdir=tmp_path, progress=None,
                   pnr=False)
    nets = json.loads((tmp_path / "synth.json").read_text())["modules"]["top"]["netnames"]
    lfsr = {b for name, net in nets.items()
            if name.startswith("lfsr") and name.endswith(".state") for b in net["bits"]}
    assert "unit.cfg_r" in nets
    cfg = set(nets["unit.cfg_r"]["bits"])
    assert len(cfg) == len(nets["unit.cfg_r"]["bits"]) and not cfg & lfsr
    assert r["ffs"] >= len(cfg) + len(lfsr)


def test_settle_flag_is_not_merged_into_its_copies(tmp_path):
    """A unit's settle flag and its `_rep` copies are flops loaded from one
    flop: without `keep` on the shared flag (synth.keep_flops_commands),
    opt_merge merged it into a copy (the PCU's `s0_quiet_rep`), which then
    drove stage 0 and the unit's control."""
    from amaranth import Cat, Module, Signal
    from amaranth.back import rtlil
    from amaranth.lib import data, wiring
    from amaranth.lib.wiring import In, Out

    from tessera.hw.synth import keep_flops_commands
    from tessera.hw.unit import settled_config

    from ..yosys import run_yosys_script

    class Top(wiring.Component):
        def __init__(self):
            super().__init__({"config": In(data.StructLayout({"w": 8})), "enable": In(3),
                              "o": Out(3)})

        def elaborate(self, platform):
            m = Module()
            copies = [Signal(name=f"s{k}_quiet_rep") for k in range(2)]
            _, quiet = settled_config(m, self.config, quiet_copies=copies)
            # (through logic, as in a unit: a flop driving a port is named after it)
            m.d.comb += self.o.eq(Cat(quiet, *copies) & self.enable)
            return m

    (tmp_path / "top.il").write_text(rtlil.convert(Top(), name="top"))
    run_yosys_script(tmp_path, "read_rtlil top.il\nhierarchy -top top\nproc\n"
                     + keep_flops_commands("pcu") + "opt_merge\nopt_clean\nwrite_json out.json\n")
    nets = json.loads((tmp_path / "out.json").read_text())["modules"]["top"]["netnames"]
    flops = [set(nets[name]["bits"]) for name in ("cfg_r_quiet", "s0_quiet_rep", "s1_quiet_rep")]
    assert all(len(f) == 1 for f in flops)
    assert len(set.union(*flops)) == 3, flops


@needs_ecp5
@pytest.mark.parametrize("speed", [None, 8])
def test_hop_ecp5(tmp_path, speed):
    r = synthesize(preset("tiny"), "ecp5-25k", top="hop", workdir=tmp_path, progress=None,
                   speed=speed)
    _check_report(r, "ecp5-25k", speed)
    assert f"--speed {speed or 6} " in (tmp_path / "nextpnr.cmd").read_text()
    assert r["ffs"] >= 68
    assert r["ffs"] == r["utilization"]["TRELLIS_FF"]["used"]
    assert r["slack"]["endpoints"] > 0 and r["slack"]["failing_endpoints"] == 0


@needs_ecp5
def test_seed_sweep_routes_one_netlist_per_seed(tmp_path):
    """--seeds: one Yosys netlist, nextpnr once per seed in its own
    directory; the report is the best seed's, with every seed's figures and
    their mean, min and max."""
    r = synthesize(preset("tiny"), "ecp5-25k", top="hop", workdir=tmp_path, progress=None,
                   seeds=[1, 2, 5], jobs=2)
    _check_report(r, "ecp5-25k")
    sw = r["seed_sweep"]
    assert [x["seed"] for x in sw["seeds"]] == [1, 2, 5]
    got = {}
    for x in sw["seeds"]:
        d = tmp_path / f"seed{x['seed']}"
        assert x["workdir"] == str(d)
        assert f"--seed {x['seed']} " in (d / "nextpnr.cmd").read_text()
        rep = json.loads((d / "report.json").read_text())
        got[x["seed"]] = round(rep["fmax"]["clk"]["achieved"], 2)
        assert x["fmax_mhz"] == got[x["seed"]]
        assert x["failing_endpoints"] == 0
    f = list(got.values())
    assert (sw["fmax_mhz_min"], sw["fmax_mhz_max"]) == (min(f), max(f))
    assert sw["fmax_mhz_mean"] == round(sum(f) / 3, 2)
    assert r["fmax_mhz"] == max(f) and got[r["seed"]] == max(f) == got[sw["best_seed"]]
    assert not (tmp_path / "report.json").exists()        # no single-seed leftovers
    text = synth.format_report(r)
    assert f"mean {sw['fmax_mhz_mean']:.2f}" in text and "1: " in text and "5: " in text


@pytest.mark.parametrize("seeds,jobs", [([], 1), ([1, 1], 1), ([1, 2], 0)])
def test_bad_seed_sweep_is_refused(tmp_path, seeds, jobs):
    with pytest.raises(ValueError, match="seeds|jobs"):
        synthesize(preset("tiny"), "ecp5-25k", top="hop", workdir=tmp_path, progress=None,
                   seeds=seeds, jobs=jobs)


@needs_ice40
def test_main_synth_json_is_one_object(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = add_synth_arguments(argparse.ArgumentParser()).parse_args(
        ["--preset", "tiny", "--device", "ice40-up5k", "--top", "hop", "--json"])
    assert main_synth(args) == 0
    out, err = capsys.readouterr()
    r = json.loads(out)
    _check_report(r, "ice40-up5k")
    assert "nextpnr" in err                          # progress went to stderr
    assert (tmp_path / ".tessera-cache" / "synth" / "hop-tiny-ice40-up5k").is_dir()


@needs_ice40
@pytest.mark.slow
def test_tiny_fabric_does_not_fit_up5k(tmp_path):
    with pytest.raises(DesignDoesNotFit) as e:
        synthesize(preset("tiny"), "ice40-up5k", workdir=tmp_path, progress=None)
    assert "ICESTORM_LC" in e.value.overflow
    used, avail = e.value.overflow["ICESTORM_LC"]
    assert used > avail == 5280
    assert "ICESTORM_LC" in str(e.value)


@needs_ecp5
@pytest.mark.slow
def test_tiny_fabric_ecp5_85k_placed(tmp_path):
    # Placement only: routing the crossbars takes far longer in WebAssembly.
    r = synthesize(preset("tiny"), "ecp5-85k", workdir=tmp_path, progress=None, route=False)
    assert r["luts"] > 1000 and r["ffs"] > 1000
    assert r["fmax_mhz"] is None and r["fmax_kind"].startswith("none")
    assert r["placement_fmax_estimate_mhz"] > 0


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file locks")
def test_nextpnr_runs_one_at_a_time(tmp_path, monkeypatch):
    """A second nextpnr waits for the slot that the first one holds."""
    import threading
    monkeypatch.setenv("TESSERA_CACHE", str(tmp_path))
    order, waited = [], []
    first_in = threading.Event()
    release = threading.Event()

    def first():
        with synth._nextpnr_slot(lambda msg: None):
            order.append("first in")
            first_in.set()
            release.wait(10)
            order.append("first out")

    def second():
        first_in.wait(10)
        with synth._nextpnr_slot(waited.append):
            order.append("second in")

    t1, t2 = threading.Thread(target=first), threading.Thread(target=second)
    t1.start(), t2.start()
    first_in.wait(10)
    import time
    time.sleep(0.3)
    release.set()
    t1.join(10), t2.join(10)
    assert order == ["first in", "first out", "second in"]
    assert waited and "one at a time" in waited[0]
    assert (tmp_path / "nextpnr.lock").exists()


_ROUTING_LOG = """Info: Device utilisation:
Info: \t          TRELLIS_IO:       0/    365     0%
Info: \t        TRELLIS_COMB:   58365/  83640    69%
Info: \t          TRELLIS_FF:   23110/  83640    27%
Info: \t          MULT18X18D:       8/    156     5%
Info: \t              DP16KD:       8/    208     3%
Info: Max frequency for clock 'clk': 33.97 MHz (FAIL at 100.00 MHz)
Info: Running router2...
Info:     iter=1 wires=994926 overused=94811 overuse=113127 archfail=NA
Info:     iter=2 wires=1025224 overused=63852 overuse=69212 archfail=NA
"""


def _fake_nextpnr(tmp_path, log_text):
    """A nextpnr that writes `log_text` to its --log file and then hangs."""
    (tmp_path / "log.txt").write_text(log_text)
    fake = tmp_path / "fake-nextpnr"
    fake.write_text("#!/bin/sh\nwhile [ $# -gt 0 ]; do\n"
                    "  if [ \"$1\" = --log ]; then cp " + str(tmp_path / "log.txt") + " \"$2\"; fi\n"
                    "  shift\ndone\nexec sleep 120\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return fake


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as fake tool")
def test_route_timeout_reports_the_unrouted_design(tmp_path, monkeypatch):
    """Routing that does not converge in time gives a report, not a hang:
    the utilisation, the placement estimate and router2's progress, and no
    Fmax."""
    monkeypatch.setenv("NEXTPNR_ECP5", str(_fake_nextpnr(tmp_path, _ROUTING_LOG)))
    monkeypatch.setenv("TESSERA_CACHE", str(tmp_path))
    r = synthesize(preset("tiny"), "ecp5-85k", top="hop", workdir=tmp_path / "w",
                   progress=None, route_timeout=3)
    assert r["routed"] is False and r["fmax_mhz"] is None
    assert (r["luts"], r["ffs"], r["dsps"], r["brams"]) == (58365, 23110, 8, 8)
    assert r["placement_fmax_estimate_mhz"] == 33.97
    assert r["router"]["iteration"] == 2 and r["router"]["overused_wires"] == 63852
    assert r["router"]["overused_by_iteration"] == [94811, 63852]
    assert "stopped after 3 s" in r["fmax_kind"]
    text = synth.format_report(r)
    assert "~34.0 MHz" in text and "not routed" in text


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as fake tool")
def test_timeout_before_routing_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTPNR_ECP5", str(_fake_nextpnr(tmp_path, "Info: Placing...\n")))
    monkeypatch.setenv("TESSERA_CACHE", str(tmp_path))
    with pytest.raises(synth.ToolTimeout, match="timed out after 2"):
        synthesize(preset("tiny"), "ecp5-85k", top="hop", workdir=tmp_path / "w",
                   progress=None, route_timeout=2)


def test_route_timeout_argument():
    p = add_synth_arguments(argparse.ArgumentParser())
    assert p.parse_args([]).route_timeout == synth.DEFAULT_ROUTE_TIMEOUT
    assert p.parse_args(["--route-timeout", "0"]).route_timeout == 0
