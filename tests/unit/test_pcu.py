"""The PCU against its bit-accurate model (tessera.sim.pcu_model) and NumPy:
directed kernels (dot product, lane reductions, special functions, tokens,
bypass), random programs with random data and random backpressure on pysim
and Verilator, and throughput.

Backends: the random programs run 200 per CI run on pysim (and 60 on the
preset), all in ONE simulation (a reset between programs; elaborating the
PCU costs ~0.5 s, so a simulation per program would dominate), and 60 on
Verilator through the stream harness (one cached model for FULL; ~0.35 s per
run). The slow sweep runs 1000 more on each backend.

FULL is the PCU of preset "small" with every feature (two multiplier stages,
four registers, the SFU tail). The preset itself drops them to place and
route on an LFE5U-85F (hw/params.py, docs/area.md), so the random programs,
the special functions and the throughput run on FULL; the directed programs
that need none of them run on the preset.
"""

import random

import numpy as np
import pytest
from amaranth import ClockDomain, Elaboratable, Module, Signal
from amaranth.lib import wiring

from tessera.hw.config import config_words
from tessera.hw.links import NETWORKS, network_layout
from tessera.hw.params import PRESETS, preset
from tessera.hw.pcu import (ACC_OPERAND_OPS, LANE_COPIES, PCU, AccInit, Op, bc_code, last_code, mul_stages,
                            pcu_config_layout, src_code, xl_level)
from tessera.hw.sfu import SFU_EXP2, SFU_RECIP
from tessera.hw.unit import CONFIG_DELAY, unit_port_counts, unit_signature_members
from tessera.sim.harness import drive, run_streams
from tessera.sim.pcu_model import PCUModel

SMALL = preset("small")
FULL = SMALL.replace(name="small-full", pcu_mul_stages=(0, 2), pcu_sfu=True, pcu_regs=4,
                     pcu_rescale=True)
# stage 0 without a multiplier (its group starts are decided in the firing cycle)
MUL_LATE = SMALL.replace(name="small-mul-late", pcu_mul_stages=(1,))
MASK = 0xFFFF_FFFF


def s32(x):
    x &= MASK
    return x - (1 << 32) if x >> 31 else x


def ports(params, direction):
    out = []
    for net in NETWORKS:
        n_in, n_out = unit_port_counts(params, net)
        out += [f"{direction}_{net}[{k}]" for k in range(n_in if direction == "i" else n_out)]
    return out


# -- contract ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
def test_config_is_compact(name):
    """<= 100 config words per PCU (the default fabric must load in <= 500
    cycles at 4 words per cycle)."""
    p = preset(name)
    words = config_words(pcu_config_layout(p))
    assert words <= 100, f"{name}: {words} words"


def test_signature_follows_the_unit_contract():
    p = SMALL
    pcu = PCU(p)
    expected = unit_signature_members(p, PCU.config_layout(p))
    members = dict(pcu.signature.members.items())
    for name in ("perf_active", "perf_starved", "perf_stalled"):
        assert members.pop(name).flow == wiring.Out
    assert members.keys() == expected.keys()
    for name, member in expected.items():
        assert members[name] == member, name


def test_pass_config_is_a_valid_config():
    p = SMALL
    layout = PCU.config_layout(p)
    for net in NETWORKS:
        n_in, _ = unit_port_counts(p, net)
        for sel in range(n_in):
            cfg = layout.const(PCU.pass_config(p, net, sel))
            assert getattr(cfg.bypass, net).en == 1 and getattr(cfg.bypass, net).sel == sel
    with pytest.raises(ValueError, match="unknown network"):
        PCU.pass_config(p, "audio", 0)
    with pytest.raises(ValueError, match="input 5 does not exist"):
        PCU.pass_config(p, "vec", 5)


def test_params_validation_names_the_field():
    with pytest.raises(ValueError, match="FabricParams.pcu_mul_stages has stage 4"):
        SMALL.replace(pcu_mul_stages=(4,))
    with pytest.raises(ValueError, match="FabricParams.pcu_mul_stages names a stage twice"):
        SMALL.replace(pcu_mul_stages=(1, -3))
    with pytest.raises(ValueError, match="FabricParams.pcu_regs must be an int in 1..4"):
        SMALL.replace(pcu_regs=5)
    with pytest.raises(TypeError, match="FabricParams.pcu_sfu must be a bool"):
        SMALL.replace(pcu_sfu=1)
    assert mul_stages(SMALL.replace(pcu_mul_stages=[-1])) == {SMALL.stages - 1}


# -- a testbench that runs many programs in one pysim simulation --------------------------

class _ResettableTop(Elaboratable):
    """The DUT in a sync domain whose reset the testbench drives, so that
    many programs can share one (expensive to elaborate) simulation."""

    def __init__(self, dut):
        self.dut = dut
        self.rst = Signal()

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain()
        m.d.comb += cd.rst.eq(self.rst)
        m.submodules.dut = self.dut
        return m


class _IO:
    def __init__(self, ctx, dut):
        self.ctx, self.dut = ctx, dut

    def _sig(self, path, member):
        name, _, index = path.partition("[")
        obj = getattr(self.dut, name)
        if index:
            obj = obj[int(index[:-1])]
        sig = obj if member is None else getattr(obj, member)
        return sig.as_value() if hasattr(sig, "as_value") else sig

    def set(self, path, member, value):
        self.ctx.set(self._sig(path, member), value)

    def get(self, path, member):
        return int(self.ctx.get(self._sig(path, member)))

    async def settle(self):
        pass

    async def tick(self):
        await self.ctx.tick()


def run_many_pysim(params, jobs, *, timeout=5000, drain=40):
    """Run each job {static, inputs, expect, seed, in_gap, out_stall} on one
    PCU simulation with a reset in between; returns the list of drive() results."""
    from amaranth.sim import Simulator
    dut = PCU(params)
    top = _ResettableTop(dut)
    sim = Simulator(top)
    sim.add_clock(1e-8)
    results = []
    all_in, all_out = ports(params, "i"), ports(params, "o")

    async def bench(ctx):
        io = _IO(ctx, dut)
        for job in jobs:
            for path in all_in:
                io.set(path, "valid", 0)
            for path in all_out:
                io.set(path, "ready", 0)
            ctx.set(top.rst, 1)
            for _ in range(2):
                await ctx.tick()        # (.repeat() raises DomainReset here)
            ctx.set(top.rst, 0)
            results.append(await drive(io, static=job["static"], inputs=job["inputs"],
                                       expect=job["expect"], in_gap=job["in_gap"],
                                       out_stall=job["out_stall"], seed=job["seed"],
                                       timeout=timeout, drain=drain))

    sim.add_testbench(bench)
    sim.run()
    return results


# -- random programs ----------------------------------------------------------------------

SPECIAL = [0, 1, MASK, 0x8000_0000, 0x7FFF_FFFF, 0xFFFF, 0x8000, 0x10000]


def rand_word(rng, scale=None):
    """A data word: `scale` bits of magnitude (a program's data profile), a
    special value now and then, 0 more often (so that SEL's test and the
    zero tests that travel with the words see both answers), full 32-bit
    noise when scale is None."""
    r = rng.random()
    if r < 0.08:
        return rng.choice(SPECIAL)
    if r < 0.14:
        return 0
    if scale is None or r < 0.21:
        return rng.getrandbits(32)
    return rng.randrange(-(1 << scale), 1 << scale) & MASK


def random_program(params, rng):
    """A random configuration and random input streams (payload bits)."""
    p = params
    model = PCUModel(p)
    C, NR, L = p.counters, p.pcu_regs, p.lanes
    n_src = NR + 4 + (1 if rng.random() < 0.1 else 0)     # sometimes an unused code
    n_last = 1 + C + p.unit_vec_in + p.unit_scal_in
    muls = mul_stages(p)

    counters = []
    for i in range(C):
        trips = rng.choice([1, 1, 2, 2, 3]) if i < C - 1 else rng.choice([1, 2])
        stride = rng.choice([1, 1, 2, 3, 7])
        start = rng.choice([0, 0, 1, 5, 0xFFF0])
        stop = start + stride * (trips - 1) + 1 + rng.randrange(stride)
        if rng.random() < 0.1:
            stop = start           # start >= stop: one iteration
        counters.append({"start": start, "stop": min(stop, 0xFFFF), "stride": stride})

    # Half the stages extend a chain of ops that keep information (so that
    # most results reach an output and a wrong bit shows); the rest are noise.
    chain_ops = [Op.PASS, Op.ADD, Op.SUB, Op.XOR, Op.MAX, Op.MIN, Op.SHL, Op.SHR, Op.SEL,
                 Op.RSA]
    stages = []
    live = rng.randrange(min(NR, p.unit_vec_in))
    first_live = live
    for k in range(p.stages):
        r = rng.random()
        chain = r < 0.55
        if chain:
            op = rng.choice(chain_ops + ([Op.MUL, Op.MAC, Op.QMUL] * 2 if k in muls else []))
        elif r < 0.65:
            op = Op.NOP
        elif r < 0.68:
            op = rng.randrange(max(Op) + 1, 32)  # undefined: writes 0
        else:
            op = rng.choice([o for o in Op if o != Op.NOP])   # MUL ops give 0 off mul stages
        const = rand_word(rng, rng.choice([3, 8, 16, None]))
        a = live if chain or rng.random() < 0.3 else rng.randrange(n_src)
        if chain and rng.random() < 0.15:
            a = NR + 1      # ACC: the op folds its own history (e.g. SHL of ACC)
        b = rng.randrange(n_src)
        if chain and op in (Op.SHL, Op.SHR):
            b, const = NR, rng.randrange(0, 40)          # BC = const: a modest shift
        if chain:
            dst = live if rng.random() < 0.5 else rng.randrange(NR)
            live = dst if op != Op.NOP else live
        else:       # noise mostly spares the live register
            others = [j for j in range(NR) if j != live]
            dst = rng.choice(others) if others and rng.random() < 0.8 else rng.randrange(NR)
        stages.append({
            "op": int(op), "a": a, "b": b, "c": rng.randrange(n_src), "dst": dst,
            "bc": 0 if chain and b == NR else rng.randrange(1 + p.unit_scal_in + C),
            "shift": rng.choice([0, 1, 4, 8, 15] + ([] if chain else [31])),
            "acc_level": rng.randrange(C + 1), "acc_init": rng.randrange(4),
            "acc_a": int(rng.random() < 0.2), "const": const,
        })

    def out_src():
        r = rng.random()
        if r < 0.45:
            return live
        if r < 0.75 and p.pcu_sfu:
            return NR                            # the special-function tail
        return rng.randrange(NR + 1)

    def data_in():
        return {"en": int(rng.random() < 0.6), "level": rng.randrange(C + 1)}

    cfg = {
        "en": int(rng.random() < 0.97),
        "counters": counters,
        "vec_in": [data_in() for _ in range(p.unit_vec_in)],
        "scal_in": [data_in() for _ in range(p.unit_scal_in)],
        "ctrl_in": [{"en": int(rng.random() < 0.3), "level": rng.randrange(C + 1),
                     "init": rng.choice([0, 0, 1, 2, 15])} for _ in range(p.unit_ctrl_in)],
        "stages": stages,
        "vec_out": [{"en": int(rng.random() < 0.85), "src": out_src(),
                     "level": rng.randrange(C + 1), "last": rng.randrange(n_last)}
                    for _ in range(p.unit_vec_out)],
        "scal_out": [{"en": int(rng.random() < 0.6), "src": out_src(),
                      "lane": rng.randrange(L), "level": rng.randrange(C + 1),
                      "last": rng.randrange(n_last)} for _ in range(p.unit_scal_out)],
        "ctrl_out": [{"en": int(rng.random() < 0.4), "level": rng.randrange(C + 1),
                      "last": rng.randrange(n_last)} for _ in range(p.unit_ctrl_out)],
    }
    if p.pcu_sfu:
        op = rng.choice([0, SFU_EXP2, SFU_EXP2, SFU_RECIP, SFU_RECIP, 3])
        shifts = {SFU_EXP2: [0, 8, 14, 14, 16, 20, 31], SFU_RECIP: [0, 8, 14, 16, 30, 30, 31]}
        cfg["tail"] = {"op": op, "src": live if rng.random() < 0.7 else rng.randrange(NR),
                       "shift": rng.choice(shifts.get(op, [0, 31]))}
    bypass = {}
    for net in NETWORKS:
        if rng.random() < 0.12:
            bypass[net] = {"en": 1, "sel": rng.randrange(unit_port_counts(p, net)[0])}
    cfg["bypass"] = bypass
    # something must limit the iterations
    if first_live < p.unit_vec_in and rng.random() < 0.85:
        cfg["vec_in"][first_live]["en"] = 1
    free = [(net, j) for net in NETWORKS for j in range(unit_port_counts(p, net)[0])
            if not (net in bypass and bypass[net]["sel"] == j)]
    if not any(cfg[f"{net}_in"][j]["en"] for net, j in free):
        if free:
            net, j = rng.choice(free)
            cfg[f"{net}_in"][j]["en"] = 1
        else:
            cfg["en"] = 0

    # the program's data profile: magnitudes that keep products, shifts and
    # the special functions out of saturation most of the time
    scale = rng.choice([4, 10, 16, 20, 24, None])
    inputs = {}
    for j in range(p.unit_vec_in):
        n = rng.randrange(0, 20)
        inputs[f"i_vec[{j}]"] = [model.pack("vec", [rand_word(rng, scale) for _ in range(L)],
                                            rng.random() < 0.3) for _ in range(n)]
    for j in range(p.unit_scal_in):
        n = rng.randrange(0, 20)
        inputs[f"i_scal[{j}]"] = [model.pack("scal", rand_word(rng, scale), rng.random() < 0.3)
                                  for _ in range(n)]
    for j in range(p.unit_ctrl_in):
        n = rng.randrange(0, 6)
        inputs[f"i_ctrl[{j}]"] = [int(rng.random() < 0.5) for _ in range(n)]
    return cfg, inputs


def make_jobs(params, seed, count):
    rng = random.Random(seed)
    model = PCUModel(params)
    layout = PCU.config_layout(params)
    jobs = []
    for i in range(count):
        cfg, inputs = random_program(params, rng)
        res = model.run(cfg, inputs, max_iterations=500)
        assert res.iterations < 500, "random program does not terminate"
        jobs.append({"static": {"config": layout.const(cfg).as_bits()}, "inputs": inputs,
                     "expect": {k: len(v) for k, v in res.outputs.items()},
                     "want": res.outputs, "seed": seed * 100_003 + i, "cfg": cfg,
                     # back-to-back firing finds timing bugs, gaps find flow-control bugs
                     "in_gap": rng.choice([0.0, 0.0, 0.3, 0.6]),
                     "out_stall": rng.choice([0.0, 0.2, 0.5])})
    return jobs


def check_jobs(jobs, results, sim):
    bad = []
    for i, (job, res) in enumerate(zip(jobs, results)):
        if res["timed_out"] or res["outputs"] != job["want"]:
            bad.append(i)
    if bad:
        i = bad[0]
        job, res = jobs[bad[0]], results[bad[0]]
        diff = {k: (res["outputs"][k], job["want"][k]) for k in job["want"]
                if res["outputs"][k] != job["want"][k]}
        raise AssertionError(f"{sim}: {len(bad)} of {len(jobs)} programs differ from the model "
                             f"(first: #{i}, timed_out={res['timed_out']}, config={job['cfg']}, "
                             f"inputs={job['inputs']}, rtl/model={diff})")


@pytest.mark.parametrize("p,n", [(FULL, 200), (SMALL, 60), (MUL_LATE, 40)],
                         ids=["full", "small", "mul-late"])
def test_random_programs_pysim(p, n):
    jobs = make_jobs(p, 1, n)
    results = run_many_pysim(p, jobs)
    check_jobs(jobs, results, "pysim")
    # the programs did something
    assert sum(len(v) for job in jobs for v in job["want"].values()) > 10 * n


def test_random_programs_pysim_with_lane_copies():
    """The PCU as place and route sees it (LANE_COPIES: per-lane copies of
    each stage's control) runs the same random programs to the same streams."""
    token = LANE_COPIES.set(True)
    try:
        jobs = make_jobs(FULL, 2, 60)
        results = run_many_pysim(FULL, jobs)
    finally:
        LANE_COPIES.reset(token)
    check_jobs(jobs, results, "pysim")


def test_random_programs_verilator(need_sim):
    need_sim("verilator")
    jobs = make_jobs(FULL, 2, 60)
    results = []
    for job in jobs:
        res = run_streams(lambda: PCU(FULL), sim="verilator", key="pcu-small-full",
                          static=job["static"], inputs=job["inputs"], expect=job["expect"],
                          in_gap=job["in_gap"], out_stall=job["out_stall"], seed=job["seed"],
                          timeout=5000, drain=40)
        results.append({"outputs": res.outputs, "timed_out": res.timed_out})
    check_jobs(jobs, results, "verilator")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["small", "small-full", "tiny", "default"])
def test_random_programs_pysim_sweep(name):
    p = FULL if name == "small-full" else preset(name)
    for seed in range(10, 15):
        jobs = make_jobs(p, seed, 200)
        check_jobs(jobs, run_many_pysim(p, jobs), f"pysim-{name}")


@pytest.mark.slow
def test_random_programs_verilator_sweep(need_sim):
    need_sim("verilator")
    for name in ["small-full", "small", "default"]:
        p = FULL if name == "small-full" else preset(name)
        jobs = make_jobs(p, 20, 500)
        results = []
        for job in jobs:
            res = run_streams(lambda: PCU(p), sim="verilator", key=f"pcu-{name}",
                              static=job["static"], inputs=job["inputs"], expect=job["expect"],
                              in_gap=job["in_gap"], out_stall=job["out_stall"],
                              seed=job["seed"], timeout=5000, drain=40)
            results.append({"outputs": res.outputs, "timed_out": res.timed_out})
        check_jobs(jobs, results, f"verilator-{name}")


# -- directed programs, checked against NumPy ---------------------------------------------

def run_program(params, cfg, inputs, sim="pysim", *, in_gap=0.3, out_stall=0.3, seed=0,
                key=None):
    """Run on the RTL, check it equals the model, return the outputs."""
    model = PCUModel(params)
    want = model.run(cfg, inputs).outputs
    bits = PCU.config_layout(params).const(cfg).as_bits()
    res = run_streams(lambda: PCU(params), sim=sim, key=key or f"pcu-{params.name}",
                      static={"config": bits}, inputs=inputs,
                      expect={k: len(v) for k, v in want.items()},
                      in_gap=in_gap, out_stall=out_stall, seed=seed, timeout=20_000, drain=30)
    assert not res.timed_out
    assert res.outputs == want
    return res, want, model


def unpack_all(model, port, words):
    net = port[2:].split("[")[0]
    return [model.unpack(net, w) for w in words]


def test_dot_product_is_gemm():
    """C = A @ B, int16 operands: one row of C per group of K iterations, A's
    element broadcast as a scalar, B's row as a vector, MAC into the lane
    accumulator that restarts when counter 0 wraps."""
    p = SMALL
    rng = np.random.default_rng(0)
    M, K, N = 3, 5, p.lanes
    A = rng.integers(-2 ** 15, 2 ** 15, (M, K))
    B = rng.integers(-2 ** 15, 2 ** 15, (K, N))
    model = PCUModel(p)
    cfg = {
        "en": 1,
        "counters": [{"start": 0, "stop": K, "stride": 1}, {"start": 0, "stop": M, "stride": 1}],
        "vec_in": [{"en": 1}], "scal_in": [{"en": 1}],
        "stages": [{"op": Op.MAC, "a": src_code(p, "r0"), "b": src_code(p, "bc"),
                    "c": src_code(p, "acc"), "dst": 1, "bc": bc_code(p, "s0"),
                    "acc_level": 1}],
        "vec_out": [{"en": 1, "src": 1, "level": 1, "last": last_code(p, "level2")}],
        "ctrl_out": [{"en": 1, "level": p.counters, "last": last_code(p, f"level{p.counters}")}],
    }
    inputs = {
        "i_vec[0]": [model.pack("vec", B[k]) for _ in range(M) for k in range(K)],
        "i_scal[0]": [model.pack("scal", int(A[i, k])) for i in range(M) for k in range(K)],
    }
    res, want, model = run_program(p, cfg, inputs)
    rows = unpack_all(model, "o_vec", res.outputs["o_vec[0]"])
    got = np.array([[s32(x) for x in row] for row, _ in rows])
    np.testing.assert_array_equal(got, A @ B)
    assert [last for _, last in rows] == [0, 0, 1]
    assert res.outputs["o_ctrl[0]"] == [1]          # one done token, marked last


def reduction_program(p, op):
    """Butterfly over log2(lanes) stages from stage 1; scalar out = lane 0."""
    stages = [{"op": Op.PASS, "a": src_code(p, "r0"), "dst": 1}]
    levels = (p.lanes - 1).bit_length()
    for k in range(1, 1 + levels):
        stages.append({"op": op, "a": src_code(p, "r1"), "b": src_code(p, "xl"), "dst": 1})
    return {"en": 1, "counters": [{"stop": 1, "stride": 1}], "vec_in": [{"en": 1}],
            "stages": stages,
            "scal_out": [{"en": 1, "src": 1, "lane": p.lanes - 1}],
            "vec_out": [{"en": 1, "src": 1}]}


@pytest.mark.parametrize("op", [Op.ADD, Op.MAX])
def test_lane_reduction(op):
    p = SMALL
    model = PCUModel(p)
    rng = np.random.default_rng(int(op))
    x = rng.integers(-2 ** 31, 2 ** 31, (20, p.lanes))
    inputs = {"i_vec[0]": [model.pack("vec", row) for row in x]}
    res, _, _ = run_program(p, reduction_program(p, op), inputs, seed=int(op))
    got = [s32(v) for v, _ in unpack_all(model, "o_scal", res.outputs["o_scal[0]"])]
    if op == Op.ADD:
        want = [s32(int(v)) for v in x.sum(axis=1)]
    else:
        want = list(x.max(axis=1))
    assert got == want
    vec = unpack_all(model, "o_vec", res.outputs["o_vec[0]"])
    assert all(len(set(row)) == 1 for row, _ in vec)   # every lane holds the result


@pytest.mark.parametrize("p,k", [(SMALL, 0), (SMALL, 1), (MUL_LATE, 0), (MUL_LATE, 1)],
                         ids=["mul-stage0", "stage1", "stage0", "mul-stage1"])
def test_running_max_resets_on_wrap(p, k):
    """acc_init MIN + MAX with ACC: a per-lane running max over groups of 4,
    in stage k (with and without a multiplier: a group's start is decided
    in different cycles)."""
    model = PCUModel(p)
    rng = np.random.default_rng(3)
    x = rng.integers(-1000, 1000, (12, p.lanes))
    cfg = {"en": 1, "counters": [{"stop": 4, "stride": 1}, {"stop": 3, "stride": 1}],
           "vec_in": [{"en": 1}],
           "stages": [{"op": Op.PASS, "a": src_code(p, "r0"), "dst": 0}] * k +
                     [{"op": Op.MAX, "a": src_code(p, "r0"), "b": src_code(p, "acc"), "dst": 1,
                       "acc_level": 1, "acc_init": AccInit.MIN}],
           "vec_out": [{"en": 1, "src": 1, "level": 1}]}
    res, _, _ = run_program(p, cfg, {"i_vec[0]": [model.pack("vec", r) for r in x]})
    got = np.array([[s32(v) for v in row] for row, _ in
                    unpack_all(model, "o_vec", res.outputs["o_vec[0]"])])
    np.testing.assert_array_equal(got, x.reshape(3, 4, p.lanes).max(axis=1))


@pytest.mark.parametrize("p,k", [(SMALL, 0), (SMALL, 1)], ids=["mul-stage", "stage"])
def test_sel_reads_acc_as_zero_in_c(p, k):
    """SEL tests c != 0 before its execute cycle, so c = ACC reads 0 (the
    programming model's rule, like MUL's a and b): SEL(a, b, ACC) is b even
    though the accumulator (initial value 5, then the results) is not 0;
    SEL(a, b, r0) with r0 = a lane's value picks per lane, and SEL(a, b, XL)
    by the partner lane's value (its operand a: r0, or BC = the constant,
    0 or 7)."""
    model = PCUModel(p)
    x = np.array([[3, 0, -2, 9]] * 6)[:, :p.lanes]
    partner = [lane ^ (1 << xl_level(p, k)) for lane in range(p.lanes)]
    # (a, b, c, constant, result)
    cases = [("r0", "bc", "acc", 7, np.full_like(x, 7)),
             ("r0", "bc", "r0", 7, np.where(x != 0, x, 7)),
             ("r0", "bc", "xl", 7, np.where(x[:, partner] != 0, x, 7)),
             ("bc", "r0", "xl", 7, np.full_like(x, 7)),
             ("bc", "r0", "xl", 0, x)]
    for a, b, c, const, want in cases:
        cfg = {"en": 1, "counters": [{"stop": 6, "stride": 1}], "vec_in": [{"en": 1}],
               "stages": [{"op": Op.PASS, "a": src_code(p, "r0"), "dst": 0}] * k +
                         [{"op": Op.SEL, "a": src_code(p, a), "b": src_code(p, b),
                           "c": src_code(p, c), "dst": 1, "const": const, "bc": 0,
                           "acc_level": 1, "acc_init": AccInit.CONST}],
               "vec_out": [{"en": 1, "src": 1}]}
        res, _, _ = run_program(p, cfg, {"i_vec[0]": [model.pack("vec", r) for r in x]})
        got = np.array([[s32(v) for v in row] for row, _ in
                        unpack_all(model, "o_vec", res.outputs["o_vec[0]"])])
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("p,k", [(SMALL, 0), (SMALL, 1)], ids=["mul-stage", "stage"])
@pytest.mark.parametrize("bc", ["s0", "c0"])
def test_sel_reads_a_broadcast_in_c(p, k, bc):
    """SEL(a, b, BC) with BC a scalar input or a counter value, some of them
    0: the broadcast's zero test, chosen a cycle early (in stage 0 from the
    scalar's test stored in its FIFO), picks a or b for every lane."""
    model = PCUModel(p)
    rng = np.random.default_rng(k)
    n = 8
    x = rng.integers(-50, 50, (n, p.lanes))
    scal = np.array([5, 0, -3, 0, 0, 9, 1, 0])
    test = scal if bc == "s0" else np.arange(n) % 3     # counter 0 counts 0, 1, 2, 0, ...
    cfg = {"en": 1, "counters": [{"stop": 3, "stride": 1}, {"stop": 3, "stride": 1}],
           "vec_in": [{"en": 1}], "scal_in": [{"en": 1}],
           "stages": [{"op": Op.PASS, "a": src_code(p, "r0"), "dst": 0}] * k +
                     [{"op": Op.SEL, "a": src_code(p, "r0"), "b": src_code(p, "lane"),
                       "c": src_code(p, "bc"), "bc": bc_code(p, bc), "dst": 1}],
           "vec_out": [{"en": 1, "src": 1}]}
    inputs = {"i_vec[0]": [model.pack("vec", r) for r in x],
              "i_scal[0]": [model.pack("scal", int(v)) for v in scal]}
    res, _, _ = run_program(p, cfg, inputs)
    got = np.array([[s32(v) for v in row] for row, _ in
                    unpack_all(model, "o_vec", res.outputs["o_vec[0]"])])
    want = np.where(test[:, None] != 0, x, np.arange(p.lanes)[None, :])
    np.testing.assert_array_equal(got, want)


@pytest.fixture(params=[False, True], ids=["shared", "lane-copies"])
def lane_copies(request):
    """The PCU as simulated, and as place and route sees it (LANE_COPIES:
    among others, the shifter's own copies of operand a and of the amount)."""
    token = LANE_COPIES.set(request.param)
    yield request.param
    LANE_COPIES.reset(token)


def _acc_reference(op, init, x):
    """What a stage `op(ACC, x)` gives over one group (rows of x), from its
    initial value: the accumulation for ACC_OPERAND_OPS, op(0, x) for the rest."""
    acc, out = np.full(x.shape[1], init, dtype=np.int64), []
    for row in x:
        a = acc if op in ACC_OPERAND_OPS else np.zeros_like(acc)
        r = {Op.PASS: a, Op.ADD: a + row, Op.SUB: a - row, Op.MAX: np.maximum(a, row),
             Op.MIN: np.minimum(a, row), Op.SHL: a << row, Op.SHR: a >> row,
             Op.AND: a & row, Op.OR: a | row, Op.XOR: a ^ row,
             Op.LT: (a < row).astype(np.int64), Op.EQ: (a == row).astype(np.int64)}[op]
        out.append(r)
        acc = r
    return out


@pytest.mark.parametrize("p,k", [(SMALL, 0), (SMALL, 1)], ids=["mul-stage", "stage"])
@pytest.mark.parametrize("op", [Op.PASS, Op.ADD, Op.SUB, Op.MAX, Op.MIN, Op.SHL, Op.SHR,
                                Op.AND, Op.OR, Op.XOR, Op.LT, Op.EQ],
                         ids=lambda o: o.name.lower())
def test_which_ops_read_acc(p, k, op, lane_copies):
    """ACC is an operand of PASS, ADD, SUB, MAX, MIN and SEL (and MAC's c):
    those accumulate over groups of 4 from a configured initial value. The
    shifts, the bitwise ops and the compares read it as 0 (their results are
    not what the accumulators load: the accumulation loop is the adder and one
    select). Both forms of the RTL: the shifter's copies of its operands hold
    the fetched values, never the result."""
    model = PCUModel(p)
    rng = np.random.default_rng(5)
    x = rng.integers(0, 4, (8, p.lanes))
    init = 0x0000_2C35
    cfg = {"en": 1, "counters": [{"stop": 4, "stride": 1}, {"stop": 2, "stride": 1}],
           "vec_in": [{"en": 1}],
           "stages": [{"op": Op.PASS, "a": src_code(p, "r0"), "dst": 0}] * k +
                     [{"op": op, "a": src_code(p, "acc"), "b": src_code(p, "r0"), "dst": 1,
                       "acc_level": 1, "acc_init": AccInit.CONST, "const": init}],
           "vec_out": [{"en": 1, "src": 1}]}
    res, _, _ = run_program(p, cfg, {"i_vec[0]": [model.pack("vec", r) for r in x]})
    got = np.array([[s32(v) for v in row] for row, _ in
                    unpack_all(model, "o_vec", res.outputs["o_vec[0]"])])
    want = np.array(_acc_reference(op, init, x[:4]) + _acc_reference(op, init, x[4:]))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("b, shift", [("acc", 8), ("acc", 1), ("r1", 8)])
def test_qmul_amount_is_its_shift(b, shift, lane_copies):
    """QMUL shifts by its configured `shift`, whatever b is: with b = ACC
    the product is 0 (a multiplier reads ACC as 0) and so is the result,
    although the accumulator (initial value 2, then the results) would be a
    shorter shift amount."""
    p = SMALL
    model = PCUModel(p)
    rng = np.random.default_rng(3)
    x = rng.integers(-3000, 3000, (6, 2, p.lanes))
    cfg = {"en": 1, "counters": [{"stop": 3, "stride": 1}, {"stop": 2, "stride": 1}],
           "vec_in": [{"en": 1}, {"en": 1}],
           "stages": [{"op": Op.QMUL, "a": src_code(p, "r0"), "b": src_code(p, b), "dst": 0,
                       "shift": shift, "acc_level": 1, "acc_init": AccInit.CONST, "const": 2}],
           "vec_out": [{"en": 1, "src": 0}]}
    res, _, _ = run_program(p, cfg, {f"i_vec[{j}]": [model.pack("vec", r) for r in x[:, j]]
                                     for j in range(2)})
    got = np.array([[s32(v) for v in row] for row, _ in
                    unpack_all(model, "o_vec", res.outputs["o_vec[0]"])])
    prod = x[:, 0] * x[:, 1] if b == "r1" else np.zeros_like(x[:, 0])
    np.testing.assert_array_equal(got, (prod + (1 << shift >> 1)) >> shift)


def test_online_rescale_with_delay_and_rsa():
    """The online-softmax state update in one PCU: stage 0 SUB(m, ACC) with
    acc_a (ACC is m one iteration late: how far the running max moved, from
    m_init at a group's first iteration), MIN 31 -> delta, then RSA:
    o = (o >> delta) + x, restarting per group of 5, against NumPy."""
    p = FULL
    model = PCUModel(p)
    rng = np.random.default_rng(11)
    G, B = 3, 5
    m = np.maximum.accumulate(rng.integers(-40, 40, (G, B)), axis=1)     # running maxima
    x = rng.integers(-2 ** 20, 2 ** 20, (G, B, p.lanes))
    m_init = -100
    cfg = {"en": 1, "counters": [{"stop": B, "stride": 1}, {"stop": G, "stride": 1}],
           "vec_in": [{"en": 1}], "scal_in": [{"en": 1}],
           "stages": [
               {"op": Op.SUB, "a": src_code(p, "bc"), "b": src_code(p, "acc"), "dst": 1,
                "bc": bc_code(p, "s0"), "acc_level": 1, "acc_init": AccInit.CONST,
                "acc_a": 1, "const": m_init & 0xFFFF_FFFF},
               {"op": Op.MIN, "a": src_code(p, "r1"), "b": src_code(p, "bc"), "dst": 1,
                "const": 31},
               {"op": Op.RSA, "a": src_code(p, "r0"), "b": src_code(p, "r1"), "dst": 0,
                "acc_level": 1}],
           "vec_out": [{"en": 1, "src": 0, "level": 1}]}
    inputs = {"i_vec[0]": [model.pack("vec", r) for r in x.reshape(G * B, p.lanes)],
              "i_scal[0]": [model.pack("scal", int(v)) for v in m.reshape(-1)]}
    res, _, _ = run_program(p, cfg, inputs, seed=11)
    got = np.array([[s32(v) for v in row] for row, _ in
                    unpack_all(model, "o_vec", res.outputs["o_vec[0]"])])
    want = np.zeros((G, p.lanes), dtype=np.int64)
    for g in range(G):
        o, prev = np.zeros(p.lanes, dtype=np.int64), m_init
        for b in range(B):
            delta = min(int(m[g, b]) - prev, 31)
            o, prev = (o >> delta) + x[g, b], int(m[g, b])
        want[g] = o
    np.testing.assert_array_equal(got, want)


def test_softmax_numerator_exp2():
    """x - max (Q15.16) through the exp2 tail, in Q1.14 (ready for a 16-bit
    multiplier), within 2e-3 of NumPy."""
    p = FULL
    model = PCUModel(p)
    rng = np.random.default_rng(4)
    x = rng.uniform(-12, 12, (10, p.lanes))
    xq = np.round(x * 2 ** 16).astype(np.int64)
    # stage 0 holds the multiplier: rescale into Q15.16 with QMUL (x * 1.0 >> 0)
    levels = (p.lanes - 1).bit_length()
    stages = [{"op": Op.PASS, "a": src_code(p, "r0"), "dst": 1}]
    stages += [{"op": Op.MAX, "a": src_code(p, "r1"), "b": src_code(p, "xl"), "dst": 1}
               for _ in range(levels)]
    stages.append({"op": Op.SUB, "a": src_code(p, "r0"), "b": src_code(p, "r1"), "dst": 2})
    assert len(stages) <= p.stages
    cfg = {"en": 1, "counters": [{"stop": 1, "stride": 1}], "vec_in": [{"en": 1}],
           "stages": stages, "tail": {"op": SFU_EXP2, "src": 2, "shift": 14},
           "vec_out": [{"en": 1, "src": p.pcu_regs}]}
    res, _, _ = run_program(p, cfg, {"i_vec[0]": [model.pack("vec", r) for r in xq]})
    got = np.array([row for row, _ in unpack_all(model, "o_vec", res.outputs["o_vec[0]"])]) / 2 ** 14
    xr = xq / 2 ** 16
    want = np.exp2(xr - xr.max(axis=1, keepdims=True))
    assert np.abs(got - want).max() <= 2e-3


def test_reciprocal_tail():
    p = FULL
    model = PCUModel(p)
    rng = np.random.default_rng(5)
    a = rng.integers(2 ** 16, 2 ** 31, (10, p.lanes))     # Q16.16 in [1, 32768)
    cfg = {"en": 1, "counters": [{"stop": 1, "stride": 1}], "vec_in": [{"en": 1}],
           "tail": {"op": SFU_RECIP, "src": 0, "shift": 30},    # -> Q2.30
           "vec_out": [{"en": 1, "src": p.pcu_regs}],
           "scal_out": [{"en": 1, "src": p.pcu_regs, "lane": 2}]}
    res, _, _ = run_program(p, cfg, {"i_vec[0]": [model.pack("vec", r) for r in a]})
    got = np.array([row for row, _ in unpack_all(model, "o_vec", res.outputs["o_vec[0]"])])
    exact = 2.0 ** 46 / a
    assert (np.abs(got - exact) / exact).max() <= 1e-4
    scal = [v for v, _ in unpack_all(model, "o_scal", res.outputs["o_scal[0]"])]
    assert scal == list(got[:, 2])


def test_tokens_gate_runs_and_credits():
    """A run of 3 iterations needs a token on ctrl input 0 (a 'done' from
    upstream) and a credit on ctrl input 1 (initially 2: double buffering);
    ctrl output 0 is the done token of each run."""
    p = SMALL
    model = PCUModel(p)
    C = p.counters
    cfg = {"en": 1, "counters": [{"stop": 3, "stride": 1}],
           "ctrl_in": [{"en": 1, "level": C}, {"en": 1, "level": C, "init": 2}],
           "stages": [{"op": Op.ADD, "a": src_code(p, "bc"), "b": src_code(p, "lane"), "dst": 0,
                       "bc": bc_code(p, "c0")}],
           "vec_out": [{"en": 1, "src": 0, "last": last_code(p, "level1")}],
           "ctrl_out": [{"en": 1, "level": C, "last": last_code(p, f"level{C}")}]}
    # 5 upstream tokens but only 2 + 1 credits: 3 runs
    inputs = {"i_ctrl[0]": [0] * 5, "i_ctrl[1]": [0]}
    res, want, _ = run_program(p, cfg, inputs)
    assert len(res.outputs["o_vec[0]"]) == 9 and res.outputs["o_ctrl[0]"] == [1, 1, 1]
    rows = unpack_all(model, "o_vec", res.outputs["o_vec[0]"])
    assert [row[1] for row, _ in rows[:3]] == [1, 2, 3]
    assert [last for _, last in rows[:3]] == [0, 0, 1]


@pytest.mark.parametrize("net", NETWORKS)
def test_bypass_forwards_each_network(net):
    p = SMALL
    model = PCUModel(p)
    rng = random.Random(7)
    n_in, _ = unit_port_counts(p, net)
    sel = n_in - 1
    words = {"vec": lambda: model.pack("vec", [rng.getrandbits(32) for _ in range(p.lanes)],
                                       rng.random() < 0.5),
             "scal": lambda: model.pack("scal", rng.getrandbits(32), rng.random() < 0.5),
             "ctrl": lambda: rng.getrandbits(1)}[net]
    items = [words() for _ in range(40)]
    res, _, _ = run_program(p, PCU.pass_config(p, net, sel), {f"i_{net}[{sel}]": items},
                            in_gap=0.3, out_stall=0.4)
    assert res.outputs[f"o_{net}[0]"] == items


# -- throughput ----------------------------------------------------------------------------

def pipelined_program(p):
    """Every stage busy, a multiplier stage, the SFU tail: one vector in, one out."""
    stages = []
    for k in range(p.stages):
        if k in mul_stages(p):
            stages.append({"op": Op.QMUL, "a": src_code(p, "r0"), "b": src_code(p, "bc"),
                           "dst": 0, "shift": 4, "const": 3})
        else:
            stages.append({"op": Op.ADD, "a": src_code(p, "r0"), "b": src_code(p, "xl"),
                           "dst": 0})
    cfg = {"en": 1, "counters": [{"stop": 1000, "stride": 1}], "vec_in": [{"en": 1}],
           "stages": stages, "vec_out": [{"en": 1, "src": p.pcu_regs if p.pcu_sfu else 0}]}
    if p.pcu_sfu:
        cfg["tail"] = {"op": SFU_EXP2, "src": 0, "shift": 16}
    return cfg


@pytest.mark.parametrize("sim,n", [("pysim", 300), ("verilator", 3000)])
def test_throughput_one_vector_per_cycle(need_sim, sim, n):
    need_sim(sim)
    p = FULL
    model = PCUModel(p)
    rng = random.Random(11)
    items = [model.pack("vec", [rng.randrange(-1000, 1000) for _ in range(p.lanes)])
             for _ in range(n)]
    res, _, _ = run_program(p, pipelined_program(p), {"i_vec[0]": items}, sim=sim,
                            in_gap=0.0, out_stall=0.0)
    t = res.transfers["o_vec[0]"]
    rate = (len(t) - 1) / (t[-1] - t[0])
    assert rate >= 0.99, rate
    # the configuration's way in, FIFO + pipeline + skid, no more
    assert t[0] <= CONFIG_DELAY + PCU.latency(p) + 6


def test_perf_events():
    """perf_active pulses once per iteration; perf_stalled when an output has
    no credit (its queue holds or awaits out_depth words); perf_starved when
    the input is empty."""
    from .streams import consume, produce, run_testbenches
    p = SMALL
    model = PCUModel(p)
    cfg = {"en": 1, "counters": [{"stop": 4, "stride": 1}], "vec_in": [{"en": 1}],
           "stages": [{"op": Op.ADD, "a": src_code(p, "r0"), "b": src_code(p, "lane"),
                       "dst": 0}],
           "vec_out": [{"en": 1, "src": 0}]}
    n = 60
    rng = random.Random(5)
    items = [model.pack("vec", [rng.getrandbits(16) for _ in range(p.lanes)]) for _ in range(n)]
    want = model.run(cfg, {"i_vec[0]": items}).outputs["o_vec[0]"]
    dut = PCU(p)
    counts = {"active": 0, "stalled": 0, "starved": 0}
    got = []
    done = []

    async def config(ctx):
        ctx.set(dut.config.as_value(), PCU.config_layout(p).const(cfg).as_bits())

    async def producer(ctx):
        layout = network_layout(p, "vec")
        await produce(ctx, dut.i_vec[0], [layout.from_bits(x) for x in items],
                      rng=random.Random(1), idle=0.4)

    async def consumer(ctx):
        got.extend(await consume(ctx, dut.o_vec[0], n, rng=random.Random(2), stall=0.6))
        done.append(1)

    async def monitor(ctx):
        while not done:
            await ctx.tick()
            for name in counts:
                counts[name] += ctx.get(getattr(dut, f"perf_{name}"))

    run_testbenches(dut, config, producer, consumer, monitor)
    assert got == want
    assert counts["active"] == n
    assert counts["stalled"] > 0 and counts["starved"] > 0


def test_a_configuration_change_restarts_the_program():
    """The counter chain and the token counters restart on any change of the
    configuration (it takes effect CONFIG_DELAY cycles after it appears): a
    run stopped half way through a group (two of four inputs) leaves nothing
    behind for the next program. Here the next
    program is the same sum over groups of four with another initial value;
    its first output is the sum of its own first four inputs."""
    from .streams import consume, produce, run_testbenches
    p = SMALL
    model = PCUModel(p)

    def program(init):
        return {"en": 1, "counters": [{"stop": 4, "stride": 1}],
                "vec_in": [{"en": 1}],
                "stages": [{"op": Op.ADD, "a": src_code(p, "r0"), "b": src_code(p, "acc"),
                            "dst": 0, "acc_level": 1, "acc_init": AccInit.CONST,
                            "const": init}],
                "vec_out": [{"en": 1, "src": 0, "level": 1}]}

    rng = random.Random(9)
    first = [model.pack("vec", [rng.getrandbits(16) for _ in range(p.lanes)]) for _ in range(2)]
    items = [model.pack("vec", [rng.getrandbits(16) for _ in range(p.lanes)]) for _ in range(8)]
    want = model.run(program(1000), {"i_vec[0]": items}).outputs["o_vec[0]"]
    assert len(want) == 2
    dut = PCU(p)
    layout = network_layout(p, "vec")
    got = []

    async def bench(ctx):
        ctx.set(dut.config.as_value(), PCU.config_layout(p).const(program(7)).as_bits())
        await produce(ctx, dut.i_vec[0], [layout.from_bits(x) for x in first],
                      rng=random.Random(1), idle=0.0)
        await ctx.tick().repeat(30)            # both fired, half a group: no output
        assert not ctx.get(dut.o_vec[0].valid)
        ctx.set(dut.config.as_value(), PCU.config_layout(p).const(program(1000)).as_bits())
        # the old program runs until the change reaches the unit's copy
        await ctx.tick().repeat(CONFIG_DELAY)
        await produce(ctx, dut.i_vec[0], [layout.from_bits(x) for x in items],
                      rng=random.Random(2), idle=0.3)

    async def consumer(ctx):
        got.extend(await consume(ctx, dut.o_vec[0], 2, rng=random.Random(3), stall=0.3))

    run_testbenches(dut, bench, consumer)
    assert got == want
