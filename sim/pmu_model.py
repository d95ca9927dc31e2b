"""Bit-accurate Python model of the PMU (:mod:`tessera.hw.pmu`), plus the
helpers that build PMU programs (configurations) and stream payloads.

The model is transaction level: given a configuration and the words offered
on each input stream, it returns the words each output stream carries. The
PMU is a Kahn process (every unit blocks on its inputs and its outputs are
sequences), so those sequences do not depend on timing or backpressure,
which is what lets the RTL be compared with the model under random gaps and
random backpressure. The one timing-dependent thing a program could do is
touch another buffer's rows while it is in use; the model raises
:class:`PMUProgramError` for it (a compiler must not emit such a program).

The model keeps its own loop indices ``k_i`` and computes
``A = base + sum(astride_i * k_i)`` directly, independently of the RTL's
incremental suffix sums.

    from tessera.sim.pmu_model import PMUModel, ag, pmu_config
    cfg = pmu_config(params, wr=ag(params, [(8, 1, 0)]), rd=ag(params, [(8, 1, 0)]),
                     nbuf=2, buf_lg=3)
    out = PMUModel(params, cfg).run({"i_vec[0]": [payload, ...]})
    out["o_vec[0]"]   # payload ints
"""

from __future__ import annotations

from amaranth.hdl import Shape
from amaranth.lib import data

from tessera.hw.counters import CounterChainModel
from tessera.hw.params import FabricParams
from tessera.hw.pmu import COUNTER_WIDTH, EV_RELEASED, EV_WRITTEN, RD, WR, pmu_config_layout
from tessera.hw.unit import unit_port_counts

__all__ = ["PMUModel", "PMUProgramError", "ag", "pmu_config", "encode_config", "decode_config",
           "vec_payload", "scal_payload", "token_payload", "unpack_vec", "unpack_scal",
           "check_config"]


class PMUProgramError(ValueError):
    """A PMU program whose result would depend on timing (or that is malformed)."""


# -- configuration values ----------------------------------------------------------------

def _decode(layout, bits):
    if isinstance(layout, data.StructLayout):
        return {name: _decode(f.shape, (bits >> f.offset) & ((1 << f.width) - 1))
                for name, f in layout}
    if isinstance(layout, data.ArrayLayout):
        w = Shape.cast(layout.elem_shape).width
        return [_decode(layout.elem_shape, (bits >> (i * w)) & ((1 << w) - 1))
                for i in range(layout.length)]
    return bits


def encode_config(params: FabricParams, config: dict) -> int:
    """Configuration dict -> the raw bits of the ``config`` port."""
    return pmu_config_layout(params).const(config).as_bits()


def decode_config(params: FabricParams, config) -> dict:
    """Raw bits (or a partial dict) -> a complete nested dict of ints."""
    layout = pmu_config_layout(params)
    bits = config if isinstance(config, int) else layout.const(config).as_bits()
    return _decode(layout, bits)


def ag(params: FabricParams, loops, *, base=0, rbase=0, lstride=0, scalar=False, port=0,
       last=0) -> dict:
    """An address-generator program. `loops` is a list of ``(trips, astride,
    rstride)``, innermost first (at most ``params.counters``; missing levels
    run once). Negative strides are taken modulo depth / banks. `last` (read
    side): 0 none, ``l`` = last iteration of loops ``0..l-1``, ``counters+1`` =
    the stored last bit."""
    C = params.counters
    if len(loops) > C:
        raise ValueError(f"{len(loops)} loops but a PMU address generator has {C} counters")
    D, B = params.pmu_depth, params.pmu_banks
    counters, astride, rstride = [], [], []
    for i in range(C):
        trips, a, r = loops[i] if i < len(loops) else (1, 0, 0)
        if not 1 <= trips < (1 << COUNTER_WIDTH):
            raise ValueError(f"loop {i}: trips must be 1..{(1 << COUNTER_WIDTH) - 1}, got {trips}")
        counters.append({"start": 0, "stop": trips, "stride": 1})
        astride.append(a % D)
        rstride.append(r % B)
    return {"en": 1, "scalar": int(scalar), "port": port, "counters": counters,
            "astride": astride, "rstride": rstride, "base": base % D, "rbase": rbase % B,
            "lstride": lstride % D, "last": last}


def pmu_config(params: FabricParams, *, wr=None, rd=None, nbuf=1, buf_lg=None, ctrl_in=(),
               ctrl_out=(), bypass=None, en=1) -> dict:
    """A PMU configuration dict. `ctrl_in`: ``{j: {"side", "init"}}`` or a list
    of dicts; `ctrl_out`: ``{k: {"event", "last"}}``. `buf_lg` defaults to the
    whole memory split into `nbuf` power-of-two buffers."""
    D = params.pmu_depth
    if buf_lg is None:
        rows = D // nbuf
        buf_lg = rows.bit_length() - 1
    cfg = {"en": en, "nbuf_m1": nbuf - 1, "buf_lg": buf_lg}
    if wr is not None:
        cfg["wr"] = wr
    if rd is not None:
        cfg["rd"] = rd

    def listify(x, n):
        out = [{"en": 0} for _ in range(n)]
        items = x.items() if isinstance(x, dict) else enumerate(x)
        for j, v in items:
            if v:
                out[j] = {"en": 1, **v}
        return out

    cfg["ctrl_in"] = listify(ctrl_in, params.unit_ctrl_in)
    cfg["ctrl_out"] = listify(ctrl_out, params.unit_ctrl_out)
    if bypass:
        cfg["bypass"] = bypass
    return cfg


def check_config(params: FabricParams, config) -> dict:
    """Validate a configuration; return it decoded. Raises ValueError naming
    the field for programs the PMU cannot run as meant."""
    c = decode_config(params, config)
    D = params.pmu_depth
    nbuf = c["nbuf_m1"] + 1
    rows = 1 << c["buf_lg"]
    if nbuf * rows > D:
        raise ValueError(f"PMU config: {nbuf} buffers of {rows} rows (buf_lg={c['buf_lg']}) "
                         f"exceed the {D} rows of a PMU")
    byp = c["bypass"]
    for side in ("wr", "rd"):
        s = c[side]
        if not s["en"]:
            continue
        for i, cc in enumerate(s["counters"]):
            if cc["stride"] == 0 and cc["start"] < cc["stop"]:
                raise ValueError(f"PMU config: {side}.counters[{i}] has stride 0 and never ends")
        net = "scal" if s["scalar"] else "vec"
        n_in, n_out = unit_port_counts(params, net)
        n = n_in if side == "wr" else n_out
        if s["port"] >= n:
            raise ValueError(f"PMU config: {side}.port={s['port']} but the unit has {n} "
                             f"{net} {'inputs' if side == 'wr' else 'outputs'}")
        if byp[net]["en"] and ((side == "wr" and byp[net]["sel"] == s["port"]) or
                               (side == "rd" and s["port"] == 0)):
            raise ValueError(f"PMU config: {side} uses {net} port {s['port']}, which the "
                             f"{net} bypass owns")
    for j, d in enumerate(c["ctrl_in"]):
        if d["en"] and byp["ctrl"]["en"] and byp["ctrl"]["sel"] == j:
            raise ValueError(f"PMU config: ctrl_in[{j}] is a dependency but the ctrl bypass owns it")
    for k, e in enumerate(c["ctrl_out"]):
        if e["en"] and k == 0 and byp["ctrl"]["en"]:
            raise ValueError("PMU config: ctrl_out[0] is enabled but the ctrl bypass owns it")
    return c


# -- payloads ----------------------------------------------------------------------------------

def vec_payload(params: FabricParams, lanes, last=0) -> int:
    W = params.word_width
    bits = 0
    for j, v in enumerate(lanes):
        bits |= (int(v) & ((1 << W) - 1)) << (j * W)
    return bits | (int(last) << (params.lanes * W))


def unpack_vec(params: FabricParams, bits: int):
    W = params.word_width
    lanes = [(bits >> (j * W)) & ((1 << W) - 1) for j in range(params.lanes)]
    return lanes, (bits >> (params.lanes * W)) & 1


def scal_payload(word, last=0) -> int:
    return (int(word) & 0xFFFF_FFFF) | (int(last) << 32)


def unpack_scal(bits: int):
    return bits & 0xFFFF_FFFF, (bits >> 32) & 1


def token_payload(last=0) -> int:
    return int(last)


# -- the model --------------------------------------------------------------------------------

class _Side:
    def __init__(self, params, c):
        self.c = c
        self.chain = CounterChainModel(c["counters"], COUNTER_WIDTH)
        self.k = [0] * params.counters
        self.active = False
        self.idx = 0
        self.D, self.B = params.pmu_depth, params.pmu_banks

    def address(self):
        c = self.c
        a = (c["base"] + sum(s * k for s, k in zip(c["astride"], self.k))) % self.D
        r = (c["rbase"] + sum(s * k for s, k in zip(c["rstride"], self.k))) % self.B
        return a, r

    def step(self):
        wrap = self.chain.wrap
        if wrap[-1]:
            self.k = [0] * len(self.k)
        else:
            i = next(i for i in range(len(self.k)) if not wrap[i])
            self.k[i] += 1
            for j in range(i):
                self.k[j] = 0
        self.chain.step()


class PMUModel:
    """Golden model of :class:`tessera.hw.pmu.PMU` (see the module docstring).

    ``run(inputs)`` takes ``{"i_vec[0]": [payload, ...], ...}`` and returns the
    payloads of every output port, ``{"o_vec[0]": [...], ...}``. State
    (memory, buffers, chains) persists across calls, like the hardware's.
    """

    def __init__(self, params: FabricParams, config, *, mem=None):
        if not isinstance(params, FabricParams):
            raise TypeError(f"params must be a FabricParams, not {params!r}")
        self.p = params
        self.c = check_config(params, config)
        B, D = params.pmu_banks, params.pmu_depth
        # 33-bit bank words: data | last << 32. `mem` carries the contents left
        # by an earlier program (memories are not reset); it is copied.
        self.mem = [list(b) for b in mem] if mem is not None else [[0] * D for _ in range(B)]
        self.consumed = {}          # input port -> words taken (tokens: used by the program)
        self.wr = _Side(params, self.c["wr"])
        self.rd = _Side(params, self.c["rd"])
        self.full = 0
        self.tok = [0] * params.unit_ctrl_in           # tokens received - consumed
        self.tok_used = [0] * params.unit_ctrl_in
        self.accesses = {"wr": 0, "rd": 0}

    # the lane map: lane j <-> bank (j + rot) mod B, row boff + A + j * lstride
    def _lanes(self, side, a, rot, boff):
        B, D = self.p.pmu_banks, self.p.pmu_depth
        n = 1 if side.c["scalar"] else B
        ls = side.c["lstride"]
        # (bank, physical row, lane, row relative to the buffer)
        return [((j + rot) % B, (boff + a + j * ls) % D, j, (a + j * ls) % D) for j in range(n)]

    def _check_region(self, name, lanes):
        c = self.c
        if c["nbuf_m1"] == 0 or not (c["wr"]["en"] and c["rd"]["en"]):
            return
        rows = 1 << c["buf_lg"]
        for bank, _, j, rel in lanes:
            if rel >= rows:
                raise PMUProgramError(
                    f"{name} access {self.accesses[name]}: lane {j} touches relative row {rel}, "
                    f"outside its buffer of {rows} rows (another buffer may be in use)")

    def _deps(self, side_code):
        out = []
        for j, d in enumerate(self.c["ctrl_in"]):
            if d["en"] and d["side"] == side_code:
                out.append(j)
        return out

    def run(self, inputs: dict, *, max_accesses: int = 1_000_000) -> dict:
        p, c = self.p, self.c
        D, W = p.pmu_depth, p.word_width
        outs = {}
        for net in ("vec", "scal", "ctrl"):
            _, n_out = unit_port_counts(p, net)
            for k in range(n_out):
                outs[f"o_{net}[{k}]"] = []
        pos = {k: 0 for k in inputs}
        if not c["en"]:
            self._bypass(inputs, outs)
            return outs
        self._bypass(inputs, outs)
        for j in range(p.unit_ctrl_in):
            if c["ctrl_in"][j]["en"]:
                self.tok[j] += len(inputs.get(f"i_ctrl[{j}]", []))
        nbuf = c["nbuf_m1"] + 1
        lg = c["buf_lg"]
        wr, rd = self.wr, self.rd
        wc, rc = c["wr"], c["rd"]
        wport = f"i_{'scal' if wc['scalar'] else 'vec'}[{wc['port']}]"
        rport = f"o_{'scal' if rc['scalar'] else 'vec'}[{rc['port']}]"
        src = inputs.get(wport, [])
        pos.setdefault(wport, 0)

        def avail(j):
            return c["ctrl_in"][j]["init"] + self.tok[j]

        def events(event, last):
            for k, e in enumerate(c["ctrl_out"]):
                if e["en"] and e["event"] == event:
                    outs[f"o_ctrl[{k}]"].append(token_payload(e["last"] & last))

        def try_write():
            if not wr.active:
                if rc["en"] and self.full >= nbuf:
                    return False
                if any(avail(j) == 0 for j in self._deps(WR)):
                    return False
            if pos[wport] >= len(src):
                return False
            if not wr.active:
                for j in self._deps(WR):
                    self.tok[j] -= 1
                    self.tok_used[j] += 1
                wr.active = True
            word = src[pos[wport]]
            pos[wport] += 1
            if wc["scalar"]:
                vals, last = [unpack_scal(word)[0]], unpack_scal(word)[1]
            else:
                vals, last = unpack_vec(p, word)
            a, rot = wr.address()
            boff = ((wr.idx << lg) % D)
            lanes = self._lanes(wr, a, rot, boff)
            self._check_region("wr", lanes)
            for bank, row, j, _ in lanes:
                self.mem[bank][row] = vals[j] | (last << W)
            done = wr.chain.done
            wr.step()
            self.accesses["wr"] += 1
            if done:
                wr.active = False
                if rc["en"]:
                    self.full += 1
                    wr.idx = 0 if wr.idx >= nbuf - 1 else wr.idx + 1
                events(EV_WRITTEN, last)
            return True

        def try_read():
            if not rd.active:
                if wc["en"] and self.full == 0:
                    return False
                if any(avail(j) == 0 for j in self._deps(RD)):
                    return False
                for j in self._deps(RD):
                    self.tok[j] -= 1
                    self.tok_used[j] += 1
                rd.active = True
            a, rot = rd.address()
            boff = ((rd.idx << lg) % D)
            lanes = self._lanes(rd, a, rot, boff)
            self._check_region("rd", lanes)
            words = [self.mem[bank][row] for bank, row, _, _ in lanes]
            stored_last = words[0] >> W
            code = rc["last"]
            wrap = rd.chain.wrap
            if code == 0:
                last = 0
            elif code <= p.counters:
                last = int(wrap[code - 1])
            elif code == p.counters + 1:
                last = stored_last
            else:
                last = 0
            if rc["scalar"]:
                outs[rport].append(scal_payload(words[0] & 0xFFFF_FFFF, last))
            else:
                outs[rport].append(vec_payload(p, [w & 0xFFFF_FFFF for w in words], last))
            done = rd.chain.done
            rd.step()
            self.accesses["rd"] += 1
            if done:
                rd.active = False
                if wc["en"]:
                    self.full -= 1
                    rd.idx = 0 if rd.idx >= nbuf - 1 else rd.idx + 1
                events(EV_RELEASED, stored_last)
            return True

        budget = max_accesses
        progress = True
        while progress and budget > 0:
            progress = False
            if wc["en"] and try_write():
                progress = True
                budget -= 1
            if rc["en"] and try_read():
                progress = True
                budget -= 1
        self.truncated = budget <= 0
        for port, n in pos.items():
            if n:
                self.consumed[port] = self.consumed.get(port, 0) + n
        for j in range(p.unit_ctrl_in):
            if c["ctrl_in"][j]["en"]:
                used = self.tok_used[j]
                self.consumed[f"i_ctrl[{j}]"] = max(0, used - c["ctrl_in"][j]["init"])
        return outs

    def _bypass(self, inputs, outs):
        for net in ("vec", "scal", "ctrl"):
            b = self.c["bypass"][net]
            if b["en"]:
                outs[f"o_{net}[0]"] = list(inputs.get(f"i_{net}[{b['sel']}]", []))
