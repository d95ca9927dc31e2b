"""GEMM lowering without simulation: grids, padding, layouts, legal routes
on every preset, and every error a user can cause."""

import numpy as np
import pytest

from tessera.compiler.bitstream import decode
from tessera.compiler.errors import DoesNotFit, DTypeError, ShapeError, Unroutable, UnsupportedOp
from tessera.compiler.gemm import compile_gemm, plan_gemm
from tessera.compiler.graph import Graph
from tessera.compiler.lower import lower
from tessera.compiler.pathfinder import check_routes
from tessera.hw.params import preset
from tessera.sim.host import run_gemm


@pytest.mark.parametrize("name", ["tiny", "small", "default"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (37, 50, 23), (128, 128, 128), (8, 256, 16),
                                   (256, 8, 16)])
def test_every_pcu_used_and_routes_legal(name, shape):
    p = preset(name)
    cg = compile_gemm(p, *shape)
    plan = cg.plan
    assert plan.R * plan.G == p.num_pcus
    placed = {cg.placement.config_unit(u) for u in plan.netlist.units
              if plan.netlist.units[u].kind == "pcu"}
    assert len(placed) == p.num_pcus
    assert check_routes(p, cg.config, cg.placement.physical_nets()) == []
    m, n, k = shape
    assert plan.Mp >= m and plan.Np >= n and plan.Kp >= k
    assert plan.Kp % p.lanes == 0 and plan.Np % (plan.G * p.lanes) == 0 and plan.Mp % plan.R == 0
    # operands and result do not overlap
    assert plan.a_addr + plan.a_bytes <= plan.b_addr
    assert plan.b_addr + plan.b_bytes <= plan.c_addr


def test_multicast_of_operands_on_default():
    cg = compile_gemm(preset("default"), 128, 128, 128)
    nets = {n.name: n for n in cg.plan.netlist.nets}
    assert cg.plan.R * cg.plan.G == 8
    assert len(nets["A0"].sinks) == cg.plan.G        # A row group to its G PCUs
    assert len(nets["B0"].sinks) == cg.plan.R        # B block to its R PCUs


def test_padding_round_trip():
    plan = plan_gemm(preset("small"), 5, 9, 3)
    a = np.arange(15, dtype=np.int8).reshape(5, 3)
    pa = plan.pad_a(a)
    assert pa.shape == (plan.Mp, plan.Kp) and np.array_equal(pa[:5, :3], a)
    assert not pa[5:].any() and not pa[:, 3:].any()
    c = np.arange(plan.Mp * plan.Np, dtype=np.int32)
    assert plan.crop_c(c).shape == (5, 9)


def test_deterministic_for_a_seed():
    a = compile_gemm(preset("default"), 64, 64, 64, seed=3)
    b = compile_gemm(preset("default"), 64, 64, 64, seed=3)
    assert a.bitstream == b.bitstream


# -- user errors -------------------------------------------------------------------------------

def test_shape_errors():
    with pytest.raises(ShapeError, match="M must be a positive integer"):
        plan_gemm(preset("small"), 0, 4, 4)
    g = Graph()
    a = g.input("A", (3, 4), "int8")
    b = g.input("B", (5, 2), "int8")
    with pytest.raises(ShapeError, match="inner dimensions differ"):
        g.matmul(a, b)


def test_dtype_errors():
    with pytest.raises(DTypeError, match="int8, int16"):
        plan_gemm(preset("small"), 4, 4, 4, "int32")
    from tessera import gemm
    with pytest.raises(DTypeError, match="float32"):
        gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))


def test_k_tiles():
    """K beyond a PMU's rows: equal tiles of at most pmu_depth rows, the same
    netlist for every tile (only AGCU addresses change), and a reduction
    whose shares cover every vector of C once."""
    p = preset("small")
    assert plan_gemm(p, 4, 4, 256).T == 1
    plan = plan_gemm(p, 9, 12, 1000)
    assert plan.T == 4 and plan.Kt == 252 and plan.Kp == 1008 and plan.Kt <= p.pmu_depth
    assert plan.Kt % p.lanes == 0
    red = plan.reduce
    assert red.T == plan.T and red.src == plan.partial_addr and red.dst == plan.c_addr
    covered = [v for v0, n in red.shares for v in range(v0, v0 + n)]
    assert covered == list(range(plan.Mp * plan.Np // p.lanes))
    assert plan.partial_addr + plan.T * plan.c_bytes <= plan.c_addr
    cg = compile_gemm(p, 9, 12, 1000)
    assert len(cg.bitstreams) == plan.T + 1
    configs = [decode(bs, p).normalized() for bs in cg.tiles]
    for cfg in configs[1:]:
        changed = {u for u in cfg if cfg[u] != configs[0][u]}
        assert changed and all(u.startswith("agcu_") for u in changed), changed


def test_does_not_fit():
    with pytest.raises(DoesNotFit, match="DRAM"):
        run_gemm(preset("small"), m=1024, n=1024, k=8, sim="pysim")
    few = preset("small").replace(name="few", agcus=1)
    with pytest.raises(DoesNotFit, match="AGCU"):
        plan_gemm(few, 4, 4, 4)


def test_unsupported_op():
    g = Graph()
    x = g.input("X", (4, 4), "int32")
    g.output("Y", g.softmax(x))
    with pytest.raises(UnsupportedOp, match="softmax"):
        lower(g, preset("small"))


def test_unroutable():
    """Four vector streams from the west column to the east column of a 2x2
    fabric with one vector track: two eastward wires cross the cut."""
    from tessera.compiler.netlist import Netlist
    from tessera.compiler.pathfinder import route
    from tessera.compiler.place import place
    p = preset("small")
    assert p.vec_tracks == 1
    nl = Netlist()
    nl.add_unit("ag0", "agcu", pin=0)
    nl.add_unit("ag1", "agcu", pin=1)
    nl.add_unit("pe_w", "pcu", pin=(0, 0))
    nl.add_unit("mem_w", "pmu", pin=(1, 0))
    nl.add_unit("mem_e", "pmu", pin=(0, 1))
    nl.add_unit("pe_e", "pcu", pin=(1, 1))
    nl.connect("a", ("ag0", "vec", 0), ("mem_e", "vec", 0))
    nl.connect("b", ("ag1", "vec", 0), ("mem_e", "vec", 1))
    nl.connect("c", ("pe_w", "vec", 0), ("pe_e", "vec", 0))
    nl.connect("d", ("mem_w", "vec", 0), ("pe_e", "vec", 1))
    with pytest.raises(Unroutable, match="vec"):
        route(place(p, nl, seed=0))


def test_program_builder_refuses_acc_where_it_reads_zero():
    """The PCU reads ACC as 0 in a shift, a bitwise op, a compare or a
    multiplier's a and b, and in c except MAC's: the program builder says so
    instead of building a program that would silently read 0."""
    from tessera.compiler.programs import PcuProgram
    from tessera.hw.pcu import Op
    p = preset("small")
    prog = PcuProgram(p, [])
    with pytest.raises(ValueError, match="SHL reads ACC as 0 in operand a: ACC is operand a "
                                         "of PASS, ADD, SUB, MAX, MIN, SEL only"):
        prog.stage(Op.SHL, a="acc", b="r0")
    with pytest.raises(ValueError, match="SEL reads ACC as 0 in operand c: ACC is operand c "
                                         "of MAC only"):
        prog.stage(Op.SEL, a="r0", b="r1", c="acc")
    assert prog.stages == []                         # nothing was added
    prog.stage(Op.MAC, a="r0", b="bc", c="acc", bc="s0", acc_level=1)
    prog.stage(Op.MAX, a="r1", b="acc", dst=1, acc_level=1)
    assert len(prog.stages) == 2
