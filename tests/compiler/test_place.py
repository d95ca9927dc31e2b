"""Placement: legal slots, pins honoured, deterministic, better than random,
and the user errors (does not fit, bad pins, bad netlists)."""

import random

import pytest

from tessera.compiler.errors import CompileError, DoesNotFit, NetlistError
from tessera.compiler.netlist import Netlist, Pin
from tessera.compiler.place import place, placement_cost, slots_of_kind
from tessera.hw.params import preset
from tessera.hw.topology import Topology


def pipeline_netlist(n_chains, *, agcus=True):
    """AGCU -> PMU -> PCU -> AGCU chains, plus a multicast from PMU 0 to every PCU:
    the shape of a tiled GEMM (B tile broadcast, A streamed)."""
    nl = Netlist()
    for i in range(n_chains):
        nl.add_unit(f"c{i}", "pcu", f"gemm[{i}]")
        nl.add_unit(f"m{i}", "pmu", f"A[{i}]")
    nl.add_unit("mb", "pmu", "B")
    if agcus:
        nl.add_unit("ld", "agcu", "load")
        nl.add_unit("st", "agcu", "store")
        nl.connect("ld", ("ld", "vec", 0), ("mb", "vec", 0), *[(f"m{i}", "vec", 1)
                                                              for i in range(n_chains)])
        nl.connect("st", ("c0", "vec", 0), ("st", "vec", 0))
    for i in range(n_chains):
        nl.connect(f"a{i}", (f"m{i}", "vec", 0), (f"c{i}", "vec", 0))
        nl.connect(f"done{i}", (f"c{i}", "ctrl", 0), (f"m{i}", "ctrl", 0))
    nl.connect("b", ("mb", "vec", 0), *[(f"c{i}", "vec", 1) for i in range(n_chains)])
    return nl


def random_netlist(params, seed, n_nets):
    rng = random.Random(seed)
    nl = Netlist()
    kinds = ["pcu"] * params.num_pcus + ["pmu"] * params.num_pmus
    for i, k in enumerate(kinds):
        nl.add_unit(f"u{i}", k, f"{k}{i}")
    names = list(nl.units)
    free_in = [(u, net, p) for u in names for net in ("vec", "scal", "ctrl")
               for p in range({"vec": params.unit_vec_in, "scal": params.unit_scal_in,
                               "ctrl": params.unit_ctrl_in}[net])]
    free_out = [(u, net, p) for u in names for net in ("vec", "scal", "ctrl")
                for p in range({"vec": params.unit_vec_out, "scal": params.unit_scal_out,
                                "ctrl": params.unit_ctrl_out}[net])]
    rng.shuffle(free_in)
    rng.shuffle(free_out)
    for n in range(n_nets):
        if not free_out:
            break
        src = free_out.pop()
        sinks = [p for p in free_in if p[1] == src[1] and p[0] != src[0]][:rng.choice([1, 1, 2, 3])]
        if not sinks:
            continue
        for s in sinks:
            free_in.remove(s)
        nl.connect(f"n{n}", src, *sinks)
    return nl


def assert_legal(params, nl, pl):
    used = set()
    for name, unit in nl.units.items():
        slot = pl.slots[name]
        assert slot in slots_of_kind(params, unit.kind), (name, slot)
        assert (unit.kind, slot) not in used, f"two units in {slot}"
        used.add((unit.kind, slot))
        if unit.pin is not None:
            assert slot == unit.pin


@pytest.mark.parametrize("name,chains", [("small", 1), ("default", 3), ("default", 7)])
def test_placement_is_legal_and_deterministic(name, chains):
    params = preset(name)
    nl = pipeline_netlist(chains)
    a = place(params, nl, seed=3)
    b = place(params, nl, seed=3)
    assert_legal(params, nl, a)
    assert a.slots == b.slots and a.cost == b.cost
    # The incremental cost agrees with a from-scratch evaluation.
    assert a.cost == pytest.approx(placement_cost(params, nl, a.slots)[0])


@pytest.mark.parametrize("name,seed", [("tiny", 0), ("small", 1), ("default", 2), ("default", 3)])
def test_random_netlists_place_legally(name, seed):
    params = preset(name)
    nl = random_netlist(params, seed, 3 * params.tiles)
    assert_legal(params, nl, place(params, nl, seed=seed))


def test_annealing_beats_random_placements():
    params = preset("default")
    nl = pipeline_netlist(7)
    pl = place(params, nl, seed=0)
    rng = random.Random(99)
    random_costs = []
    for _ in range(30):
        slots = {}
        for kind in ("pcu", "pmu", "agcu"):
            free = slots_of_kind(params, kind)
            rng.shuffle(free)
            for u, unit in nl.units.items():
                if unit.kind == kind:
                    slots[u] = free.pop()
        random_costs.append(placement_cost(params, nl, slots)[0])
    assert pl.cost < min(random_costs)
    assert pl.cost <= 0.6 * sum(random_costs) / len(random_costs)


def test_pins_are_honoured_and_agcu_ports_follow_topology():
    params = preset("default")
    nl = Netlist()
    nl.add_unit("c", "pcu", "gemm", pin=(3, 3))
    nl.add_unit("m", "pmu", "buf")
    nl.add_unit("a", "agcu", "io", pin=2)
    nl.connect("ld", ("a", "vec", 0), ("m", "vec", 0))
    nl.connect("x", ("m", "vec", 0), ("c", "vec", 1))
    nl.connect("st", ("c", "vec", 0), ("a", "vec", 0))
    pl = place(params, nl, seed=5)
    assert pl.slots["c"] == (3, 3) and pl.slots["a"] == 2
    assert pl.config_unit("c") == "pcu_3_3" and pl.config_unit("a") == "agcu_2"
    e = Topology(params).agcu_edge(2)
    pn = {n.name: n for n in pl.physical_nets()}
    assert pn["ld"].source == ((e.pos, 0), (e.side, 0))      # AGCU read -> edge input
    assert pn["st"].sinks == (((e.pos, 0), (e.side, 0)),)    # edge output -> AGCU write
    assert pn["x"].sinks == (((3, 3), ("U", 1)),)
    assert "PCU gemm" in pl.summary() and "pcu_3_3" in pl.summary()


def test_does_not_fit_counts_units_and_slots():
    params = preset("tiny")
    nl = Netlist()
    for i in range(3):
        nl.add_unit(f"c{i}", "pcu")
    for i in range(3):
        nl.add_unit(f"a{i}", "agcu")
    with pytest.raises(DoesNotFit, match=r"needs 3 PCUs, 0 PMUs, 3 AGCUs; preset 'tiny' \(1x2\) "
                                         r"has 1 PCU, 1 PMU, 2 AGCUs: too many PCUs \(3 > 1\), "
                                         r"AGCUs \(3 > 2\)") as info:
        place(params, nl)
    assert info.value.asked["pcu"] == 3 and info.value.available["pcu"] == 1


@pytest.mark.parametrize("build,message", [
    (lambda nl: nl.add_unit("x", "pcu", pin=(0, 1)), r"'x' is a PCU but tile \(0, 1\) holds a PMU"),
    (lambda nl: nl.add_unit("x", "pmu", pin=(9, 0)), r"pinned to \(9, 0\), not a tile of the 4x4"),
    (lambda nl: nl.add_unit("x", "agcu", pin=9), r"pinned to AGCU 9; preset 'default' has AGCUs 0..7"),
    (lambda nl: (nl.add_unit("x", "pcu", pin=(0, 0)), nl.add_unit("y", "pcu", pin=(0, 0))),
     r"'x' and 'y' are both pinned to PCU slot \(0, 0\)"),
    (lambda nl: (nl.add_unit("x", "pcu"), nl.connect("n", ("x", "vec", 5), ("x", "vec", 0))),
     r"PCU 'x' has 1 vec output port\(s\), not port 5"),
    (lambda nl: (nl.add_unit("x", "agcu"), nl.connect("n", ("x", "ctrl", 0), ("x", "vec", 0))),
     r"AGCU 'x' has 0 ctrl output port\(s\)"),
    (lambda nl: (nl.add_unit("x", "pcu"), nl.connect("n", ("x", "vec", 0), ("y", "vec", 0))),
     r"no unit named 'y'"),
    (lambda nl: (nl.add_unit("x", "pcu"), nl.add_unit("y", "pmu"),
                 nl.connect("n", ("x", "vec", 0), ("y", "vec", 0)),
                 nl.connect("m", ("x", "vec", 0), ("y", "vec", 1))),
     r"output x.vec\[0\] drives two nets: 'n' and 'm'"),
    (lambda nl: (nl.add_unit("x", "pcu"), nl.add_unit("y", "pmu"),
                 nl.connect("n", ("x", "vec", 0), ("y", "vec", 0)),
                 nl.connect("m", ("y", "vec", 0), ("y", "vec", 0))),
     r"input y.vec\[0\] is fed by two nets: 'n' and 'm'"),
    (lambda nl: (nl.add_unit("x", "pcu"), nl.add_unit("y", "pmu"),
                 nl.connect("n", ("x", "vec", 0), ("y", "ctrl", 0))),
     r"pin y.ctrl\[0\] is on the ctrl network but the net starts on vec"),
])
def test_netlist_errors_name_the_pin(build, message):
    nl = Netlist()
    build(nl)
    with pytest.raises(NetlistError, match=message):
        place(preset("default"), nl)


def test_netlist_construction_errors():
    nl = Netlist()
    nl.add_unit("x", "pcu")
    with pytest.raises(NetlistError, match="defined twice"):
        nl.add_unit("x", "pmu")
    with pytest.raises(NetlistError, match="kind 'gpu'"):
        nl.add_unit("z", "gpu")
    with pytest.raises(NetlistError, match="has no sinks"):
        nl.connect("n", Pin("x", "vec", 0))
    assert issubclass(NetlistError, CompileError) and issubclass(DoesNotFit, CompileError)
