"""The pattern memory unit (PMU): a banked scratchpad with affine address
generators, N-buffering under token control, and vector, scalar, strided and
transposed access, as in Plasticine's PMU (Prabhakar et al., ISCA 2017,
sec. 3.3) and the PMUs of SambaNova's RDUs.

Storage
    ``banks`` (= ``lanes``) banks of ``depth`` words, one
    :class:`amaranth.lib.memory.Memory` each, one synchronous write port and
    one non-transparent synchronous read port per bank. A bank word is 33
    bits: the 32-bit data plus the ``last`` bit it was written with (on ECP5
    a 1024-deep bank is two 18-bit-wide DP16KD either way, so the bit is free).
    One *access* touches one word in every bank: a vector is read or written
    in one cycle, and the read side and the write side each make one access
    per cycle, concurrently.

An access (the lane map)
    Each side (``wr``, ``rd``) has an address generator that produces, per
    access, a row ``A`` and a lane rotation ``rot``. Lane ``j`` of the access
    is bank ``(j + rot) mod banks`` at row ``boff + A + j * lstride`` (mod
    ``depth``), where ``boff`` is the first row of the current buffer. Every
    access touches each bank exactly once, so no access pattern has a bank
    conflict. With ``rot = lstride = 0`` a vector is a row (unit-stride rows;
    strided rows come from the row steps). Storing a matrix *skewed* (element
    (r, c) in bank ``(r + c) mod banks``: rows written with ``rot = r``) lets
    the read side fetch a *column* as one vector (``lstride`` = the row pitch,
    ``rot = c + r0``): K transposed for attention without a host copy. A
    *scalar* access is lane 0 only: the word in bank ``rot`` at row
    ``boff + A``; scalar writes enable that bank alone.

Address generators (``wr``/``rd``: :func:`ag_layout`)
    A :class:`~.counters.CounterChain` of ``counters`` 16-bit counters names
    the iterations; each access is one iteration. With ``k_i`` the iteration
    index of counter ``i`` (0, 1, ...), ``A = base + sum(astride_i * k_i)``
    mod ``depth`` and ``rot = rbase + sum(rstride_i * k_i)`` mod ``banks``:
    affine in the loop indices (``astride_i`` is the affine coefficient times
    the counter's stride; the compiler folds counter starts into ``base``).
    The sums are kept incrementally (one adder per level, no multiplier).
    One run of the chain is one *buffer*.

N-buffering and FIFO mode
    Memory holds ``nbuf_m1 + 1`` buffers of ``2**buf_lg`` rows; buffer ``b``
    is rows ``b << buf_lg ...``. The write side fills buffers in turn, the
    read side drains them in turn; ``full`` counts buffers written and not yet
    released. The writer may start a buffer while ``full`` < nbuf (a free
    buffer exists: it fills buffer i+1 while the reader reads buffer i), the
    reader while ``full`` > 0; a buffer is released at the reader's last
    access. This is the PMU's internal token counter (a credit count, as in
    Plasticine's control boxes). If one side is disabled the other neither
    waits for it nor changes buffer (it stays on buffer 0): a write-only sink,
    or a reader of data left by an earlier program (``nbuf_m1 = 0``).
    *FIFO mode* is N-buffering with one-row buffers (``buf_lg = 0``, up to
    ``depth`` buffers) and one-iteration chains.

Tokens
    ``ctrl_in[j]`` is a token dependency of side ``side`` (0 write, 1 read):
    that side starts a buffer only with one token from it, consumed at the
    buffer's first access. Its counter starts at ``init`` (initial credits)
    and holds up to ``TOKEN_MAX`` (further tokens wait in the input FIFO).
    ``ctrl_out[k]`` emits a token at
    every buffer end of side ``event`` (0: written, 1: released by the
    reader); its ``last`` bit, if ``last`` is set, is the ``last`` bit of the
    final word written (event 0) or of lane 0 of the final word read (event 1),
    so a producer's end-of-job mark travels through the handshake.

Streams
    ``wr.scalar``/``wr.port`` select the write data: ``i_vec[port]`` or
    ``i_scal[port]`` (lane 0). ``rd.scalar``/``rd.port`` select the read
    output: ``o_vec[port]`` or ``o_scal[port]`` (lane 0). The read ``last``
    bit is chosen by ``rd.last``: 0 none; ``l`` in ``1..counters``: the last
    iteration of counters ``0..l-1`` (``counters`` = end of buffer);
    ``counters + 1``: the stored ``last`` bit of lane 0.

Bypass
    ``bypass.<net>`` forwards input ``sel`` of that network to its output 0
    (:meth:`PMU.pass_config`); that input and output then belong to the
    bypass and must not be used by the program.

Program start
    ``en`` = 0 stops the program and clears its state (chains, buffers,
    token counters); the memory keeps its contents. The unit acts on a
    registered copy of ``config``, which a change reaches three cycles later
    (``unit.CONFIG_DELAY``) and then clears the state for two cycles (while
    the registered values derived from it settle), so a newly committed
    program always starts clean.

Timing
    The write side writes in the cycle its input FIFO offers a word. The read
    side issues the read; the banks' read registers hold the words the next
    cycle, a plain register the cycle after (the banks' clock-to-output is
    slow), then the lane rotation feeds a two-entry :class:`OutputSkid`, so
    every output is registered and no ready path reaches the address
    generators; each stage holds its word while the next one is full. Both sides
    sustain one access per cycle. Rows, rotations, counter end tests, lane
    offsets and the gating conditions (credits, tokens, selects) all come
    from flops.

The golden model is :class:`tessera.sim.pmu_model.PMUModel`; its helpers
(``ag``, ``pmu_config``) build configurations.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .counters import CounterChain, counter_layout
from .links import NETWORKS, Hop, StreamFIFO, network_layout
from .params import FabricParams
from .unit import (flagged_counter, pass_config_layout, settled_config, unit_port_counts,
                   unit_signature_members)

__all__ = ["PMU", "AddressGenerator", "pmu_config_layout", "ag_layout", "COUNTER_WIDTH",
           "TOKEN_MAX", "WR", "RD", "EV_WRITTEN", "EV_RELEASED"]

COUNTER_WIDTH = 16
TOKEN_MAX = 15            # a token counter holds 0..15 tokens
WR, RD = 0, 1             # ctrl_in[j].side
EV_WRITTEN, EV_RELEASED = 0, 1   # ctrl_out[k].event


def _log2(x: int) -> int:
    return x.bit_length() - 1


def _check_params(params):
    if not isinstance(params, FabricParams):
        raise TypeError(f"params must be a FabricParams, not {params!r}")
    b = params.pmu_banks
    if b & (b - 1):
        raise ValueError(f"the PMU needs a power-of-two bank count (FabricParams.pmu_banks), "
                         f"got {b}")


def _geometry(params):
    aw = _log2(params.pmu_depth)
    lb = _log2(params.pmu_banks)
    return aw, lb


def ag_layout(params: FabricParams) -> data.StructLayout:
    """Configuration of one address generator (the ``wr`` and ``rd`` sides)."""
    aw, lb = _geometry(params)
    c = params.counters
    nport = max(params.unit_vec_in, params.unit_scal_in, params.unit_vec_out,
                params.unit_scal_out, 2)
    return data.StructLayout({
        "en": 1,
        "scalar": 1,                                   # scalar network, lane 0 only
        "port": range(nport),                          # which i_*/o_* port
        "counters": data.ArrayLayout(counter_layout(COUNTER_WIDTH), c),
        "astride": data.ArrayLayout(max(aw, 1), c),    # row step per iteration (mod depth)
        "rstride": data.ArrayLayout(max(lb, 1), c),    # rotation step per iteration (mod banks)
        "base": max(aw, 1),
        "rbase": max(lb, 1),
        "lstride": max(aw, 1),                         # row step from lane j to lane j + 1
        "last": range(c + 2),                          # read side: what drives o.last
    })


def pmu_config_layout(params: FabricParams) -> data.StructLayout:
    _check_params(params)
    p = params
    aw, _ = _geometry(p)
    dep = data.StructLayout({"en": 1, "side": 1, "init": range(TOKEN_MAX + 1)})
    evt = data.StructLayout({"en": 1, "event": 1, "last": 1})
    return data.StructLayout({
        "bypass": pass_config_layout(p),
        "en": 1,
        "nbuf_m1": range(p.pmu_depth),                 # buffers - 1
        "buf_lg": range(aw + 1),                       # log2(rows per buffer)
        "wr": ag_layout(p),
        "rd": ag_layout(p),
        "ctrl_in": data.ArrayLayout(dep, p.unit_ctrl_in),
        "ctrl_out": data.ArrayLayout(evt, p.unit_ctrl_out),
    })


class AddressGenerator(wiring.Component):
    """One side's address generator: a counter chain plus the affine row and
    rotation (``A = base + sum(astride_i k_i)``, ``rot = rbase + sum(rstride_i
    k_i)``). Registers ``T_i = first + sum_{j >= i} astride_j k_j`` (and
    ``U_i`` likewise for the rotation) hold the suffix sums: a step at level
    ``i`` (counters below it wrap) sets ``T_0..T_i`` to ``T_i + astride_i``;
    the end of the chain (or ``clear``) loads every ``T_i`` with ``first``, the
    row of the next run's first access, and every ``U_i`` with ``rbase``. So
    ``row = T_0`` and ``rot = U_0`` come straight from flops, with one adder
    per level and no multiplier. ``first`` lets the PMU fold the buffer's row
    offset into the rows (it passes ``buffer base + base``)."""

    def __init__(self, params: FabricParams):
        _check_params(params)
        self.params = params
        aw, lb = _geometry(params)
        c = params.counters
        super().__init__({
            "config": In(ag_layout(params)),
            "first": In(max(aw, 1)),
            "step": In(1),
            "clear": In(1),
            "row": Out(max(aw, 1)),
            "rot": Out(max(lb, 1)),
            "wrap": Out(c),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        aw, lb = _geometry(p)
        c = p.counters
        cfg = self.config
        m.submodules.chain = chain = CounterChain(c, COUNTER_WIDTH)
        m.d.comb += [
            chain.config.eq(cfg.counters),
            chain.step.eq(self.step),
            chain.clear.eq(self.clear),
            self.wrap.eq(chain.wrap),
            self.done.eq(chain.done),
        ]
        aw1, lb1 = max(aw, 1), max(lb, 1)
        t = [Signal(aw1, name=f"t{i}") for i in range(c)]
        u = [Signal(lb1, name=f"u{i}") for i in range(c)]
        m.d.comb += [self.row.eq(t[0]), self.rot.eq(u[0] if lb else 0)]
        cand_t = [Signal(aw1, name=f"cand_t{i}") for i in range(c)]
        cand_u = [Signal(lb1, name=f"cand_u{i}") for i in range(c)]
        for i in range(c):
            m.d.comb += [cand_t[i].eq(t[i] + cfg.astride[i]), cand_u[i].eq(u[i] + cfg.rstride[i])]
        with m.If(self.clear | (self.step & chain.done)):
            m.d.sync += [x.eq(self.first) for x in t] + [x.eq(cfg.rbase) for x in u]
        with m.Elif(self.step):
            for i in range(c):
                # counter i steps: every inner counter wraps, counter i does not
                inner = chain.wrap[i - 1] if i else Const(1, 1)
                with m.If(inner & ~chain.wrap[i]):
                    for j in range(i + 1):
                        m.d.sync += [t[j].eq(cand_t[i]), u[j].eq(cand_u[i])]
        return m


class OutputSkid(wiring.Component):
    """A two-entry output stage: ``o.valid``/``o.payload`` and ``i.ready``
    come from registers and it moves one word per cycle, like
    :class:`~.links.Hop`, but each payload bit costs one 2:1 mux into a
    clock-enabled flop (the output register loads from the input or from the
    skid register; the skid register only loads the input). Used for the
    PMU's wide read outputs."""

    def __init__(self, layout):
        self._layout = layout
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        out = Signal(self._layout)
        skid = Signal(self._layout)
        out_valid = Signal()
        skid_valid = Signal()
        m.d.comb += [self.o.valid.eq(out_valid), self.o.payload.eq(out),
                     self.i.ready.eq(~skid_valid)]
        with m.If(skid_valid):
            with m.If(self.o.ready):
                m.d.sync += [out.eq(skid), skid_valid.eq(0)]
        with m.Elif(~out_valid | self.o.ready):
            m.d.sync += out_valid.eq(self.i.valid)
            with m.If(self.i.valid):
                m.d.sync += out.eq(self.i.payload)
        with m.Elif(self.i.valid):
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m


def _rotate_up(m, items, amount, name):
    """out[k] = items[(k - amount) mod n]: a log-depth barrel of 2:1 muxes."""
    n = len(items)
    cur = list(items)
    for b in range(_log2(n)):
        sh = 1 << b
        nxt = []
        for k in range(n):
            sig = Signal(len(Value.cast(cur[k])), name=f"{name}_s{b}_{k}")
            m.d.comb += sig.eq(Mux(amount[b], cur[(k - sh) % n], cur[k]))
            nxt.append(sig)
        cur = nxt
    return cur


def _rotate_down(m, items, amount, name):
    """out[j] = items[(j + amount) mod n]."""
    n = len(items)
    cur = list(items)
    for b in range(_log2(n)):
        sh = 1 << b
        nxt = []
        for k in range(n):
            sig = Signal(len(Value.cast(cur[k])), name=f"{name}_s{b}_{k}")
            m.d.comb += sig.eq(Mux(amount[b], cur[(k + sh) % n], cur[k]))
            nxt.append(sig)
        cur = nxt
    return cur


class PMU(wiring.Component):
    """Pattern memory unit (Plasticine's PMU): ``banks`` x ``depth`` banked
    scratchpad with counter-chain affine address generators for reading and
    writing, skewed (transposed) and scalar access, N-buffering with token
    hand-off, a FIFO mode and a bypass. The programming model is in the module
    docstring; the golden model is :class:`tessera.sim.pmu_model.PMUModel`."""

    kind = "pmu"

    def __init__(self, params: FabricParams):
        _check_params(params)
        self.params = params
        members = unit_signature_members(params, pmu_config_layout(params))
        members.update(perf_active=Out(1), perf_starved=Out(1), perf_stalled=Out(1))
        super().__init__(members)

    # -- the unit contract -------------------------------------------------------------
    @staticmethod
    def config_layout(params: FabricParams) -> data.StructLayout:
        return pmu_config_layout(params)

    @staticmethod
    def pass_config(params: FabricParams, network: str, sel: int) -> dict:
        """Configuration that forwards input `sel` of `network` to output 0."""
        if network not in NETWORKS:
            raise ValueError(f"unknown network {network!r}; expected one of {NETWORKS}")
        n_in, _ = unit_port_counts(params, network)
        if not 0 <= sel < n_in:
            raise ValueError(f"PMU {network} input {sel} does not exist ({n_in} inputs)")
        return {"bypass": {network: {"en": 1, "sel": sel}}}

    # -- capacity: what the compiler asks -------------------------------------------
    @staticmethod
    def capacity(params: FabricParams) -> int:
        """Words of scratchpad: ``banks * depth``."""
        _check_params(params)
        return params.pmu_banks * params.pmu_depth

    @staticmethod
    def buffer_rows(params: FabricParams, words: int) -> int:
        """Rows one buffer of `words` words takes: whole rows of ``banks``
        words, rounded up to a power of two (buffers are ``2**buf_lg`` rows)."""
        rows = max(1, -(-words // params.pmu_banks))
        return 1 << (rows - 1).bit_length()

    @staticmethod
    def check_tile_fits(params: FabricParams, words: int, buffers: int = 2) -> dict:
        """Check that `buffers` buffers of a `words`-word tile fit in one PMU;
        return ``{"buf_lg", "nbuf_m1", "rows"}`` for the configuration, or
        raise ValueError naming the sizes."""
        _check_params(params)
        for name, v in (("words", words), ("buffers", buffers)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"{name} must be an int, not {v!r}")
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        rows = PMU.buffer_rows(params, words)
        if rows * buffers > params.pmu_depth:
            raise ValueError(
                f"a tile of {words} words x {buffers} buffers does not fit in a PMU: each "
                f"buffer takes {rows} rows of {params.pmu_banks} words (rounded up to a power "
                f"of two), {rows * buffers} rows in all, but a PMU has {params.pmu_depth} rows "
                f"({PMU.capacity(params)} words, preset {params.name!r})")
        return {"buf_lg": _log2(rows), "nbuf_m1": buffers - 1, "rows": rows}

    # -- gateware --------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        p = self.params
        B, D, C = p.pmu_banks, p.pmu_depth, p.counters
        W = p.word_width
        aw, lb = _geometry(p)
        aw1, lb1 = max(aw, 1), max(lb, 1)
        n_in = {net: unit_port_counts(p, net)[0] for net in NETWORKS}
        n_out = {net: unit_port_counts(p, net)[1] for net in NETWORKS}
        nci, nco = n_in["ctrl"], n_out["ctrl"]

        # -- the configuration, registered ------------------------------------------------
        # The PMU acts on a registered copy of `config`, and on values derived
        # from it in registers (counter limits, lane offsets): no path runs
        # from the configuration through adders into the datapath. Any change
        # of `config` holds the unit cleared for two cycles while they
        # settle, so a new program always starts from a clean state (memory
        # persists). The control decodes of the configuration (which input
        # feeds the writer, which dependency gates which side, ...) are
        # registered bits too, so the fire decisions start at flops.
        # `run` (settled and enabled) is a flop of its own (`settled_config`).
        run = Signal(name="run")
        cfg, _quiet = settled_config(m, self.config, runs=(run,), run_enable=lambda c: c.en)
        wr_on = Signal()
        rd_on = Signal()
        m.d.comb += [wr_on.eq(run & cfg.wr.en),
                     rd_on.eq(run & cfg.rd.en)]
        clear = ~run

        def reg(value, name):
            r = Signal(name=name)
            m.d.sync += r.eq(value)
            return r

        # -- input FIFOs ------------------------------------------------------------------
        fifos = {}
        for net in NETWORKS:
            fifos[net] = []
            for j in range(n_in[net]):
                q = StreamFIFO(network_layout(p, net), p.fifo_depth)
                m.submodules[f"fifo_{net}{j}"] = q
                wiring.connect(m, wiring.flipped(getattr(self, f"i_{net}")[j]), q.i)
                fifos[net].append(q)

        def bypass_in(net, j):
            b = getattr(cfg.bypass, net)
            return b.en & (b.sel == j)

        fifo_ready = {net: [[] for _ in range(n_in[net])] for net in NETWORKS}

        # -- memories ----------------------------------------------------------------------
        wports, rports = [], []
        for k in range(B):
            mem = Memory(shape=W + 1, depth=D, init=[])
            m.submodules[f"bank{k}"] = mem
            wports.append(mem.write_port())
            rports.append(mem.read_port(transparent_for=()))

        # -- per side: address generator, lane offsets, buffer position ------------------------
        rows = Signal(aw + 1)                                   # rows per buffer
        m.d.sync += rows.eq(1 << cfg.buf_lg)

        sides = {}
        for name, scfg in (("wr", cfg.wr), ("rd", cfg.rd)):
            s = SimpleNamespace()
            s.cfg = scfg
            s.ag = AddressGenerator(p)
            m.submodules[f"{name}ag"] = s.ag
            # lane offsets j * lstride
            s.offs = []
            for j in range(B):
                o = Signal(aw1, name=f"{name}_off{j}")
                terms = [scfg.lstride << b for b in range(lb + 1) if (j >> b) & 1]
                m.d.sync += o.eq(sum(terms) if terms else 0)
                s.offs.append(o)
            # buffer index and the physical row of the buffer's first access
            s.idx = Signal(range(D), name=f"{name}_idx")
            s.tb = Signal(aw1, name=f"{name}_tb")                # buffer row + base
            s.last_buf = Signal(name=f"{name}_last_buf")
            s.tb_next = Signal(aw1, name=f"{name}_tb_next")
            s.active = Signal(name=f"{name}_active")
            m.d.comb += [
                s.last_buf.eq(s.idx >= cfg.nbuf_m1),
                s.tb_next.eq(Mux(s.last_buf, scfg.base, s.tb + rows)),
                s.ag.config.eq(scfg),
                s.ag.clear.eq(clear),
            ]
            sides[name] = s
        wr, rd = sides["wr"], sides["rd"]

        # -- buffer credits: the PMU's internal token counters ---------------------------------
        full = Signal(range(D + 1))         # buffers written, not yet released
        free = Signal(range(D + 1))         # buffers the writer may fill
        free_nz = Signal()                  # registered: free != 0
        full_nz = Signal()                  # registered: full != 0
        rd_part = reg(cfg.rd.en, "rd_part")
        wr_part = reg(cfg.wr.en, "wr_part")
        # a side changes buffer only if the other side takes part
        wr.adv, rd.adv = rd_part, wr_part
        w_free = ~rd_part | free_nz
        r_avail = ~wr_part | full_nz

        # -- token dependencies ------------------------------------------------------------------
        # token counters: `take` a token from the input FIFO, `consume` one at a start
        takes = [Signal(name=f"tok{j}_take") for j in range(nci)]
        consumes = [Signal(name=f"tok{j}_consume") for j in range(nci)]
        tok_nz, tok_max = [], []
        for j in range(nci):
            _, nz, mx, _ = flagged_counter(m, f"tok{j}", TOKEN_MAX, up=takes[j], down=consumes[j],
                                           load=(clear, cfg.ctrl_in[j].init))
            tok_nz.append(nz)
            tok_max.append(mx)
        dep = {side: [reg(cfg.ctrl_in[j].en & (cfg.ctrl_in[j].side == side)
                          & ~bypass_in("ctrl", j), f"dep{j}_{'wr' if side == WR else 'rd'}")
                      for j in range(nci)] for side in (WR, RD)}

        def dep_used(j, side):
            return dep[side][j]

        def deps_ok(side):
            ok = Const(1, 1)
            for j in range(nci):
                ok = ok & (~dep[side][j] | tok_nz[j])
            return ok

        # -- token outputs (event skids) -----------------------------------------------------------
        evt_hops = []
        for k in range(nco):
            h = Hop(network_layout(p, "ctrl"))
            m.submodules[f"evt{k}"] = h
            evt_hops.append(h)

        evt = {ev: [reg(cfg.ctrl_out[k].en & (cfg.ctrl_out[k].event == ev), f"evt{k}_{ev}")
                    for k in range(nco)] for ev in (EV_WRITTEN, EV_RELEASED)}

        def evt_room(event):
            ok = Const(1, 1)
            for k in range(nco):
                ok = ok & ~(evt[event][k] & ~evt_hops[k].i.ready)
            return ok

        # -- write side --------------------------------------------------------------------------
        src_valid = Signal()
        src_lanes = [Signal(W, name=f"src_lane{j}") for j in range(B)]
        src_last = Signal()
        wsel = {net: [reg((cfg.wr.scalar == (net == "scal")) & (cfg.wr.port == j)
                          & ~bypass_in(net, j), f"wsel_{net}{j}")
                      for j in range(n_in[net])] for net in ("vec", "scal")}
        valid_terms = Const(0, 1)
        for net in ("vec", "scal"):
            for j, q in enumerate(fifos[net]):
                valid_terms = valid_terms | (wsel[net][j] & q.o.valid)
        m.d.comb += src_valid.eq(valid_terms)
        with m.Switch(cfg.wr.port):
            for j in range(max(n_in["vec"], n_in["scal"])):
                with m.Case(j):
                    qv = fifos["vec"][j] if j < n_in["vec"] else None
                    qs = fifos["scal"][j] if j < n_in["scal"] else None
                    if qv is not None:
                        # lanes 1.. only matter for vectors; a scalar is lane 0
                        m.d.comb += [sl.eq(qv.o.payload.data[l])
                                     for l, sl in enumerate(src_lanes) if l]
                    with m.If(cfg.wr.scalar):
                        if qs is not None:
                            m.d.comb += [src_last.eq(qs.o.payload.last),
                                         src_lanes[0].eq(qs.o.payload.data)]
                    with m.Else():
                        if qv is not None:
                            m.d.comb += [src_last.eq(qv.o.payload.last),
                                         src_lanes[0].eq(qv.o.payload.data[0])]

        fire_w = Signal()
        w_start_ok = w_free & deps_ok(WR)
        w_go = wr_on & (wr.active | w_start_ok)
        m.d.comb += fire_w.eq(w_go & src_valid & (~wr.ag.done | evt_room(EV_WRITTEN)))
        w_start = fire_w & ~wr.active
        w_done = fire_w & wr.ag.done
        for net in ("vec", "scal"):
            for j in range(n_in[net]):
                fifo_ready[net][j].append(fire_w & wsel[net][j])
        m.d.comb += wr.ag.step.eq(fire_w)

        w_rot = wr.ag.rot
        w_data_banks = _rotate_up(m, [Cat(l, src_last) for l in src_lanes], w_rot, "wdata")
        w_off_banks = _rotate_up(m, wr.offs, w_rot, "woff")
        for k in range(B):
            wp = wports[k]
            bank_sel = (w_rot == k) if lb else Const(1, 1)
            m.d.comb += [
                wp.addr.eq(wr.ag.row + w_off_banks[k]),
                wp.data.eq(w_data_banks[k]),
                wp.en.eq(fire_w & (~cfg.wr.scalar | bank_sel)),
            ]

        # -- read side ---------------------------------------------------------------------------
        r_start_ok = r_avail & deps_ok(RD)
        r_go = rd_on & (rd.active | r_start_ok)
        # Stage 1 is the banks' read registers, stage 2 a register of the raw
        # bank words (the banks' clock-to-output is slow: nothing else follows
        # it in the cycle); the lane rotation runs from stage 2 into the
        # output skid. A stage holds its word while the next one is full.
        v1, v2 = Signal(), Signal()
        rot1, rot2 = Signal(lb1), Signal(lb1)
        lvl_last1, lvl_last2 = Signal(), Signal()
        done1, done2 = Signal(), Signal()
        data2 = [Signal(W + 1, name=f"rdata2_{k}") for k in range(B)]
        push_ok = Signal()
        adv2 = Signal()
        adv1 = Signal()
        fire_r = Signal()
        m.d.comb += [adv2.eq(~v2 | push_ok), adv1.eq(~v1 | adv2),
                     fire_r.eq(r_go & adv1)]
        r_start = fire_r & ~rd.active
        r_done = fire_r & rd.ag.done
        m.d.comb += rd.ag.step.eq(fire_r)

        r_rot = rd.ag.rot
        r_off_banks = _rotate_up(m, rd.offs, r_rot, "roff")
        for k in range(B):
            m.d.comb += [rports[k].addr.eq(rd.ag.row + r_off_banks[k]), rports[k].en.eq(fire_r)]

        lvl = Signal(C + 2)
        m.d.comb += lvl.eq(Cat(Const(0, 1), rd.ag.wrap, Const(0, 1)))
        with m.If(clear):
            m.d.sync += [v1.eq(0), v2.eq(0)]
        with m.Else():
            with m.If(fire_r):
                m.d.sync += [v1.eq(1), rot1.eq(r_rot), done1.eq(rd.ag.done),
                             lvl_last1.eq(lvl.bit_select(cfg.rd.last, 1))]
            with m.Elif(adv1):
                m.d.sync += v1.eq(0)
            with m.If(adv2):
                m.d.sync += v2.eq(v1)
                with m.If(v1):
                    m.d.sync += [rot2.eq(rot1), done2.eq(done1), lvl_last2.eq(lvl_last1)]
                    m.d.sync += [d.eq(rports[k].data) for k, d in enumerate(data2)]

        r_lanes = _rotate_down(m, data2, rot2, "rdata")
        stored_last = r_lanes[0][W]
        out_last = Signal()
        m.d.comb += out_last.eq(Mux(cfg.rd.last == C + 1, stored_last, lvl_last2))

        vec_hops, scal_hops = [], []
        for net, hops in (("vec", vec_hops), ("scal", scal_hops)):
            for k in range(n_out[net]):
                h = OutputSkid(network_layout(p, net))
                m.submodules[f"out_{net}{k}"] = h
                hops.append(h)
        rsel = {net: [reg((cfg.rd.scalar == (net == "scal")) & (cfg.rd.port == k),
                          f"rsel_{net}{k}") for k in range(n_out[net])]
                for net in ("vec", "scal")}
        target_ready = Signal()
        ready_terms = Const(0, 1)
        for net, hops in (("vec", vec_hops), ("scal", scal_hops)):
            for k, h in enumerate(hops):
                ready_terms = ready_terms | (rsel[net][k] & h.i.ready)
        m.d.comb += target_ready.eq(ready_terms)
        m.d.comb += push_ok.eq(v2 & target_ready & (~done2 | evt_room(EV_RELEASED)))
        push = push_ok
        for k, h in enumerate(vec_hops):
            m.d.comb += [h.i.valid.eq(push & rsel["vec"][k]),
                         h.i.payload.last.eq(out_last)]
            m.d.comb += [h.i.payload.data[l].eq(r_lanes[l][:W]) for l in range(B)]
        for k, h in enumerate(scal_hops):
            m.d.comb += [h.i.valid.eq(push & rsel["scal"][k]),
                         h.i.payload.data.eq(r_lanes[0][:W]),
                         h.i.payload.last.eq(out_last)]

        # -- events ------------------------------------------------------------------------------
        r_release = push & done2
        for k, h in enumerate(evt_hops):
            ec = cfg.ctrl_out[k]
            m.d.comb += h.i.valid.eq((evt[EV_WRITTEN][k] & w_done) |
                                     (evt[EV_RELEASED][k] & r_release))
            with m.If(ec.event == EV_WRITTEN):
                m.d.comb += h.i.payload.last.eq(ec.last & src_last)
            with m.Else():
                m.d.comb += h.i.payload.last.eq(ec.last & stored_last)

        # -- state updates -----------------------------------------------------------------------
        w_fill = w_done & wr.adv            # a buffer changes hands
        r_free = r_done & rd.adv
        for s, fire, done in ((wr, fire_w, w_done), (rd, fire_r, r_done)):
            moves = done & s.adv
            m.d.comb += s.ag.first.eq(Mux(clear, s.cfg.base, Mux(moves, s.tb_next, s.tb)))
            with m.If(clear):
                m.d.sync += [s.active.eq(0), s.idx.eq(0), s.tb.eq(s.cfg.base)]
            with m.Else():
                with m.If(fire):
                    m.d.sync += s.active.eq(~s.ag.done)
                with m.If(moves):
                    m.d.sync += [s.idx.eq(Mux(s.last_buf, 0, s.idx + 1)), s.tb.eq(s.tb_next)]
        # the "!= 0" flags are registered, computed from the current counts
        # (no adder between a fire decision and the flag's flop)
        with m.If(clear):
            m.d.sync += [full.eq(0), free.eq(cfg.nbuf_m1 + 1), full_nz.eq(0), free_nz.eq(1)]
        with m.Else():
            m.d.sync += [full.eq(full + w_fill - r_free), free.eq(free - w_fill + r_free)]
            with m.If(w_fill & ~r_free):
                m.d.sync += [full_nz.eq(1), free_nz.eq(free != 1)]
            with m.Elif(r_free & ~w_fill):
                m.d.sync += [full_nz.eq(full != 1), free_nz.eq(1)]

        for j in range(nci):
            q = fifos["ctrl"][j]
            used = cfg.ctrl_in[j].en & ~bypass_in("ctrl", j)
            take, consume = takes[j], consumes[j]
            used_r = reg(used, f"tok{j}_used")
            m.d.comb += [
                take.eq(run & used_r & q.o.valid & ~tok_max[j]),
                consume.eq((w_start & dep_used(j, WR)) | (r_start & dep_used(j, RD))),
            ]
            fifo_ready["ctrl"][j].append(take)

        # -- outputs and the bypass ----------------------------------------------------------------
        out_hops = {"vec": vec_hops, "scal": scal_hops, "ctrl": evt_hops}
        for net in NETWORKS:
            outs = getattr(self, f"o_{net}")
            for k in range(n_out[net]):
                h = out_hops[net][k]
                o = outs[k]
                if k == 0:
                    bp = getattr(cfg.bypass, net)
                    for j in range(n_in[net]):
                        fifo_ready[net][j].append(bypass_in(net, j) & o.ready)
                    with m.If(bp.en):
                        with m.Switch(bp.sel):
                            for j, q in enumerate(fifos[net]):
                                with m.Case(j):
                                    m.d.comb += [o.valid.eq(q.o.valid),
                                                 o.payload.eq(q.o.payload)]
                    with m.Else():
                        m.d.comb += [o.valid.eq(h.o.valid), o.payload.eq(h.o.payload),
                                     h.o.ready.eq(o.ready)]
                else:
                    wiring.connect(m, h.o, wiring.flipped(o))
        for net in NETWORKS:
            for j, q in enumerate(fifos[net]):
                ready = Const(0, 1)
                for t in fifo_ready[net][j]:
                    ready = ready | t
                m.d.comb += q.o.ready.eq(ready)

        # -- performance counters -------------------------------------------------------------------
        active = fire_w | fire_r
        w_starved = wr_on & ~fire_w & (~src_valid | (~wr.active & ~deps_ok(WR)))
        r_starved = rd_on & ~fire_r & ~rd.active & (~r_avail | ~deps_ok(RD))
        w_stalled = wr_on & ~fire_w & ~w_starved
        r_stalled = rd_on & ~fire_r & ~r_starved
        m.d.comb += [
            self.perf_active.eq(active),
            self.perf_starved.eq(~active & (w_starved | r_starved)),
            self.perf_stalled.eq(~active & ~(w_starved | r_starved) & (w_stalled | r_stalled)),
        ]
        return m
