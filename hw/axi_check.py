"""A passive AXI4 protocol checker.

:class:`AXI4Checker` taps the five channels of one AXI4 link (every member of
its ``axi`` port is an input, so it can be connected beside a master and a
slave with one ``wiring.connect``) and counts protocol violations. It is the
project's own checker, used because cocotbext-axi does not support cocotb 2;
it runs inside the RTL (pysim, Verilator, Icarus) with no Python per cycle.

What it checks (codes in :class:`AXIError`):

* handshake rules on every channel: ``valid`` dropped before ``ready``; the
  payload changed while ``valid`` and not ``ready``;
* W bursts carry ``len + 1`` beats with ``last`` on the final one (W data may
  lead its AW; the beat count is then checked when the AW arrives);
* R bursts carry ``len + 1`` beats with ``last`` on the final one; R with no
  outstanding read;
* B with no completed write (AW and the W beat with ``last`` both seen);
* INCR bursts crossing a 4 KiB boundary; reserved burst type 3, WRAP
  lengths other than 2/4/8/16 beats, FIXED longer than 16 beats, a size
  wider than the bus, or (with ``incr_only=True``) any burst but INCR.

Limits: read bursts are matched to R beats in AR order (as if all IDs were
one), which is what every slave in Tessera does; a slave that reorders across
IDs would need per-ID queues. The checker tracks ``max_outstanding`` reads,
writes and early W bursts; beyond that it reports ``OVERFLOW`` rather than
miss something silently.
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from .axi import BURST_FIXED, BURST_INCR, BURST_WRAP, AXI4Params, AXI4Signature
from .dram import RegFIFO

__all__ = ["AXIError", "AXI4MonitorSignature", "AXI4Checker", "attach_checker"]

CHANNELS = ("ar", "r", "aw", "w", "b")


class AXIError(enum.IntEnum, shape=5):
    """Violation codes of :class:`AXI4Checker` (``first_error``; bit ``code``
    of ``error_flags``)."""
    NONE = 0
    AR_VALID_DROPPED = 1
    AR_PAYLOAD_CHANGED = 2
    R_VALID_DROPPED = 3
    R_PAYLOAD_CHANGED = 4
    AW_VALID_DROPPED = 5
    AW_PAYLOAD_CHANGED = 6
    W_VALID_DROPPED = 7
    W_PAYLOAD_CHANGED = 8
    B_VALID_DROPPED = 9
    B_PAYLOAD_CHANGED = 10
    W_LAST = 11             # W burst length differs from AW len (last on the wrong beat)
    R_LAST = 12             # R last on the wrong beat
    AR_4K = 13              # read burst crosses a 4 KiB boundary
    AW_4K = 14              # write burst crosses a 4 KiB boundary
    AR_BURST = 15           # unsupported/illegal burst type, length or size on AR
    AW_BURST = 16           # ... on AW
    B_UNEXPECTED = 17       # B without a completed write
    R_UNEXPECTED = 18       # R without an outstanding read
    OVERFLOW = 19           # more outstanding bursts than the checker tracks


def AXI4MonitorSignature(params: AXI4Params) -> wiring.Signature:
    """The shape of :class:`AXI4Signature` with every member flowing Out, so
    that ``In(AXI4MonitorSignature(p))`` is a bundle of inputs only."""
    def chan(sig):
        return Out(wiring.Signature({
            name: Out(member.shape) for name, member in sig.members.items()}))
    master = AXI4Signature(params)
    return wiring.Signature({ch: chan(master.members[ch].signature) for ch in CHANNELS})


class AXI4Checker(wiring.Component):
    """Passive AXI4 protocol monitor (see the module docstring).

    Ports: ``axi`` (all inputs: ``axi.ar.valid``, ``axi.ar.ready``,
    ``axi.ar.payload``, ...), ``errors`` (Out(32), violations counted, one per
    rule per cycle), ``first_error`` (Out(5), the :class:`AXIError` of the
    first violation, lowest code if several at once), ``error_flags``
    (Out(20), sticky bit per code).
    """

    def __init__(self, axi_params: AXI4Params, *, max_outstanding: int = 16,
                 incr_only: bool = False):
        if not isinstance(axi_params, AXI4Params):
            self._MustUse__silence = True   # rejected, not "created but never used"
            raise TypeError(f"AXI4Checker axi_params must be an AXI4Params, not {axi_params!r}")
        if not isinstance(max_outstanding, int) or isinstance(max_outstanding, bool) \
                or max_outstanding < 1:
            self._MustUse__silence = True
            raise ValueError(f"AXI4Checker max_outstanding must be a positive int, "
                             f"got {max_outstanding!r}")
        self.axi_params = axi_params
        self.max_outstanding = max_outstanding
        self.incr_only = bool(incr_only)
        super().__init__({
            "axi": In(AXI4MonitorSignature(axi_params)),
            "errors": Out(32),
            "first_error": Out(AXIError),
            "error_flags": Out(len(AXIError)),
        })

    def _bad_burst(self, req):
        """Burst parameters that AXI4 forbids (or that this link does not use)."""
        p = self.axi_params
        bad = (req.burst == 3) | (req.size > p.size)
        bad |= (req.burst == BURST_WRAP) & ~((req.len == 1) | (req.len == 3) | (req.len == 7)
                                            | (req.len == 15))
        bad |= (req.burst == BURST_FIXED) & (req.len > 15)
        if self.incr_only:
            bad |= req.burst != BURST_INCR
        return bad

    @staticmethod
    def _crosses_4k(req):
        # from the aligned start address to the last byte of the burst, in one page
        aligned = (req.addr[:12] >> req.size) << req.size
        span = (req.len + 1) << req.size
        return (req.burst == BURST_INCR) & (aligned + span > 4096)

    def elaborate(self, platform):
        m = Module()
        bus = self.axi
        errs = {code: Signal(name=f"err_{code.name.lower()}") for code in AXIError
                if code != AXIError.NONE}

        # -- handshake rules, every channel -----------------------------------------------
        for ch in CHANNELS:
            port = getattr(bus, ch)
            stalled = Signal(name=f"{ch}_stalled")
            held = Signal(Shape.cast(port.payload.shape()).width, name=f"{ch}_held")
            m.d.sync += [stalled.eq(port.valid & ~port.ready), held.eq(port.payload)]
            m.d.comb += [
                errs[AXIError[f"{ch.upper()}_VALID_DROPPED"]].eq(stalled & ~port.valid),
                errs[AXIError[f"{ch.upper()}_PAYLOAD_CHANGED"]].eq(
                    stalled & port.valid & (Value.cast(port.payload) != held)),
            ]

        # -- address checks -----------------------------------------------------------------
        for ch in ("ar", "aw"):
            port = getattr(bus, ch)
            take = port.valid & port.ready
            m.d.comb += [
                errs[AXIError[f"{ch.upper()}_4K"]].eq(take & self._crosses_4k(port.payload)),
                errs[AXIError[f"{ch.upper()}_BURST"]].eq(take & self._bad_burst(port.payload)),
            ]

        overflow = []
        depth = self.max_outstanding

        # -- reads: AR lengths in order, R beats counted against the head -------------------
        m.submodules.ar_lens = arq = RegFIFO(8, depth)
        ar_take = bus.ar.valid & bus.ar.ready
        r_take = bus.r.valid & bus.r.ready
        r_beat = Signal(9)
        m.d.comb += [arq.i.valid.eq(ar_take), arq.i.payload.eq(bus.ar.payload.len)]
        overflow.append(ar_take & ~arq.i.ready)
        r_known = arq.o.valid
        r_final = r_beat == arq.o.payload
        m.d.comb += [
            errs[AXIError.R_UNEXPECTED].eq(r_take & ~r_known),
            errs[AXIError.R_LAST].eq(r_take & r_known & Mux(bus.r.payload.last, ~r_final,
                                                            r_beat >= arq.o.payload)),
            arq.o.ready.eq(r_take & bus.r.payload.last),
        ]
        with m.If(r_take & r_known):
            m.d.sync += r_beat.eq(Mux(bus.r.payload.last, 0, r_beat + (r_beat != 0x1FF)))

        # -- writes: AW lengths and early W bursts, matched in order ------------------------
        # Invariant: at most one of the two queues is non-empty (an AW that finds an
        # early W burst is matched at once, and vice versa).
        m.submodules.aw_lens = awq = RegFIFO(8, depth)
        m.submodules.early_w = ewq = RegFIFO(9, depth)
        aw_take = bus.aw.valid & bus.aw.ready
        w_take = bus.w.valid & bus.w.ready
        w_last = w_take & bus.w.payload.last
        w_beat = Signal(9)
        with m.If(w_take):
            m.d.sync += w_beat.eq(Mux(bus.w.payload.last, 0, w_beat + (w_beat != 0x1FF)))
        # the AW that describes the W burst in progress, if known yet
        bypass = aw_take & ~awq.o.valid & ~ewq.o.valid
        w_known = awq.o.valid | bypass
        w_len = Mux(awq.o.valid, awq.o.payload, bus.aw.payload.len)
        w_wrong = Mux(bus.w.payload.last, w_beat != w_len, w_beat >= w_len)
        aw_matches_early = aw_take & ewq.o.valid
        completed = Signal()
        m.d.comb += [
            completed.eq((w_last & w_known) | aw_matches_early),
            # a W burst that ends with its AW in the same cycle consumes that AW
            awq.i.valid.eq(aw_take & ~ewq.o.valid & ~(w_last & bypass)),
            awq.i.payload.eq(bus.aw.payload.len),
            awq.o.ready.eq(w_last),
            ewq.i.valid.eq(w_last & ~w_known),
            ewq.i.payload.eq(w_beat),
            ewq.o.ready.eq(aw_matches_early),
            errs[AXIError.W_LAST].eq((w_take & w_known & w_wrong)
                                     | (aw_matches_early & (ewq.o.payload != bus.aw.payload.len))),
        ]
        overflow.append(awq.i.valid & ~awq.i.ready)
        overflow.append(ewq.i.valid & ~ewq.i.ready)

        # -- B only for completed writes ----------------------------------------------------
        b_take = bus.b.valid & bus.b.ready
        unanswered = Signal(range(2 * depth + 2))
        b_ok = unanswered != 0
        m.d.comb += errs[AXIError.B_UNEXPECTED].eq(b_take & ~b_ok)
        m.d.sync += unanswered.eq(unanswered + completed - (b_take & b_ok))
        overflow.append(completed & (unanswered == 2 * depth + 1))

        m.d.comb += errs[AXIError.OVERFLOW].eq(Cat(*overflow).any())

        # -- summary ------------------------------------------------------------------------
        ordered = [errs[code] for code in AXIError if code != AXIError.NONE]
        flags = Cat(C(0, 1), *ordered)
        m.d.sync += [
            self.errors.eq(self.errors + sum(ordered)),
            self.error_flags.eq(self.error_flags | flags),
        ]
        with m.If(self.first_error == AXIError.NONE):
            for code in reversed([c for c in AXIError if c != AXIError.NONE]):
                with m.If(errs[code]):
                    m.d.sync += self.first_error.eq(code)
        return m


def attach_checker(m: Module, master_port, slave_port=None, *, name: str = "axi_check",
                   **kwargs) -> AXI4Checker:
    """Add an :class:`AXI4Checker` to `m` watching an AXI4 link.

    With one port (a master's ``Out(AXI4Signature)`` member, or a slave's
    ``In(...)`` member) the checker only taps it; with two (master and slave),
    it also connects them. Returns the checker (read ``errors``,
    ``first_error``)."""
    sig = getattr(master_port, "signature", None)
    if isinstance(sig, wiring.FlippedSignature):
        sig = sig.flip()
    if not isinstance(sig, AXI4Signature):
        raise TypeError(f"attach_checker needs an AXI4 port, not one of signature {sig!r}")
    checker = AXI4Checker(sig.params, **kwargs)
    m.submodules[name] = checker
    if slave_port is not None:
        wiring.connect(m, master_port, slave_port, checker.axi)
    else:
        for ch in CHANNELS:
            src = getattr(master_port, ch)
            dst = getattr(checker.axi, ch)
            m.d.comb += [dst.valid.eq(src.valid), dst.ready.eq(src.ready),
                         dst.payload.eq(src.payload)]
    return checker
