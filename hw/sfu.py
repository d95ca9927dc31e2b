"""Special functions of the PCU tail: fixed-point exp2 and reciprocal.

One :class:`SFULane` per SIMD lane sits in the PCU's tail (after the last
pipeline stage; see :mod:`.pcu`). It is a fixed-latency pipeline that advances
with the PCU's single enable, so it needs no handshake of its own. Both
functions share one 17x17 unsigned multiplier per lane (one DSP18 on ECP5).

Formats (``shift`` is the tail's 5-bit configuration field, F = ``shift``):

``EXP2``  input x: signed Q15.16 (x / 2**16). Output: round(2**x * 2**F),
          saturated to 0x7FFF_FFFF. exp2 of the 16 fraction bits is a
          16-segment linear interpolation of 2**f in Q1.15:
          ``m = T[i] + ((D[i] * r + 2**11) >> 12)`` with ``i = f[12:16]``,
          ``r = f[0:12]``, ``T[i] = round(2**(i/16) * 2**15)``,
          ``D[i] = T[i+1] - T[i]``; then ``m * 2**(n + F - 15)`` with a
          round-half-up right shift (n = integer part). Max abs error over
          all x <= 0, relative to 1.0, is 2.6e-4 for F >= 14
          (``scripts/bench_sfu.py``).

``RECIP`` input a: a positive int32; output round(2**K / a) with
          K = F + 16 (so Q16.16 -> Q16.16 is F = 16, Q16.16 -> Q2.30 is
          F = 30, an integer -> Q1.30 is F = 14). a <= 0 and results
          >= 2**31 saturate to 0x7FFF_FFFF. Normalize ``a = m * 2**(31-lz)``
          (``mn = a << lz``), seed ``y0 = SEED_Y[mn[24:31]]`` (Q0.16,
          1/m at the middle of one of 128 intervals) and one Newton step in
          the form ``y1 = 2*y0 - m*y0**2`` with ``y0**2`` from a second table
          ``SEED_Q`` (Q0.17), ``m`` truncated to Q1.16: one multiply, plus a
          bias of 2**-16 that makes 1/2**k exact. Relative error <= 7.8e-5
          (bound 1e-4) wherever the exact result is >= 2**14.

The golden model of both is :func:`tessera.sim.pcu_model.exp2_fixed` and
:func:`tessera.sim.pcu_model.recip_fixed`; tests compare them bit for bit.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SFU_NONE", "SFU_EXP2", "SFU_RECIP", "SFU_LATENCY", "EXP2_T", "EXP2_D",
           "SEED_Y", "SEED_Q", "SATURATED", "RECIP_BIAS", "SFULane"]

SFU_NONE, SFU_EXP2, SFU_RECIP = 0, 1, 2

#: Cycles (PCU enables) from the lane's input register to its output register.
SFU_LATENCY = 6

SATURATED = 0x7FFF_FFFF

#: Added to the Newton result (Q.33): makes the reciprocal of every power of two
#: exact (the Newton step alone lands just below 1/m).
RECIP_BIAS = 1 << 17

#: exp2 tables: 2**(i/16) in Q1.15 for i = 0..16, and the segment slopes.
EXP2_T = [round(2 ** (i / 16) * 2 ** 15) for i in range(17)]
EXP2_D = [EXP2_T[i + 1] - EXP2_T[i] for i in range(16)]

#: Reciprocal seed: 1/m at the middle of [1 + i/128, 1 + (i+1)/128) in Q0.16,
#: and its square in Q0.17 (so the Newton step needs one multiply).
SEED_Y = [round(2 ** 16 / (1 + (i + 0.5) / 128)) for i in range(128)]
SEED_Q = [round(y * y / 2 ** 15) for y in SEED_Y]

assert max(EXP2_D) < 2 ** 12 and max(SEED_Y) < 2 ** 16 and max(SEED_Q) < 2 ** 17


def _clz32(m, value):
    """Count leading zeros of a 32-bit value (a priority encoder)."""
    lz = Signal(6)
    m.d.comb += lz.eq(32)
    for i in range(32):          # the last assignment (highest set bit) wins
        with m.If(value[i]):
            m.d.comb += lz.eq(31 - i)
    return lz


class SFULane(wiring.Component):
    """The special-function unit of one lane: exp2 and reciprocal in fixed
    point (formats in the module docstring), ``SFU_LATENCY`` enables deep.

    ``op``, ``shift`` are the tail configuration (static while running);
    ``a`` is sampled when ``en`` is high and ``r`` is its result
    ``SFU_LATENCY`` enables later. ``r`` is 0 when ``op`` is ``SFU_NONE``.
    """

    en: In(1)
    op: In(2)
    shift: In(5)
    a: In(32)
    r: Out(32)

    def elaborate(self, platform):
        m = Module()
        en = self.en
        op = self.op
        is_exp = op == SFU_EXP2
        is_rcp = op == SFU_RECIP

        # -- step 1: leading zeros (recip); split and table lookup (exp2) --------
        a = self.a
        lz = _clz32(m, a)
        t_rom = Array(Const(v, 17) for v in EXP2_T[:16])
        d_rom = Array(Const(v, 12) for v in EXP2_D)
        s1_a = Signal(32)
        s1_lz = Signal(6)
        s1_bad = Signal()          # recip of a <= 0
        s1_n = Signal(signed(16))  # exp2 integer part
        s1_r = Signal(12)
        s1_t = Signal(17)
        s1_d = Signal(12)
        with m.If(en):
            m.d.sync += [
                s1_a.eq(a), s1_lz.eq(lz),
                s1_bad.eq(a[31] | (a == 0)),
                s1_n.eq(a[16:32]), s1_r.eq(a[0:12]),
                s1_t.eq(t_rom[a[12:16]]), s1_d.eq(d_rom[a[12:16]]),
            ]

        # -- step 2: normalize (recip); the seed tables are read synchronously ---
        mn = Signal(32)
        m.d.comb += mn.eq(s1_a << s1_lz)
        m.submodules.seed_y = seed_y = Memory(shape=16, depth=128, init=SEED_Y)
        m.submodules.seed_q = seed_q = Memory(shape=17, depth=128, init=SEED_Q)
        rd_y = seed_y.read_port(transparent_for=())
        rd_q = seed_q.read_port(transparent_for=())
        m.d.comb += [rd_y.addr.eq(mn[24:31]), rd_q.addr.eq(mn[24:31]),
                     rd_y.en.eq(en), rd_q.en.eq(en)]
        s2_mh = Signal(17)
        s2_lz = Signal(6)
        s2_bad = Signal()
        s2_n = Signal(signed(16))
        s2_r = Signal(12)
        s2_t = Signal(17)
        s2_d = Signal(12)
        with m.If(en):
            m.d.sync += [s2_mh.eq(mn[15:32]), s2_lz.eq(s1_lz), s2_bad.eq(s1_bad),
                         s2_n.eq(s1_n), s2_r.eq(s1_r), s2_t.eq(s1_t), s2_d.eq(s1_d)]

        # -- step 3: the shared multiply ------------------------------------------
        mul_x = Signal(17)
        mul_y = Signal(17)
        with m.If(is_rcp):
            m.d.comb += [mul_x.eq(s2_mh), mul_y.eq(rd_q.data)]
        with m.Else():
            m.d.comb += [mul_x.eq(s2_d), mul_y.eq(s2_r)]
        s3_p = Signal(34)
        s3_y0 = Signal(16)
        s3_lz = Signal(6)
        s3_bad = Signal()
        s3_n = Signal(signed(16))
        s3_t = Signal(17)
        with m.If(en):
            m.d.sync += [s3_p.eq(mul_x * mul_y), s3_y0.eq(rd_y.data), s3_lz.eq(s2_lz),
                         s3_bad.eq(s2_bad), s3_n.eq(s2_n), s3_t.eq(s2_t)]

        # -- step 4: Newton step / interpolation; the final shift amount ----------
        # rs > 0: round-half-up right shift by rs; rs <= 0: left shift by -rs.
        s4_v = Signal(35)
        s4_rs = Signal(signed(19))
        s4_bad = Signal()
        y1 = Signal(35)
        # + 2**17: Newton lands below 1/m; the bias makes 1/2**k exact
        m.d.comb += y1.eq((s3_y0 << 18) - s3_p + RECIP_BIAS)
        with m.If(en):
            with m.If(is_rcp):
                m.d.sync += [s4_v.eq(y1), s4_rs.eq(64 - 16 - self.shift - s3_lz),
                             s4_bad.eq(s3_bad)]
            with m.Else():
                m.d.sync += [s4_v.eq(s3_t + ((s3_p + 2048) >> 12)),
                             s4_rs.eq(15 - self.shift - s3_n), s4_bad.eq(0)]

        # -- step 5: scale with rounding and saturation, in two cycles ----------
        # 5a: the rounding add of the right shift; the whole left-shift case
        # (rs in -15..0), saturated.
        amount = Signal(6)
        m.d.comb += amount.eq(Mux(s4_rs > 36, 36, s4_rs[0:6]))
        left = Signal(50)
        m.d.comb += left.eq(s4_v << (-s4_rs)[0:4])
        s5_sum = Signal(37)
        s5_amount = Signal(6)
        s5_right = Signal()        # rs > 0: the result is the rounded right shift
        s5_fixed = Signal(32)      # otherwise, the result
        with m.If(en):
            m.d.sync += [s5_sum.eq(s4_v + ((Const(1, 37) << amount) >> 1)),
                         s5_amount.eq(amount),
                         s5_right.eq(~s4_bad & (s4_rs > 0))]
            with m.If(s4_bad | (s4_rs < -15)):
                m.d.sync += s5_fixed.eq(SATURATED)
            with m.Else():
                m.d.sync += s5_fixed.eq(Mux(left >= 2 ** 31, SATURATED, left))
        # 5b: the right shift and its saturation.
        right = Signal(36)
        m.d.comb += right.eq(s5_sum >> s5_amount)
        result = Signal(32)
        m.d.comb += result.eq(Mux(s5_right, Mux(right >= 2 ** 31, SATURATED, right), s5_fixed))
        with m.If(en):
            m.d.sync += self.r.eq(Mux(is_exp | is_rcp, result, 0))
        return m
