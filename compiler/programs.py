"""Pieces of unit programs that every lowering writes: counters of a
counter chain padded to the preset's chain, a PMU side (``wr``/``rd``)
that streams whole vectors through a run of counters, and PCU programs
written with operand names (:class:`PcuProgram`)."""

from __future__ import annotations

from ..hw.params import FabricParams
from ..hw.pcu import AccInit, Op, acc_readers, bc_code, src_code
from .errors import DoesNotFit

__all__ = ["counter", "pad_counters", "pad_zeros", "pmu_stream", "PcuProgram"]

MASK32 = 0xFFFF_FFFF


def counter(n: int, stride: int = 1) -> dict:
    """A counter from 0 while below `n`, by `stride`."""
    return {"start": 0, "stop": n, "stride": stride}


def pad_counters(p: FabricParams, counters: list) -> list:
    """`counters` (innermost first), padded with one-iteration counters."""
    return (list(counters) + [counter(1)] * p.counters)[:p.counters]


def pad_zeros(p: FabricParams, values: list) -> list:
    return (list(values) + [0] * p.counters)[:p.counters]


def pmu_stream(p: FabricParams, counters: list, astride: list) -> dict:
    """A PMU side on vector port 0, no lane rotation, row address
    ``sum(astride_i * k_i)`` in the current buffer."""
    return {"en": 1, "scalar": 0, "port": 0, "counters": pad_counters(p, counters),
            "astride": pad_zeros(p, astride), "rstride": pad_zeros(p, []), "base": 0,
            "rbase": 0, "lstride": 0, "last": 0}


class PcuProgram:
    """Builds one PCU program with operand names instead of codes:
    ``PcuProgram(p, [counter(K), counter(M)]).inputs(vec=[0]).stage(Op.MAC,
    "r0", "bc", "acc", bc="s0", acc_level=1).done(vec_out=(0, 1))``. Unused
    stages are NOPs; a program longer than the preset's PCU raises DoesNotFit."""

    def __init__(self, p: FabricParams, counters):
        self.p = p
        self.stages = []
        self.prog = {"en": 1, "counters": pad_counters(p, counters)}

    def stage(self, op, a="r0", b="r0", c="r0", dst=0, bc="const", const=0, shift=0,
              acc_level=0, acc_init=AccInit.ZERO, acc_a=0):
        """One stage. Operand ``"acc"`` is refused where the PCU reads it as 0
        (:func:`~tessera.hw.pcu.acc_readers`): a program that meant to
        accumulate there would silently read 0."""
        p = self.p
        op = Op(op)
        for name, sel in (("a", a), ("b", b), ("c", c)):
            if sel == "acc" and op not in acc_readers(name):
                users = ", ".join(o.name for o in acc_readers(name))
                raise ValueError(f"{op.name} reads ACC as 0 in operand {name}: ACC is operand "
                                 f"{name} of {users} only")
        self.stages.append({"op": op, "a": src_code(p, a), "b": src_code(p, b),
                            "c": src_code(p, c), "dst": dst, "bc": bc_code(p, bc),
                            "const": int(const) & MASK32, "shift": shift,
                            "acc_level": acc_level, "acc_init": acc_init,
                            "acc_a": int(acc_a)})
        return self

    def inputs(self, vec=(), scal=()):
        """`vec`/`scal`: the pop level of each enabled input, in port order."""
        self.prog["vec_in"] = [{"en": 1, "level": lv} for lv in vec]
        self.prog["scal_in"] = [{"en": 1, "level": lv} for lv in scal]
        return self

    def done(self, vec_out=None, scal_out=None, tail=None) -> dict:
        """vec_out (src, level); scal_out (src, lane, level); src 'tail' is the SFU."""
        p = self.p
        if len(self.stages) > p.stages:
            raise DoesNotFit(f"a PCU program needs {len(self.stages)} stages; preset "
                             f"{p.name!r} has {p.stages}")
        code = lambda s: p.pcu_regs if s == "tail" else s
        prog = dict(self.prog)
        prog["stages"] = self.stages + [{"op": Op.NOP}] * (p.stages - len(self.stages))
        if vec_out is not None:
            prog["vec_out"] = [{"en": 1, "src": code(vec_out[0]), "level": vec_out[1], "last": 0}]
        if scal_out is not None:
            prog["scal_out"] = [{"en": 1, "src": code(scal_out[0]), "lane": scal_out[1],
                                 "level": scal_out[2], "last": 0}]
        if tail is not None:
            if not p.pcu_sfu:
                raise DoesNotFit(f"preset {p.name!r} has no special-function tail (exp2, "
                                 f"reciprocal) in its PCUs")
            prog["tail"] = {"op": tail[0], "src": tail[1], "shift": tail[2]}
        return prog
