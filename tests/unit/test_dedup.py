"""sim/dedup.py: merging the identical modules of Amaranth's Verilog."""

import re

import pytest
from amaranth import Module
from amaranth.back import verilog
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from tessera.hw.links import Hop, StreamFIFO
from tessera.sim.dedup import DedupError, dedup_verilog

from ..yosys import run_yosys_script


class Pair(wiring.Component):
    """Two identical FIFOs (their memories' ports carry globally numbered
    names that differ between the copies) and a hop."""

    def __init__(self, width):
        self.layout = data.StructLayout({"data": width, "last": 1})
        super().__init__(self.signature_of(width))

    @staticmethod
    def signature_of(width):
        layout = data.StructLayout({"data": width, "last": 1})
        return wiring.Signature({f"{d}{j}": (In if d == "i" else Out)(
            wiring.Signature({"valid": Out(1), "ready": In(1), "payload": Out(layout)}))
            for d in "io" for j in range(3)})

    def elaborate(self, platform):
        m = Module()
        for j in range(2):
            m.submodules[f"q{j}"] = q = StreamFIFO(self.layout, 3)
            wiring.connect(m, wiring.flipped(getattr(self, f"i{j}")), q.i)
            wiring.connect(m, q.o, wiring.flipped(getattr(self, f"o{j}")))
        m.submodules.hop = h = Hop(self.layout)
        wiring.connect(m, wiring.flipped(self.i2), h.i)
        wiring.connect(m, h.o, wiring.flipped(self.o2))
        return m


class Top(wiring.Component):
    """Two identical Pairs (merged bottom-up) and one of another width (kept)."""

    def __init__(self):
        members = {}
        for k, w in enumerate((3, 3, 2)):
            sig = Pair.signature_of(w)
            for port in sig.members:
                members[f"p{k}_{port}"] = sig.members[port]
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for k, w in enumerate((3, 3, 2)):
            m.submodules[f"p{k}"] = p = Pair(w)
            for port in p.signature.members:
                mine = getattr(self, f"p{k}_{port}")
                if port.startswith("i"):
                    wiring.connect(m, wiring.flipped(mine), getattr(p, port))
                else:
                    wiring.connect(m, getattr(p, port), wiring.flipped(mine))
        return m


def _modules(text):
    return re.findall(r"^module\s+(\S+)", text, re.M)


def test_identical_modules_are_merged():
    text = verilog.convert(Top(), name="top")
    out, figures = dedup_verilog(text)
    assert figures["modules_before"] == len(_modules(text))
    assert figures["modules_after"] == len(_modules(out))
    names = [n.rstrip() for n in _modules(out)]
    # top, two Pair modules (widths 5 and 3), and inside them one FIFO module
    # (+ its buffered FIFO) and one hop per width
    assert sum(1 for n in names if re.search(r"\.p\d$", n)) == 2
    assert figures["modules_after"] < figures["modules_before"]
    # every instance names a module that still exists, with ports it has
    kept = set(names)
    for inst in re.findall(r"^\s+(\\\S+)\s+\S+\s*\($", out, re.M):
        assert inst in kept, inst
    # the instance names (the hierarchy a testbench walks) are unchanged
    inst_names = lambda t: sorted(re.findall(r"^\s+\\\S+\s+(\S+)\s*\($", t, re.M))
    assert set(inst_names(out)) == set(inst_names(text))


def test_merged_verilog_is_equivalent(tmp_path):
    """Yosys' SAT solver: the merged design equals the original, cycle by
    cycle, for 10 cycles from reset, for every input sequence."""
    gold = verilog.convert(Top(), name="gold")
    gate, figures = dedup_verilog(verilog.convert(Top(), name="gate"))
    assert figures["modules_after"] < figures["modules_before"]
    (tmp_path / "gold.v").write_text(gold)
    (tmp_path / "gate.v").write_text(gate)
    run_yosys_script(tmp_path, (
        "read_verilog gate.v\nhierarchy -check -top gate\nproc\nmemory\nflatten\n"
        "design -stash merged\n"
        "read_verilog gold.v\nhierarchy -check -top gold\nproc\nmemory\nflatten\n"
        "design -copy-from merged -as gate gate\n"
        "miter -equiv -flatten -make_assert gold gate miter\n"
        "hierarchy -top miter\n"
        "sat -verify -prove-asserts -set-init-zero -seq 10 miter\n"))


def test_a_changed_copy_is_not_merged():
    """Two modules that differ anywhere (here one extra wire) stay apart."""
    text = verilog.convert(Top(), name="top")
    mods = _modules(text)
    fifo = [n for n in mods if n.endswith(".p1.q0")][0]
    start = text.index(f"module {fifo}")
    end = text.index("endmodule", start)
    changed = text[:end] + "  wire \\changed ;\n" + text[end:]
    assert changed != text
    _, a = dedup_verilog(text)
    _, b = dedup_verilog(changed)
    assert b["modules_after"] == a["modules_after"] + 2     # the FIFO and its Pair


@pytest.mark.parametrize("bad, match", [
    ("module a(x);\n input x;\n", "no endmodule"),
    ("(* keep *)\nwire x;\n", "attributes not followed by a module"),
])
def test_unreadable_verilog_is_an_error(bad, match):
    with pytest.raises(DedupError, match=match):
        dedup_verilog(bad)
