"""Bit-accurate golden model of the PCU (:mod:`tessera.hw.pcu`) and of its
special functions (:mod:`tessera.hw.sfu`).

The model is untimed: it executes iterations in order, as the RTL does, and
returns every output stream as a list of raw payload integers (the bits of the
stream's payload layout, as the stream harness uses them). The RTL must equal
it word for word on every output, whatever the input gaps and backpressure.

    model = PCUModel(params)
    res = model.run(config, {"i_vec[0]": [...], "i_scal[0]": [...], "i_ctrl[0]": [...]})
    res.outputs["o_vec[0]"], res.consumed["i_vec[0]"], res.iterations

`config` is the PCU configuration as accepted by
``PCU.config_layout(params).const(...)`` (a dict) or its raw bits (an int).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..hw.links import NETWORKS
from ..hw.params import FabricParams
from ..hw.pcu import (COUNTER_WIDTH, AccInit, Op, mul_stages, pcu_config_layout,
                      acc_readers, xl_level)
from ..hw.sfu import (EXP2_D, EXP2_T, RECIP_BIAS, SATURATED, SEED_Q, SEED_Y, SFU_EXP2, SFU_RECIP)
from ..hw.unit import unit_port_counts

__all__ = ["exp2_fixed", "recip_fixed", "alu", "PCUModel", "ModelResult"]

MASK = 0xFFFF_FFFF
_T = np.array(EXP2_T, dtype=np.int64)
_D = np.array(EXP2_D + [0], dtype=np.int64)
_SY = np.array(SEED_Y, dtype=np.int64)
_SQ = np.array(SEED_Q, dtype=np.int64)


def _signed32(x):
    x = np.asarray(x, dtype=np.int64) & MASK
    return np.where(x >= 2 ** 31, x - 2 ** 32, x)


def _scale(v, rs):
    """Round-half-up right shift by rs > 0, left shift by -rs otherwise;
    saturate to SATURATED (exactly as step 5 of the SFU)."""
    v = np.asarray(v, dtype=np.int64)
    rs = np.asarray(rs, dtype=np.int64)
    r = np.clip(rs, 1, 36)
    right = (v + ((np.int64(1) << r) >> 1)) >> r
    ls = np.clip(-rs, 0, 15)
    left = v << ls
    out = np.where(rs > 0, right, np.where(rs < -15, SATURATED, left))
    return np.where(out >= 2 ** 31, SATURATED, out)


def exp2_fixed(x, shift: int):
    """EXP2 of the SFU: x signed Q15.16 (any int32 bits) -> round(2**x * 2**shift),
    saturated. Vectorized over NumPy arrays; returns int64 (uint32 values)."""
    xs = _signed32(x)
    xu = xs & MASK
    n = xs >> 16
    i = (xu >> 12) & 15
    r = xu & 0xFFF
    mant = _T[i] + ((_D[i] * r + 2048) >> 12)
    return _scale(mant, 15 - shift - n)


def _clz32(a):
    a = np.asarray(a, dtype=np.int64)
    lz = np.zeros_like(a)
    v = a.copy()
    for bits in (16, 8, 4, 2, 1):
        small = v < (np.int64(1) << (32 - bits))
        lz = np.where(small, lz + bits, lz)
        v = np.where(small, v << bits, v)
    return np.where(a == 0, 32, lz)


def recip_fixed(a, shift: int):
    """RECIP of the SFU: a positive int32 -> round(2**(shift+16) / a);
    a <= 0 and overflows saturate. Vectorized; returns int64 (uint32 values)."""
    a_s = _signed32(a)
    bad = a_s <= 0
    au = np.where(bad, 1, a_s)
    lz = _clz32(au)
    mn = (au << lz) & MASK
    idx = (mn >> 24) & 0x7F
    mh = mn >> 15
    y1 = (_SY[idx] << 18) - mh * _SQ[idx] + RECIP_BIAS
    out = _scale(y1, 48 - shift - lz)
    return np.where(bad, SATURATED, out)


def _s(x):
    x &= MASK
    return x - (1 << 32) if x & 0x8000_0000 else x


def alu(op: int, a: int, b: int, c: int, *, shift: int, has_mul: bool, mul_width: int,
        acc: int = 0, has_rescale: bool = True) -> int:
    """One lane of one stage (32-bit unsigned ints in and out); `acc` is what
    the stage's ACC reads (RSA's rescaled term)."""
    if op == Op.PASS:
        return a
    if op == Op.ADD:
        return (a + b) & MASK
    if op == Op.SUB:
        return (a - b) & MASK
    if op == Op.MAX:
        return a if _s(a) > _s(b) else b
    if op == Op.MIN:
        return a if _s(a) < _s(b) else b
    if op == Op.AND:
        return a & b
    if op == Op.OR:
        return a | b
    if op == Op.XOR:
        return a ^ b
    if op == Op.SHL:
        return (a << (b & 31)) & MASK
    if op == Op.SHR:
        return (_s(a) >> (b & 31)) & MASK
    if op == Op.LT:
        return int(_s(a) < _s(b))
    if op == Op.EQ:
        return int(a == b)
    if op == Op.SEL:
        return a if c != 0 else b
    if op == Op.RSA and has_rescale:
        return ((_s(acc) >> (b & 31)) + a) & MASK
    if has_mul and op in (Op.MUL, Op.MAC, Op.QMUL):
        mw = mul_width
        mask = (1 << mw) - 1

        def sx(v):
            v &= mask
            return v - (1 << mw) if v >> (mw - 1) else v
        prod = sx(a) * sx(b)
        if op == Op.MUL:
            return prod & MASK
        if op == Op.MAC:
            return (prod + c) & MASK
        return ((prod + ((1 << shift) >> 1)) >> shift) & MASK
    return 0


@dataclass
class ModelResult:
    outputs: dict                 # "o_vec[0]" -> [payload bits, ...]
    consumed: dict                # "i_vec[0]" -> words taken
    iterations: int
    runs_completed: int
    trace: list = field(default_factory=list)


class PCUModel:
    """Golden model of :class:`tessera.hw.pcu.PCU` for one FabricParams."""

    def __init__(self, params: FabricParams):
        if not isinstance(params, FabricParams):
            raise TypeError(f"params must be a FabricParams, not {params!r}")
        self.params = params
        self.layout = pcu_config_layout(params)
        self.muls = mul_stages(params)

    # -- payload packing -----------------------------------------------------------
    def pack(self, net: str, data, last: int = 0) -> int:
        p = self.params
        if net == "vec":
            bits = 0
            for lane, v in enumerate(data):
                bits |= (int(v) & MASK) << (32 * lane)
            return bits | (int(last) << (32 * p.lanes))
        if net == "scal":
            return (int(data) & MASK) | (int(last) << 32)
        return int(last) & 1

    def unpack(self, net: str, bits: int):
        """-> (data, last); data is a list for vectors, an int for scalars, None for tokens."""
        p = self.params
        if net == "vec":
            return [(bits >> (32 * lane)) & MASK for lane in range(p.lanes)], (bits >> (32 * p.lanes)) & 1
        if net == "scal":
            return bits & MASK, (bits >> 32) & 1
        return None, bits & 1

    def config(self, config):
        if isinstance(config, int):
            return self.layout.from_bits(config)
        return self.layout.const(config)

    # -- run -----------------------------------------------------------------------
    def run(self, config, inputs: dict | None = None, *, max_iterations: int = 100_000,
            trace: bool = False) -> ModelResult:
        p = self.params
        cfg = self.config(config)
        inputs = {k: list(v) for k, v in (inputs or {}).items()}
        n_in = {net: unit_port_counts(p, net)[0] for net in NETWORKS}
        n_out = {net: unit_port_counts(p, net)[1] for net in NETWORKS}
        for name in inputs:
            net, j = self._port(name)
            if not (name.startswith("i_") and net in NETWORKS and 0 <= j < n_in[net]):
                raise ValueError(f"unknown PCU input {name!r}")
        outputs = {f"o_{net}[{k}]": [] for net in NETWORKS for k in range(n_out[net])}
        consumed = {f"i_{net}[{j}]": 0 for net in NETWORKS for j in range(n_in[net])}
        stream = {name: inputs.get(name, []) for name in consumed}

        def bypassed_in(net, j):
            b = getattr(cfg.bypass, net)
            return bool(b.en) and b.sel == j

        def enabled_in(net, j):
            return bool(getattr(cfg, f"{net}_in")[j].en) and not bypassed_in(net, j)

        # bypass: input sel -> output 0, word for word
        for net in NETWORKS:
            b = getattr(cfg.bypass, net)
            if b.en and b.sel < n_in[net]:
                src = f"i_{net}[{b.sel}]"
                outputs[f"o_{net}[0]"] = list(stream[src])
                consumed[src] = len(stream[src])

        C, NR, L, S = p.counters, p.pcu_regs, p.lanes, p.stages
        nvi, nsi, nci = n_in["vec"], n_in["scal"], n_in["ctrl"]
        tokens = [int(cfg.ctrl_in[j].init) + len(stream[f"i_ctrl[{j}]"]) if enabled_in("ctrl", j)
                  else 0 for j in range(nci)]
        off = [0] * C
        prev = [[0] * L for _ in range(S)]        # each stage's previous results (ACC)
        iterations = runs = 0
        log = []
        if not cfg.en:
            return ModelResult(outputs, consumed, 0, 0, log)

        def level(lv, mask):
            return True if lv == 0 else bool(mask[lv - 1])

        while iterations < max_iterations:
            # counter chain state of this iteration
            vals, wraps, firsts = [], [], []
            for i in range(C):
                cc = cfg.counters[i]
                v = (cc.start + off[i]) & 0xFFFF
                vals.append(v)
                wraps.append(v + cc.stride >= cc.stop)
                firsts.append(off[i] == 0)
            fm = [all(firsts[:l + 1]) for l in range(C)]
            lm = [all(wraps[:l + 1]) for l in range(C)]
            # can it fire?
            heads = {}
            ok = True
            for net, n in (("vec", nvi), ("scal", nsi)):
                for j in range(n):
                    if enabled_in(net, j):
                        name = f"i_{net}[{j}]"
                        if consumed[name] >= len(stream[name]):
                            ok = False
                        else:
                            heads[name] = self.unpack(net, stream[name][consumed[name]])
            need = [enabled_in("ctrl", j) and level(cfg.ctrl_in[j].level, fm) for j in range(nci)]
            for j in range(nci):
                if need[j] and tokens[j] == 0:
                    ok = False
            if not ok:
                break
            # fire: build the iteration
            file = [[0] * L for _ in range(NR)]
            for j in range(min(NR, nvi)):
                if enabled_in("vec", j):
                    file[j] = list(heads[f"i_vec[{j}]"][0])
            scal = [heads[f"i_scal[{j}]"][0] if enabled_in("scal", j) else 0 for j in range(nsi)]
            lasts = ([heads[f"i_vec[{j}]"][1] if enabled_in("vec", j) else 0 for j in range(nvi)] +
                     [heads[f"i_scal[{j}]"][1] if enabled_in("scal", j) else 0 for j in range(nsi)])
            for k in range(S):
                file, prev[k] = self._stage(cfg, k, file, prev[k], scal, vals, fm)
            if trace:
                log.append({"ctr": vals, "file": [list(r) for r in file]})
            # tail and outputs
            sfu = [0] * L
            if p.pcu_sfu:
                src = file[cfg.tail.src] if cfg.tail.src < NR else [0] * L
                op, sh = int(cfg.tail.op), int(cfg.tail.shift)
                if op == SFU_EXP2:
                    sfu = [int(v) for v in exp2_fixed(np.array(src), sh)]
                elif op == SFU_RECIP:
                    sfu = [int(v) for v in recip_fixed(np.array(src), sh)]
            last_bits = [0] + [int(x) for x in lm] + [int(x) for x in lasts]

            def last_of(code):
                return last_bits[code] if code < len(last_bits) else 0

            for net in NETWORKS:
                for k in range(n_out[net]):
                    o = getattr(cfg, f"{net}_out")[k]
                    if not o.en or (k == 0 and getattr(cfg.bypass, net).en):
                        continue
                    if not level(o.level, lm):
                        continue
                    if net == "vec":
                        data = sfu if o.src == NR else (file[o.src] if o.src < NR else [0] * L)
                    elif net == "scal":
                        lane = o.lane if o.lane < L else None
                        if lane is None:
                            data = 0
                        elif o.src == NR:
                            data = sfu[lane]
                        else:
                            data = file[o.src][lane] if o.src < NR else 0
                    else:
                        data = None
                    outputs[f"o_{net}[{k}]"].append(self.pack(net, data, last_of(o.last)))
            # pops, tokens, counters
            for net, n in (("vec", nvi), ("scal", nsi)):
                for j in range(n):
                    if enabled_in(net, j) and level(getattr(cfg, f"{net}_in")[j].level, lm):
                        consumed[f"i_{net}[{j}]"] += 1
            for j in range(nci):
                if need[j]:
                    tokens[j] -= 1
            for i in range(C):
                if i == 0 or lm[i - 1]:
                    cc = cfg.counters[i]
                    off[i] = 0 if wraps[i] else (off[i] + cc.stride) & 0xFFFF
            iterations += 1
            if lm[C - 1]:
                runs += 1
        # ctrl inputs: the tokens used (beyond `init`); the RTL may have taken more
        for j in range(nci):
            if enabled_in("ctrl", j):
                name = f"i_ctrl[{j}]"
                used = int(cfg.ctrl_in[j].init) + len(stream[name]) - tokens[j]
                consumed[name] = max(0, used - int(cfg.ctrl_in[j].init))
        return ModelResult(outputs, consumed, iterations, runs, log)

    @staticmethod
    def _port(name):
        net = name[2:].split("[")[0]
        j = int(name.split("[")[1].rstrip("]")) if "[" in name else 0
        return net, j

    def _stage(self, cfg, k, file, prev, scal, ctr, fm):
        """Stage k on all lanes: -> (its pipeline registers, its results); `prev`
        is its previous results (what ACC reads; operand a with acc_a)."""
        p = self.params
        L, NR = p.lanes, p.pcu_regs
        st = cfg.stages[k]
        BC, ACC, XL, LANE = NR, NR + 1, NR + 2, NR + 3
        op = int(st.op)
        if op == Op.NOP:
            return [list(r) for r in file], [0] * L
        bcs = [int(st.const)] + list(scal) + list(ctr)
        bc = bcs[st.bc] if st.bc < len(bcs) else 0
        acc_first = True if st.acc_level == 0 else bool(fm[st.acc_level - 1])
        init = {AccInit.ZERO: 0, AccInit.MIN: 0x8000_0000, AccInit.MAX: 0x7FFF_FFFF,
                AccInit.CONST: int(st.const)}[int(st.acc_init)]

        def early(sel, lane):
            if sel < NR:
                return file[sel][lane]
            if sel == BC:
                return bc
            if sel == LANE:
                return lane
            return 0                      # ACC (read late), XL (below), unused codes

        lvl = xl_level(p, k)
        a_base = [early(st.a, lane) for lane in range(L)]
        out = [list(r) for r in file]
        results = []
        for lane in range(L):
            partner = lane ^ (1 << lvl)
            xl = a_base[partner] if partner < L else 0
            acc = init if acc_first else prev[lane]

            def operand(x):
                # ACC reads 0 outside `acc_readers(x)` (the multiplier's operands
                # and SEL's test are formed before the execute cycle; the other
                # ops' results are not what the accumulators load)
                sel = getattr(st, x)
                if sel == ACC:
                    return acc if op in acc_readers(x) else 0
                if sel == XL:
                    return xl
                return early(sel, lane)
            a, b, c = operand("a"), operand("b"), operand("c")
            keep_a = a                    # operand a as the execute cycle sees it
            r = alu(op, a, b, c, shift=int(st.shift), has_mul=k in self.muls,
                    mul_width=p.mul_width, acc=acc, has_rescale=p.pcu_rescale)
            if st.dst < NR:
                out[st.dst][lane] = r
            results.append(keep_a if st.acc_a and p.pcu_rescale else r)
        return out, results


def iteration_count(params: FabricParams, config) -> int:
    """Iterations in one run of the counter chain of `config`."""
    model = PCUModel(params)
    cfg = model.config(config)
    total = 1
    for i in range(params.counters):
        cc = cfg.counters[i]
        n = 1
        v = cc.start
        while v + cc.stride < cc.stop:
            v = (v + cc.stride) & 0xFFFF
            n += 1
            if n > 1 << COUNTER_WIDTH:
                raise ValueError(f"counter {i} does not terminate (stride 0?)")
        total *= n
    return total
