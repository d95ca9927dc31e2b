"""PathFinder routing: legal (checked by walking the switch selects, not by
trusting the router), multicast trees, negotiation, determinism, merging into
an existing configuration, and Unroutable naming the nets and resources."""

import time

import pytest

from tessera.compiler.bitstream import FabricConfig, decode, encode
from tessera.compiler.errors import CompileError, NetlistError, Unroutable
from tessera.compiler.netlist import Netlist
from tessera.compiler.pathfinder import check_routes, route, route_nets
from tessera.compiler.place import PhysicalNet, place
from tessera.hw.params import preset
from tessera.hw.pcu import PCU
from tessera.hw.topology import Topology

from .test_place import pipeline_netlist, random_netlist


def assert_legal(params, placement, routing):
    nets = placement.physical_nets()
    assert check_routes(params, routing.config, nets) == []
    # The router's own report agrees: each switch output carries one net ...
    used = {}
    for r in routing.routes.values():
        for tile, i, o in r.hops:
            key = (r.network, tile, o)
            assert key not in used, f"{key} carries {used[key]} and {r.name}"
            used[key] = r.name
    # ... and each sink's path is a chain of neighbouring tiles from the source.
    for pn in nets:
        r = routing.routes[pn.name]
        assert len(r.paths) == len(pn.sinks)
        for path, (sink_tile, _) in zip(r.paths, pn.sinks):
            assert path[0] == pn.source[0] and path[-1] == sink_tile
            for a, b in zip(path, path[1:]):
                assert abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1, path


# Random netlists at twice the tile count on default (8 AGCUs, one vector
# track) are not all routable (seeds 1 and 3 of 0..9 are not, measured); the
# dense case uses seeds that need negotiation (3 iterations). On small (one
# track per side on every network, to fit an LFE5U-85F) seeds 1, 6, 7 and 10
# of 0..11 are not routable at twice the tile count (measured); 0, 3 and 8
# need negotiation.
@pytest.mark.parametrize("name,density,seeds", [("tiny", 1, range(3, 5)),
                                                ("small", 1, range(6)),
                                                ("small", 2, (0, 2, 3, 4, 5, 8)),
                                                ("default", 1, range(2)), ("default", 2, range(5, 7))])
def test_random_netlists_route_legally(name, density, seeds):
    params = preset(name)
    for seed in seeds:
        nl = random_netlist(params, seed, density * params.tiles)
        pl = place(params, nl, seed=seed)
        assert_legal(params, pl, route(pl))


def test_negotiation_resolves_first_iteration_conflicts():
    params = preset("default")
    nl = random_netlist(params, 5, 2 * params.tiles)
    pl = place(params, nl, seed=5)
    r = route(pl)
    assert r.iterations > 1            # the first greedy pass overused some output
    assert_legal(params, pl, r)


def test_pipeline_with_agcus_routes_and_round_trips_through_the_bitstream():
    params = preset("default")
    nl = pipeline_netlist(3)
    pl = place(params, nl, seed=1)
    r = route(pl)
    assert_legal(params, pl, r)
    back = decode(encode(r.config), params)
    assert back == r.config
    assert check_routes(params, back, pl.physical_nets()) == []


def test_multicast_is_a_tree_with_fanout_inside_switches():
    params = preset("default")
    nl = Netlist()
    nl.add_unit("src", "pmu", "B", pin=(1, 2))
    sinks = [(0, 0), (0, 2), (2, 0), (2, 2), (3, 3), (1, 1)]
    for i, t in enumerate(sinks):
        nl.add_unit(f"c{i}", "pcu", f"gemm[{i}]", pin=t)
    nl.connect("b", ("src", "vec", 0), *[(f"c{i}", "vec", 1) for i in range(len(sinks))])
    pl = place(params, nl)
    r = route(pl)
    assert_legal(params, pl, r)
    net = r.routes["b"]
    # A tree: fewer switch outputs than the sum of the per-sink path lengths ...
    assert net.wires < sum(len(p) for p in net.paths)
    # ... because some switch input feeds two or more outputs (the hardware fork).
    ins = {}
    for tile, i, o in net.hops:
        ins.setdefault((tile, i), []).append(o)
    assert max(len(v) for v in ins.values()) >= 2


def test_routing_is_deterministic():
    params = preset("default")
    nl = random_netlist(params, 6, 2 * params.tiles)
    a = route(place(params, nl, seed=6))
    b = route(place(params, nl, seed=6))
    assert a.config == b.config
    assert {k: v.hops for k, v in a.routes.items()} == {k: v.hops for k, v in b.routes.items()}


def test_sixteen_nets_on_default_route_in_well_under_a_second():
    params = preset("default")
    nl = pipeline_netlist(7)                  # 7 x 2 chain nets + ld + st + b = 17 nets
    pl = place(params, nl, seed=0)
    t = time.perf_counter()
    r = route(pl)
    assert time.perf_counter() - t < 1.0
    assert len(r.routes) >= 16
    assert_legal(params, pl, r)


def test_merges_into_existing_unit_configs_and_avoids_used_outputs():
    params = preset("small")
    topo = Topology(params)
    base = FabricConfig(params)
    base.set("pcu_0_0", PCU.pass_config(params, "vec", 1))
    # A switch output the caller already uses: (0,0) vec E0 (the direct way east).
    outs = topo.switch_outputs("vec")
    e0 = outs.index(("E", 0))
    base.set("sw_0_0", {"vec": [{} if k != e0 else {"en": 1, "sel": 0} for k in range(len(outs))]})
    nets = [PhysicalNet("x", "vec", ((0, 0), ("U", 0)), (((0, 1), ("U", 0)),))]
    r = route_nets(params, nets, config=base)
    assert r.config.units["pcu_0_0"] == base.units["pcu_0_0"]
    assert r.config.normalized()["sw_0_0"]["vec"][e0] == {"en": 1, "sel": 0}
    assert all(o != ("E", 0) or t != (0, 0) for t, _, o in r.routes["x"].hops)
    assert r.routes["x"].wires == 4       # the detour: S, E, N, then into the unit
    # check_routes flags the caller's output as carrying no net: it is not ours.
    problems = check_routes(params, r.config, nets)
    assert problems == ["vec output E0 of switch (0, 0) is enabled but carries no net"]


def test_check_routes_catches_broken_configurations():
    params = preset("small")
    nl = pipeline_netlist(1)
    pl = place(params, nl, seed=2)
    r = route(pl)
    nets = pl.physical_nets()
    assert check_routes(params, r.config, nets) == []
    topo = Topology(params)
    # Cut the last hop of net "a0": its sink is no longer reached.
    tile, i, o = r.routes["a0"].hops[-1]
    cfg = FabricConfig(params, {k: v for k, v in r.config.normalized().items()})
    sw = topo.switch_unit(tile).name
    k = topo.switch_outputs("vec").index(o)
    cfg.units[sw]["vec"][k] = {"en": 0, "sel": 0}
    assert any("does not reach" in p and "'a0'" in p for p in check_routes(params, cfg, nets))
    # Send net "a0" somewhere else as well: it now reaches a sink that is not its own.
    cfg = FabricConfig(params, {k: v for k, v in r.config.normalized().items()})
    outs = topo.switch_outputs("vec")
    free = [k for k, (s, t) in enumerate(outs)
            if s != "U" and topo.neighbour(tile, s) is None
            and not cfg.units[sw]["vec"][k]["en"]]
    cfg.units[sw]["vec"][free[0]] = {"en": 1, "sel": topo.switch_inputs("vec").index(i)}
    assert any("also reaches" in p and "'a0'" in p for p in check_routes(params, cfg, nets))


def test_more_nets_than_tracks_out_of_a_tile_is_unroutable():
    # tiny: one control track per side; the PCU's two control outputs both go
    # to the PMU east of it, and the only way there is the single E track.
    params = preset("tiny")
    nl = Netlist()
    nl.add_unit("c", "pcu", "ctl", pin=(0, 0))
    nl.add_unit("m", "pmu", "buf", pin=(0, 1))
    nl.connect("go", ("c", "ctrl", 0), ("m", "ctrl", 0))
    nl.connect("done", ("c", "ctrl", 1), ("m", "ctrl", 1))
    pl = place(params, nl)
    with pytest.raises(Unroutable, match=r"cannot route 2 net\(s\) on the ctrl network of "
                                         r"preset 'tiny'.*nets go, done still share 1 switch "
                                         r"output\(s\): sw_0_0 ctrl output E0 wanted by 2 nets "
                                         r"\(go, done\)") as info:
        route(pl, max_iterations=10)
    assert info.value.nets == ["go", "done"]
    assert info.value.overused == [("ctrl", (0, 0), ("E", 0), 2)]


def test_more_nets_than_tracks_across_a_cut_is_unroutable():
    # small: one vector track per side, so two eastward tracks cross the cut
    # between columns 0 and 1; three pinned nets must cross it.
    params = preset("small")
    nl = Netlist()
    nl.add_unit("c0", "pcu", pin=(0, 0))
    nl.add_unit("m1", "pmu", pin=(1, 0))
    nl.add_unit("a", "agcu", pin=0)
    nl.add_unit("m0", "pmu", pin=(0, 1))
    nl.add_unit("c1", "pcu", pin=(1, 1))
    nl.connect("x", ("c0", "vec", 0), ("m0", "vec", 0))
    nl.connect("y", ("m1", "vec", 0), ("c1", "vec", 0))
    nl.connect("z", ("a", "vec", 0), ("m0", "vec", 1))
    with pytest.raises(Unroutable, match=r"on the vec network of preset 'small'") as info:
        route(place(params, nl), max_iterations=15)
    assert len(info.value.nets) >= 2 and info.value.overused
    assert issubclass(Unroutable, CompileError)


def test_physical_net_errors():
    params = preset("small")
    with pytest.raises(NetlistError, match="is a link to a neighbour"):
        route_nets(params, [PhysicalNet("x", "vec", ((0, 0), ("U", 0)), (((0, 0), ("E", 0)),))])
    with pytest.raises(NetlistError, match="driven by the neighbouring switch"):
        route_nets(params, [PhysicalNet("x", "vec", ((0, 0), ("E", 0)), (((0, 1), ("U", 0)),))])
    with pytest.raises(NetlistError, match="share the sink"):
        route_nets(params, [PhysicalNet("x", "vec", ((0, 0), ("U", 0)), (((0, 1), ("U", 0)),)),
                            PhysicalNet("y", "vec", ((1, 0), ("U", 0)), (((0, 1), ("U", 0)),))])


def test_programs_of_logical_units_land_in_their_placed_slots():
    params = preset("small")
    nl = pipeline_netlist(1)
    pl = place(params, nl, seed=0)
    prog = PCU.pass_config(params, "vec", 1)
    r = route(pl, programs={"c0": prog})
    assert r.config.units[pl.config_unit("c0")] == prog
    assert check_routes(params, r.config, pl.physical_nets()) == []
    with pytest.raises(NetlistError, match="program for unit 'nope'"):
        route(pl, programs={"nope": prog})
