"""PMU (pattern memory unit): RTL against the bit-accurate model on random
access programs, random data and random backpressure, on pysim and Verilator;
the contract, capacity errors, the transposed read against NumPy, and the
throughput figures of issue 4.

Random cases run in batches on one simulator instance (one Verilator model
per preset, one pysim elaboration per batch) through the stream harness's
per-cycle loop (:func:`tessera.sim.harness.drive`, the same loop
``run_streams`` uses). Between cases the configuration is set to 0 for a few
cycles, which clears the PMU's state but not its memory: the model carries the
memory over too, so later cases also read what earlier ones left.
"""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest

from tessera.hw.config import config_words
from tessera.hw.counters import CounterChain, CounterChainModel
from tessera.hw.params import PRESETS, FabricParams
from tessera.hw.pmu import EV_RELEASED, EV_WRITTEN, PMU, RD, WR
from tessera.hw.unit import unit_signature_members
from tessera.sim.harness import TOP_NAME, drive, run_streams
from tessera.sim.pmu_model import (PMUModel, PMUProgramError, ag, encode_config, pmu_config,
                                   scal_payload, unpack_vec, vec_payload)

SMALL = PRESETS["small"]


# -- random programs ------------------------------------------------------------------------

def _pow2_at_least(n):
    return 1 << max(0, (n - 1).bit_length())


def _extent(loops, base, lstride, lanes):
    """Largest relative row an AG program touches (all strides >= 0)."""
    return base + sum(a * (t - 1) for t, a, _ in loops) + (lanes - 1) * lstride


def random_case(p: FabricParams, rng: random.Random, mem=None, family=None):
    """One random (program, stimulus) pair and the model's answer.

    Returns a dict: config (raw bits), inputs, expect, outputs (the model's),
    mem (memory after the case), family, in_gap, out_stall, seed."""
    B, D, C = p.pmu_banks, p.pmu_depth, p.counters
    families = ["rows", "strided", "transposed", "scalar_in", "scalar_out", "fifo", "random",
                "random", "sink", "persist"]
    family = family or rng.choice(families)
    wr_scalar = rd_scalar = False
    wr_en = rd_en = True
    if family == "rows":
        n = rng.randint(1, 16)
        skew = rng.randint(0, 1)
        wl = [(n, 1, skew)]
        mode = rng.choice(["fwd", "rev", "reuse"])
        if mode == "fwd":
            rl, rbase, rrb = [(n, 1, skew)], 0, 0
        elif mode == "rev":
            rl, rbase, rrb = [(n, -1, -skew)], n - 1, (n - 1) * skew
        else:
            rl, rbase, rrb = [(n, 1, skew), (rng.randint(1, 3), 0, 0)], 0, 0
        rows = n
        w_args, r_args = {}, {"base": rbase, "rbase": rrb}
    elif family == "strided":
        s, mm = rng.randint(2, 4), rng.randint(1, 4)
        n = s * mm
        inter = [(mm, s, 0), (s, 1, 0)]
        seq = [(n, 1, 0)]
        wl, rl = (inter, seq) if rng.random() < 0.5 else (seq, inter)
        rows = n
        w_args, r_args = {}, {}
    elif family == "transposed":
        ncb, rb = rng.randint(1, 2), rng.randint(1, 2)
        R = B * rb
        wl = [(ncb, 1, 0), (R, ncb, 1)]                       # skewed rows
        rl = [(B, 0, 1), (ncb, 1, 0), (rb, B * ncb, 0)]       # columns of B-row blocks
        rows = R * ncb
        w_args, r_args = {}, {"lstride": ncb}
    elif family == "scalar_in":
        n = rng.randint(1, 6)
        wl, rl = [(B, 0, 1), (n, 1, 0)], [(n, 1, 0)]
        wr_scalar = True
        rows = n
        w_args, r_args = {}, {}
    elif family == "scalar_out":
        n = rng.randint(1, 6)
        wl, rl = [(n, 1, 0)], [(B, 0, 1), (n, 1, 0)]
        rd_scalar = True
        rows = n
        w_args, r_args = {}, {}
    elif family == "fifo":
        wl, rl = [], []
        rows = 1
        wr_scalar = rd_scalar = rng.random() < 0.3
        w_args, r_args = {}, {}
    elif family in ("random", "sink", "persist"):
        def rand_ag(scalar):
            levels = rng.randint(1, C)
            loops = [(rng.randint(1, 4), rng.randint(0, 3), rng.randint(0, B - 1))
                     for _ in range(levels)]
            args = {"base": rng.randint(0, 3), "rbase": rng.randint(0, B - 1),
                    "lstride": 0 if scalar or rng.random() < 0.5 else rng.randint(0, 2)}
            return loops, args
        wr_scalar = rng.random() < 0.25
        rd_scalar = rng.random() < 0.25
        wl, w_args = rand_ag(wr_scalar)
        rl, r_args = rand_ag(rd_scalar)
        lanes_w = 1 if wr_scalar else B
        lanes_r = 1 if rd_scalar else B
        rows = max(_extent(wl, w_args["base"], w_args["lstride"], lanes_w),
                   _extent(rl, r_args["base"], r_args["lstride"], lanes_r)) + 1
        if family == "sink":
            rd_en = False
        if family == "persist":
            wr_en = False
    else:
        raise ValueError(family)

    buf_rows = _pow2_at_least(rows)
    max_nbuf = D // buf_rows
    if family == "fifo":
        nbuf = rng.choice([1, 2, 3, D // 2, D])
    else:
        nbuf = rng.choice([n for n in (1, 2, 2, 3, 4) if n <= max_nbuf])
    buf_lg = buf_rows.bit_length() - 1

    wr_port = rng.randint(0, 1)
    last_code = rng.randint(0, C + 1)
    wr = ag(p, wl, scalar=wr_scalar, port=wr_port, **w_args)
    rd = ag(p, rl, scalar=rd_scalar, port=0, last=last_code, **r_args)
    wr["en"], rd["en"] = int(wr_en), int(rd_en)

    # token dependencies and events
    ctrl_in, tok_supply = {}, {}
    for j in range(p.unit_ctrl_in):
        if rng.random() < 0.35 or (family == "persist" and j == 0):
            side = RD if family == "persist" else rng.choice([WR, RD])
            ctrl_in[j] = {"side": side, "init": rng.randint(0, 3)}
            tok_supply[j] = rng.randint(0, 6)
    ctrl_out = {}
    for k in range(p.unit_ctrl_out):
        if rng.random() < 0.5:
            ctrl_out[k] = {"event": rng.choice([EV_WRITTEN, EV_RELEASED]), "last": rng.randint(0, 1)}

    # a bypass on a network the program leaves free
    bypass, byp_inputs = {}, {}
    if rng.random() < 0.3:
        net = rng.choice(["vec", "scal", "ctrl"])
        used_out0 = {"vec": rd_en and not rd_scalar, "scal": rd_en and rd_scalar,
                     "ctrl": 0 in ctrl_out}[net]
        sel = rng.randint(0, 1)
        used_in = {"vec": wr_en and not wr_scalar and wr_port == sel,
                   "scal": wr_en and wr_scalar and wr_port == sel,
                   "ctrl": sel in ctrl_in}[net]
        if not used_out0 and not used_in:
            bypass[net] = {"en": 1, "sel": sel}
            n_words = rng.randint(0, 10)
            if net == "vec":
                words = [vec_payload(p, [rng.getrandbits(32) for _ in range(B)],
                                     rng.randint(0, 1)) for _ in range(n_words)]
            elif net == "scal":
                words = [scal_payload(rng.getrandbits(32), rng.randint(0, 1))
                         for _ in range(n_words)]
            else:
                words = [rng.randint(0, 1) for _ in range(n_words)]
            byp_inputs[f"i_{net}[{sel}]"] = words

    cfg = pmu_config(p, wr=wr, rd=rd, nbuf=nbuf, buf_lg=buf_lg, ctrl_in=ctrl_in,
                     ctrl_out=ctrl_out, bypass=bypass or None)

    # data: some whole buffers, sometimes a partial one
    per_buf = 1
    for t, _, _ in wl:
        per_buf *= t
    inputs = dict(byp_inputs)
    if wr_en:
        n_words = per_buf * rng.randint(1, 5) + (rng.randint(0, per_buf - 1) if rng.random() < 0.2
                                                  else 0)
        n_words = min(n_words, 400)
        port = f"i_{'scal' if wr_scalar else 'vec'}[{wr_port}]"
        if wr_scalar:
            words = [scal_payload(rng.getrandbits(32), rng.random() < 0.2) for _ in range(n_words)]
        else:
            words = [vec_payload(p, [rng.getrandbits(32) for _ in range(B)], rng.random() < 0.2)
                     for _ in range(n_words)]
        inputs[port] = words
    for j, n in tok_supply.items():
        inputs[f"i_ctrl[{j}]"] = [rng.randint(0, 1) for _ in range(n)]

    # first pass: what the program consumes; then offer exactly that, so the
    # unit ends with empty input FIFOs (the next case starts clean)
    first = PMUModel(p, cfg, mem=mem)
    first.run(inputs, max_accesses=20_000)
    if first.truncated:
        raise PMUProgramError("random program does not terminate")
    for port in list(inputs):
        if port in byp_inputs:
            continue
        inputs[port] = inputs[port][:first.consumed.get(port, 0)]
        if not inputs[port]:
            del inputs[port]
    model = PMUModel(p, cfg, mem=mem)
    outputs = model.run(inputs)
    expect = {port: len(v) for port, v in outputs.items()}
    return {
        "family": family, "config": encode_config(p, cfg), "inputs": inputs, "expect": expect,
        "outputs": outputs, "mem": model.mem,
        "in_gap": rng.choice([0.0, 0.1, 0.3, 0.5]), "out_stall": rng.choice([0.0, 0.2, 0.4, 0.6]),
        "seed": rng.getrandbits(32),
    }


def make_cases(p, seed, n, families=None):
    rng = random.Random(seed)
    mem = None
    cases = []
    while len(cases) < n:
        fam = rng.choice(families) if families else None
        try:
            case = random_case(p, rng, mem, fam)
        except PMUProgramError:
            continue
        mem = case.pop("mem")
        cases.append(case)
    return cases


# -- batch runner: many cases on one simulator instance ----------------------------------

CLEAR_CYCLES = 3
FINISH_CYCLES = 24


def _timeout(case):
    words = sum(len(v) for v in case["inputs"].values()) + sum(case["expect"].values())
    return 2000 + 30 * words


async def _finish(io, case, res, quiet=FINISH_CYCLES):
    """After the harness loop returned (every expected output seen): offer the
    inputs it had not offered yet (a program may take words that produce no
    output, e.g. a partial buffer) with every output ready, until `quiet`
    cycles pass with nothing left to offer, so that the unit's input FIFOs are
    empty before the next case. Outputs seen here are extra words."""
    pos = dict(res["consumed"])
    outs = res["outputs"]
    for port in case["expect"]:
        io.set(port, "ready", 1)
    quiet_for = 0
    for _ in range(_timeout(case)):
        pending = False
        for port, items in case["inputs"].items():
            if pos[port] < len(items):
                io.set(port, "valid", 1)
                io.set(port, "payload", items[pos[port]])
                pending = True
            else:
                io.set(port, "valid", 0)
        await io.settle()
        for port, items in case["inputs"].items():
            if pos[port] < len(items) and io.get(port, "ready"):
                pos[port] += 1
        for port in case["expect"]:
            if io.get(port, "valid"):
                outs[port].append(io.get(port, "payload"))
        await io.tick()
        quiet_for = 0 if pending else quiet_for + 1
        if quiet_for >= quiet:
            break
    res["consumed"] = pos


async def run_batch(io, cases):
    """Run `cases` one after another on one DUT through the harness loop.
    `io` is the harness IO (set/get/settle/tick)."""
    results = []
    for case in cases:
        out = await drive(io, static={"config": case["config"]}, inputs=case["inputs"],
                          expect=case["expect"], in_gap=case["in_gap"],
                          out_stall=case["out_stall"], seed=case["seed"],
                          timeout=_timeout(case), drain=4)
        await _finish(io, case, out)
        results.append(out)
        io.set("config", None, 0)           # en = 0: clear the PMU's state
        for path in case["inputs"]:
            io.set(path, "valid", 0)
        for _ in range(CLEAR_CYCLES):
            await io.tick()
    return results


class _PysimIO:
    def __init__(self, ctx, dut):
        self.ctx, self.dut = ctx, dut

    def _sig(self, path, member):
        name, _, rest = path.partition("[")
        port = getattr(self.dut, name)
        if rest:
            port = port[int(rest[:-1])]
        sig = port if member is None else getattr(port, member)
        return sig.as_value() if hasattr(sig, "as_value") else sig

    def set(self, path, member, value):
        self.ctx.set(self._sig(path, member), value)

    def get(self, path, member):
        return int(self.ctx.get(self._sig(path, member)))

    async def settle(self):
        pass

    async def tick(self):
        await self.ctx.tick()


def batch_pysim(p, cases):
    from amaranth.sim import Simulator
    dut = PMU(p)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    out = []

    async def bench(ctx):
        out.extend(await run_batch(_PysimIO(ctx, dut), cases))

    sim.add_testbench(bench)
    sim.run()
    return out


def _jsonable(cases):
    return [{k: v for k, v in c.items() if k != "outputs"} for c in cases]


def batch_compiled(p, cases, sim="verilator"):
    """Run a batch on a compiled model: the same cached model as
    ``run_streams(..., key=f"pmu-{p.name}")``; the cocotb entry point is
    :func:`pmu_batch` below."""
    from tessera.sim.backends import build_model, run_cocotb, simulator_env
    key = f"pmu-{p.name}"
    public = f'`verilator_config\npublic_flat_rw -module "{TOP_NAME}" -var "*"\n'
    with simulator_env(sim):
        d, _, _ = build_model(sim, top_name=TOP_NAME, key={"unit": key},
                              make_top=lambda: PMU(p), public=public, label=f"unit-{key}")
        res = run_cocotb(sim, d, top_name=TOP_NAME, test_module=__name__,
                         payload={"cases": _jsonable(cases)})
    return res["results"]


try:
    import cocotb
except ImportError:          # pragma: no cover
    cocotb = None

if cocotb is not None:
    @cocotb.test()
    async def pmu_batch(dut):
        """cocotb entry point of :func:`batch_compiled` (not a pytest test)."""
        from cocotb.clock import Clock
        from cocotb.triggers import FallingEdge, Timer

        from tessera.sim.cocotb_streams import CocotbIO

        with open(os.environ["TESSERA_SCRIPT"]) as f:
            cases = json.load(f)["cases"]
        Clock(dut.clk, 10, unit="ns").start()
        io = CocotbIO(dut)
        ports = {p for c in cases for p in c["inputs"]}
        for path in ports:
            io.set(path, "valid", 0)
        io.set("config", None, 0)
        dut.rst.value = 1
        await Timer(25, "ns")
        dut.rst.value = 0
        await FallingEdge(dut.clk)
        results = await run_batch(io, cases)
        with open(os.environ["TESSERA_RESULT"], "w") as f:
            json.dump({"results": results}, f)


def check_results(cases, results):
    assert len(results) == len(cases)
    for i, (case, res) in enumerate(zip(cases, results)):
        where = f"case {i} ({case['family']}, seed {case['seed']})"
        assert not res["timed_out"], f"{where}: timed out; got " + str(
            {k: len(v) for k, v in res["outputs"].items()}) + f", expected {case['expect']}"
        for port, want in case["outputs"].items():
            got = res["outputs"][port]
            assert got == want, f"{where}: {port} differs from the model " \
                f"(first difference at word {next((j for j, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}, " \
                f"got {len(got)} words, expected {len(want)})"
        for port, words in case["inputs"].items():
            assert res["consumed"][port] == len(words), f"{where}: {port} consumed " \
                f"{res['consumed'][port]} of {len(words)}"


# -- contract, configuration, capacity -------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
def test_contract_and_config_size(name):
    p = PRESETS[name]
    pmu = PMU(p)
    pmu._MustUse__silence = True            # only the signature is looked at
    members = dict(pmu.signature.members)
    for key, member in unit_signature_members(p, PMU.config_layout(p)).items():
        assert members[key] == member
    assert set(members) - set(unit_signature_members(p, PMU.config_layout(p))) == {
        "perf_active", "perf_starved", "perf_stalled"}
    words = config_words(PMU.config_layout(p))
    assert words <= 60, f"{name}: PMU config is {words} words"


def test_pass_config_values():
    for net in ("vec", "scal", "ctrl"):
        for sel in range(2):
            cfg = PMU.pass_config(SMALL, net, sel)
            PMU.config_layout(SMALL).const(cfg)
    with pytest.raises(ValueError, match="input 2 does not exist"):
        PMU.pass_config(SMALL, "vec", 2)
    with pytest.raises(ValueError, match="unknown network"):
        PMU.pass_config(SMALL, "foo", 0)


def test_bad_params():
    with pytest.raises(TypeError, match="FabricParams"):
        PMU("small")
    with pytest.raises(ValueError, match="power-of-two bank count"):
        PMU(FabricParams(lanes=6, pmu_banks=6))


def test_capacity_and_tile_fit():
    p = PRESETS["default"]
    assert PMU.capacity(p) == 8 * 1024
    assert PMU.check_tile_fits(p, 4096, 2) == {"buf_lg": 9, "nbuf_m1": 1, "rows": 512}
    assert PMU.check_tile_fits(p, 100, 3)["rows"] == 16
    with pytest.raises(ValueError, match=r"4097 words x 2 buffers does not fit.*1024 rows.*8192 words"):
        PMU.check_tile_fits(p, 4097, 2)
    with pytest.raises(ValueError, match="buffers must be >= 1"):
        PMU.check_tile_fits(p, 16, 0)


def test_model_rejects_racy_and_bad_programs():
    p = SMALL
    # the read side leaves its 4-row buffer while another buffer may be in use
    cfg = pmu_config(p, wr=ag(p, [(4, 1, 0)]), rd=ag(p, [(5, 1, 0)]), nbuf=2, buf_lg=2)
    words = [vec_payload(p, [i] * 4) for i in range(8)]
    with pytest.raises(PMUProgramError, match="relative row 4, outside its buffer of 4 rows"):
        PMUModel(p, cfg).run({"i_vec[0]": words})
    with pytest.raises(ValueError, match="3 buffers of 128 rows"):
        PMUModel(p, pmu_config(p, wr=ag(p, [(4, 1, 0)]), nbuf=3, buf_lg=7))
    with pytest.raises(ValueError, match="vec bypass owns"):
        PMUModel(p, pmu_config(p, rd=ag(p, [(4, 1, 0)]), bypass={"vec": {"en": 1, "sel": 0}}))


# -- the counter chain -------------------------------------------------------------------------

def test_counter_chain_matches_model():
    from amaranth.sim import Simulator
    rng = random.Random(7)
    dut = CounterChain(3, 8)
    configs = []
    for _ in range(12):
        configs.append([{"start": rng.randint(0, 6), "stop": rng.randint(0, 12),
                         "stride": rng.randint(1, 4)} for _ in range(3)])
    # The edges of the 8-bit offsets: a stride of 0 (a counter that never
    # moves), strides and limits near 2**8, where off + stride may pass 255.
    # (A counter of stride 0 ends only if start >= stop: it runs once.)
    for _ in range(12):
        cfg = []
        for _ in range(3):
            c = {"start": rng.choice([0, 1, rng.randint(0, 255)]),
                 "stop": rng.choice([255, 254, rng.randint(0, 255)]),
                 "stride": rng.choice([0, 255, 128, rng.randint(1, 255)])}
            if c["stride"] == 0:
                c["stop"] = rng.randint(0, c["start"])
            cfg.append(c)
        configs.append(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def bench(ctx):
        for cfg in configs:
            ctx.set(dut.config, cfg)
            ctx.set(dut.clear, 1)
            await ctx.tick().repeat(2)          # limits are registered: two cycles
            ctx.set(dut.clear, 0)
            model = CounterChainModel(cfg, 8)
            trips = model.trips()
            steps = 0
            for cycle in range(3 * trips + 3):
                assert [ctx.get(dut.values[i]) for i in range(3)] == model.values, (cfg, cycle)
                assert [(ctx.get(dut.wrap) >> i) & 1 for i in range(3)] == [int(w) for w in model.wrap]
                assert [(ctx.get(dut.first) >> i) & 1 for i in range(3)] == [int(f) for f in model.first]
                assert [(ctx.get(dut.first_next) >> i) & 1 for i in range(3)] == \
                    [int(f) for f in model.first_next]
                assert ctx.get(dut.done) == model.done
                assert model.done == (steps % trips == trips - 1)
                go = rng.random() < 0.8
                ctx.set(dut.step, go)
                await ctx.tick()
                if go:
                    model.step()
                    steps += 1
            ctx.set(dut.step, 0)

    sim.add_testbench(bench)
    sim.run()


# -- the transposed read means K^T ------------------------------------------------------------

def _skewed_matrix_program(p, R, ncb, nbuf=1):
    B = p.pmu_banks
    wr = ag(p, [(ncb, 1, 0), (R, ncb, 1)])                              # rows, skewed
    rd = ag(p, [(B, 0, 1), (ncb, 1, 0), (R // B, B * ncb, 0)], lstride=ncb, last=1)
    rows = _pow2_at_least(R * ncb)
    return pmu_config(p, wr=wr, rd=rd, nbuf=nbuf, buf_lg=rows.bit_length() - 1)


@pytest.mark.parametrize("sim", ["pysim", "verilator"])
def test_transposed_read_is_k_transpose(need_sim, sim):
    need_sim(sim)
    p = SMALL
    B = p.pmu_banks
    rng = np.random.default_rng(3)
    R, ncb = 2 * B, 2                       # K: 8 keys x 8 dims, stored row-major, skewed
    K = rng.integers(-2**31, 2**31, size=(R, ncb * B), dtype=np.int64)
    cfg = _skewed_matrix_program(p, R, ncb)
    words = [vec_payload(p, K[r, cb * B:(cb + 1) * B]) for r in range(R) for cb in range(ncb)]
    want = PMUModel(p, cfg).run({"i_vec[0]": words})["o_vec[0]"]
    # the spec: vector (rb, c) is column c of key block rb, i.e. a row of K^T
    KT = [(K[rb * B:(rb + 1) * B, c] & 0xFFFF_FFFF).tolist()
          for rb in range(R // B) for c in range(ncb * B)]
    assert [unpack_vec(p, w)[0] for w in want] == KT
    res = run_streams(lambda: PMU(p), sim=sim, key="pmu-small",
                      static={"config": encode_config(p, cfg)}, inputs={"i_vec[0]": words},
                      expect={"o_vec[0]": len(want)}, in_gap=0.2, out_stall=0.3, seed=11)
    assert not res.timed_out
    np.testing.assert_array_equal(np.array(res.outputs["o_vec[0]"], dtype=object),
                                  np.array(want, dtype=object))


@pytest.mark.parametrize("sim", ["pysim", "verilator"])
def test_bypass_forwards_every_network(need_sim, sim):
    need_sim(sim)
    p = SMALL
    cfg = {}
    for net, sel in (("vec", 1), ("scal", 0), ("ctrl", 1)):
        cfg.update({"bypass": {**cfg.get("bypass", {}), **PMU.pass_config(p, net, sel)["bypass"]}})
    rng = random.Random(5)
    ins = {
        "i_vec[1]": [vec_payload(p, [rng.getrandbits(32) for _ in range(4)], i & 1) for i in range(30)],
        "i_scal[0]": [scal_payload(rng.getrandbits(32), i % 3 == 0) for i in range(30)],
        "i_ctrl[1]": [i % 2 for i in range(30)],
    }
    res = run_streams(lambda: PMU(p), sim=sim, key="pmu-small",
                      static={"config": encode_config(p, cfg)}, inputs=ins,
                      expect={"o_vec[0]": 30, "o_scal[0]": 30, "o_ctrl[0]": 30},
                      in_gap=0.3, out_stall=0.3, seed=2)
    assert res.outputs == {"o_vec[0]": ins["i_vec[1]"], "o_scal[0]": ins["i_scal[0]"],
                           "o_ctrl[0]": ins["i_ctrl[1]"]}


# -- random programs: RTL == model ---------------------------------------------------------------

PYSIM_BATCHES = [(1000 + b, 35) for b in range(6)]          # 210 cases
VERILATOR_BATCHES = [(2000 + b, 55) for b in range(4)]      # 220 cases


@pytest.mark.parametrize("seed,n", PYSIM_BATCHES)
def test_random_programs_pysim(seed, n):
    cases = make_cases(SMALL, seed, n)
    check_results(cases, batch_pysim(SMALL, cases))


@pytest.mark.parametrize("seed,n", VERILATOR_BATCHES)
def test_random_programs_verilator(need_sim, seed, n):
    need_sim("verilator")
    cases = make_cases(SMALL, seed, n)
    check_results(cases, batch_compiled(SMALL, cases))


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["small", "default"])
@pytest.mark.parametrize("batch", range(8))
def test_random_programs_sweep(need_sim, preset, batch):
    need_sim("verilator")
    p = PRESETS[preset]
    cases = make_cases(p, 5000 + 100 * batch + len(preset), 250)
    check_results(cases, batch_compiled(p, cases))


@pytest.mark.slow
@pytest.mark.parametrize("batch", range(4))
def test_random_programs_sweep_pysim(batch):
    cases = make_cases(SMALL, 9000 + batch, 150)
    check_results(cases, batch_pysim(SMALL, cases))


def test_every_family_is_generated():
    cases = make_cases(SMALL, 1000, 35) + make_cases(SMALL, 1001, 35)
    fams = {c["family"] for c in cases}
    assert fams >= {"rows", "strided", "transposed", "scalar_in", "scalar_out", "fifo",
                    "random", "sink", "persist"}


# -- throughput (issue 4's figures; scripts/bench_pmu.py prints them at full size) -------------

def _bench():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "scripts" / "bench_pmu.py"
    spec = importlib.util.spec_from_file_location("bench_pmu", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("pattern", ["rows", "strided", "transposed"])
def test_concurrent_read_write_throughput(pattern):
    r = _bench().measure_pattern(SMALL, pattern, buffers=12, vectors=16, sim="pysim")
    assert r["read_per_cycle"] >= 0.99, r
    assert r["write_per_cycle"] >= 0.99, r


@pytest.mark.parametrize("reuse", [1, 4])
def test_double_buffer_keeps_consumer_busy(reuse):
    r = _bench().measure_double_buffer(SMALL, tiles=12, vectors=16, reuse=reuse, sim="pysim")
    assert r["consumer_busy"] >= 0.95, r


@pytest.mark.parametrize("nbuf,out_stall", [(2, 0.0), (3, 0.0), (2, 0.4)])
def test_token_handoff_between_two_pmus(nbuf, out_stall):
    p, n = SMALL, 16
    rows, res = _bench().run_pmu_pair(p, n=n, nbuf=nbuf, out_stall=out_stall)
    assert not res.timed_out
    got = np.array([unpack_vec(p, w)[0] for w in res.outputs["o"]])
    np.testing.assert_array_equal(got, np.array(rows))
    assert [unpack_vec(p, w)[1] for w in res.outputs["o"]] == [int(i % n == n - 1)
                                                               for i in range(len(rows))]
    if out_stall == 0.0:
        t = res.transfers["o"]
        busy = (len(t) - 1) / (t[-1] - t[0])
        # Double buffering over a credit loop loses the loop's round trip
        # (8 cycles PMU to PMU) per tile; a third buffer hides it.
        floor = 0.95 if nbuf >= 3 else n / (n + 9)
        assert busy >= floor, f"consumer busy {busy:.3f} with {nbuf} buffers"


def test_output_skid_keeps_order_and_rules():
    from amaranth.lib import data
    from tessera.hw.pmu import OutputSkid
    layout = data.StructLayout({"data": 20, "last": 1})
    rng = random.Random(6)
    items = [rng.getrandbits(21) for _ in range(300)]
    for gap, stall in ((0.0, 0.0), (0.3, 0.5), (0.0, 0.7)):
        res = run_streams(lambda: OutputSkid(layout), inputs={"i": items},
                          expect={"o": len(items)}, in_gap=gap, out_stall=stall, seed=3)
        assert res.outputs["o"] == items
        if gap == stall == 0.0:
            assert res.transfers["o"][-1] - res.transfers["o"][0] == len(items) - 1


def test_token_counter_saturates_without_losing_tokens():
    """30 tokens offered at once: the counter holds 15, the rest wait in the
    input FIFO and upstream; every one of them still opens one read."""
    p = SMALL
    cfg = pmu_config(p, wr=ag(p, [(1, 0, 0)]), rd=ag(p, [(1, 0, 0)], last=p.counters + 1),
                     nbuf=4, buf_lg=0,
                     ctrl_in={1: {"side": RD, "init": 0}},
                     ctrl_out={0: {"event": EV_RELEASED, "last": 1}})
    words = [vec_payload(p, [i, i + 1, i + 2, i + 3], i == 29) for i in range(30)]
    inputs = {"i_vec[0]": words, "i_ctrl[1]": [0] * 30}
    want = PMUModel(p, cfg).run(inputs)
    assert want["o_vec[0]"] == words and want["o_ctrl[0]"] == [0] * 29 + [1]
    res = run_streams(lambda: PMU(p), static={"config": encode_config(p, cfg)}, inputs=inputs,
                      expect={"o_vec[0]": 30, "o_ctrl[0]": 30}, in_gap=0.0, out_stall=0.8, seed=1)
    assert res.outputs == {"o_vec[0]": want["o_vec[0]"], "o_ctrl[0]": want["o_ctrl[0]"]}


def test_perf_signals():
    """active while accesses happen, starved while waiting for input, stalled
    while the output is blocked."""
    from amaranth.sim import Simulator
    p = SMALL
    cfg = encode_config(p, pmu_config(p, wr=ag(p, [(4, 1, 0)]), rd=ag(p, [(4, 1, 0)]),
                                      nbuf=2, buf_lg=2))
    dut = PMU(p)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    seen = []

    async def bench(ctx):
        ctx.set(dut.config.as_value(), cfg)
        await ctx.tick().repeat(6)
        seen.append(("idle", ctx.get(dut.perf_active), ctx.get(dut.perf_starved),
                     ctx.get(dut.perf_stalled)))
        port = dut.i_vec[0]
        for i in range(16):             # 4 buffers; nobody takes the output
            ctx.set(port.valid, 1)
            ctx.set(port.payload.as_value(), vec_payload(p, [i] * 4))
            await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)
        await ctx.tick().repeat(12)
        seen.append(("blocked", ctx.get(dut.perf_active), ctx.get(dut.perf_starved),
                     ctx.get(dut.perf_stalled)))

    sim.add_testbench(bench)
    sim.run()
    assert seen == [("idle", 0, 1, 0), ("blocked", 0, 0, 1)]
