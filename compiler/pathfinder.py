"""Routing: every net of a placed netlist through the switches, per network,
with PathFinder's negotiated congestion (McMurchie and Ebeling, FPGA '95).

The routing resources come straight from :mod:`tessera.hw.topology` and
:func:`tessera.hw.switch.switch_ports`. A **wire** is one switch output
``(tile, k)`` on one network; it can carry one net. Choosing wire
``(tile, k)`` for a net arriving at ``(tile, j)`` means configuring that
output with ``sel = j``. A wire on a side with a neighbour arrives at the
neighbour's input ``(opposite side, track)``; a wire on the array boundary
(an edge output) or on side ``"U"`` (the tile unit's input ``k``) ends there,
and is used only as the sink of the net it feeds.

A multicast net is routed as a tree: each further sink is reached by a
search that starts from every point the tree already reaches (one switch
input can fan out to several outputs of its switch: that is how the
hardware multicasts). Nets share wires in the first iterations; the cost of
a wire is ``(1 + history) * (1 + present_factor * other nets on it)``; after
each iteration, every overused wire's history grows and the present factor
rises, until no wire carries two nets (or :class:`Unroutable`). Ties are
broken by a counter and the net order, so routing is deterministic.

Unit pass-through (an idle PCU/PMU forwarding a word, as the link demo in
:mod:`.route` does) is not used: every slot may hold a placed unit.
"""

from __future__ import annotations

import copy
import heapq
import time
from dataclasses import dataclass, field

from ..hw.links import NETWORKS
from ..hw.params import FabricParams
from ..hw.switch import SIDES, switch_ports
from ..hw.topology import OPPOSITE, Topology
from .bitstream import FabricConfig
from .errors import NetlistError, Unroutable
from .place import PhysicalNet, Placement

__all__ = ["route", "route_nets", "check_routes", "NetRoute", "Routing", "port_name"]


def port_name(port) -> str:
    """("E", 0) -> "E0", ("U", 1) -> "U1"."""
    return f"{port[0]}{port[1]}"


@dataclass
class NetRoute:
    """The route of one net: its tree as switch traversals."""
    name: str
    network: str
    source: tuple                    # (tile, switch input port)
    sinks: tuple                     # ((tile, switch output port), ...)
    hops: list = field(default_factory=list)   # [(tile, in_port, out_port)], parents first
    paths: list = field(default_factory=list)  # per sink: [tile, ...] from source to sink

    @property
    def wires(self) -> int:
        return len(self.hops)


@dataclass
class Routing:
    config: FabricConfig
    routes: dict                     # net name -> NetRoute
    iterations: int                  # PathFinder iterations (max over networks)
    seconds: float

    @property
    def wirelength(self) -> int:
        return sum(r.wires for r in self.routes.values())

    def summary(self) -> str:
        lines = [f"routed {len(self.routes)} nets in {self.iterations} iterations "
                 f"({self.seconds * 1e3:.1f} ms), {self.wirelength} switch outputs"]
        for r in self.routes.values():
            lines.append(f"  {r.name} ({r.network}): " + ", ".join(
                f"sw_{t[0]}_{t[1]} {port_name(i)}->{port_name(o)}" for t, i, o in r.hops))
        return "\n".join(lines)


class _Graph:
    """The routing-resource graph of one network."""

    def __init__(self, params: FabricParams, network: str):
        self.params = params
        self.network = network
        self.topo = Topology(params)
        self.ins, self.outs = switch_ports(params, network)
        self.in_index = {p: j for j, p in enumerate(self.ins)}
        self.out_index = {p: k for k, p in enumerate(self.outs)}
        self.n_out = len(self.outs)
        cols = params.cols
        self.arrive = []             # wire -> (tile index, input index) or None
        for ti in range(params.tiles):
            tile = (ti // cols, ti % cols)
            for side, t in self.outs:
                nb = self.topo.neighbour(tile, side) if side in SIDES else None
                if nb is None:
                    self.arrive.append(None)
                else:
                    self.arrive.append((nb[0] * cols + nb[1], self.in_index[(OPPOSITE[side], t)]))

    def tile(self, ti):
        return (ti // self.params.cols, ti % self.params.cols)

    def ti(self, tile):
        return tile[0] * self.params.cols + tile[1]

    def wire(self, tile, out_port) -> int:
        return self.ti(tile) * self.n_out + self.out_index[out_port]

    def wire_name(self, w) -> str:
        tile = self.tile(w // self.n_out)
        return f"sw_{tile[0]}_{tile[1]} {self.network} output {port_name(self.outs[w % self.n_out])}"


def _check_physical(params, g: _Graph, pn: PhysicalNet):
    (tile, port) = pn.source
    if not (0 <= tile[0] < params.rows and 0 <= tile[1] < params.cols) or port not in g.in_index:
        raise NetlistError(f"net {pn.name!r}: source {tile} {port} is not a {pn.network} "
                           f"switch input")
    if port[0] in SIDES and g.topo.neighbour(tile, port[0]) is not None:
        raise NetlistError(f"net {pn.name!r}: source {tile} {port_name(port)} is driven by the "
                           f"neighbouring switch, not an edge input or a unit output")
    for tile, port in pn.sinks:
        if not (0 <= tile[0] < params.rows and 0 <= tile[1] < params.cols) \
                or port not in g.out_index:
            raise NetlistError(f"net {pn.name!r}: sink {tile} {port} is not a {pn.network} "
                               f"switch output")
        w = g.wire(tile, port)
        if g.arrive[w] is not None:
            raise NetlistError(f"net {pn.name!r}: sink {tile} {port_name(port)} is a link to a "
                               f"neighbour, not a unit input or an edge output")


def _route_network(params, g: _Graph, pnets: list, reserved: set, max_iterations: int):
    """PathFinder on one network. Returns ({name: {wire: (tile idx, in idx)}}, iterations)."""
    n_wires = params.tiles * g.n_out
    occ = [0] * n_wires
    hist = [0.0] * n_wires
    pres_fac, pres_mult, hist_fac = 0.5, 1.8, 1.0
    trees = {pn.name: {} for pn in pnets}
    # Large fan-out first: their trees are the hardest to move around.
    order = sorted(range(len(pnets)), key=lambda i: (-len(pnets[i].sinks), i))
    cols = params.cols
    DONE = (-1, -1)

    def route_one(pn):
        tree = {}                                    # wire -> arrival point it selects
        src_tile, src_port = pn.source
        start = (g.ti(src_tile), g.in_index[src_port])
        reached = [start]
        sinks = sorted(pn.sinks, key=lambda s: (abs(s[0][0] - src_tile[0])
                                                + abs(s[0][1] - src_tile[1]), s))
        for sink_tile, sink_port in sinks:
            target = g.wire(sink_tile, sink_port)
            sr, sc = sink_tile
            heap = []
            count = 0
            best = {}
            back = {}
            for a in reached:
                best[a] = 0.0
                r, c = divmod(a[0], cols)
                heapq.heappush(heap, (abs(r - sr) + abs(c - sc), 0.0, count, a))
                count += 1
            roots = set(reached)
            while heap:
                f, cost, _, a = heapq.heappop(heap)
                if a == DONE:
                    break
                if cost > best.get(a, float("inf")):
                    continue
                base = a[0] * g.n_out
                for k in range(g.n_out):
                    w = base + k
                    if w in tree or w in reserved:
                        continue
                    nxt = g.arrive[w]
                    if nxt is None and w != target:
                        continue
                    wc = (1.0 + hist[w]) * (1.0 + pres_fac * occ[w])
                    ng = cost + wc
                    if nxt is None:
                        nxt, h = DONE, 0
                    else:
                        r, c = divmod(nxt[0], cols)
                        h = abs(r - sr) + abs(c - sc)
                    if ng < best.get(nxt, float("inf")):
                        best[nxt] = ng
                        back[nxt] = (a, w)
                        heapq.heappush(heap, (ng + h, ng, count, nxt))
                        count += 1
            if DONE not in back:
                raise Unroutable(f"net {pn.name!r} on the {g.network} network: sink "
                                 f"{sink_tile} {port_name(sink_port)} cannot be reached from "
                                 f"{src_tile} {port_name(src_port)} at all",
                                 nets=[pn.name])
            node = DONE
            while node not in roots:
                a, w = back[node]
                tree[w] = a
                if g.arrive[w] is not None:
                    reached.append(g.arrive[w])
                node = a
        return tree

    for it in range(1, max_iterations + 1):
        for i in order:
            pn = pnets[i]
            for w in trees[pn.name]:
                occ[w] -= 1
            trees[pn.name] = route_one(pn)
            for w in trees[pn.name]:
                occ[w] += 1
        over = [w for w in range(n_wires) if occ[w] > 1]
        if not over:
            return trees, it
        for w in over:
            hist[w] += hist_fac * (occ[w] - 1)
        pres_fac *= pres_mult

    users = {w: [pn.name for pn in pnets if w in trees[pn.name]] for w in over}
    nets = sorted({n for names in users.values() for n in names},
                  key=[pn.name for pn in pnets].index)
    detail = "; ".join(f"{g.wire_name(w)} wanted by {len(users[w])} nets ({', '.join(users[w])})"
                       for w in over[:8])
    more = f"; and {len(over) - 8} more" if len(over) > 8 else ""
    raise Unroutable(
        f"cannot route {len(nets)} net(s) on the {g.network} network of preset "
        f"{params.name!r} ({params.rows}x{params.cols}, {g.n_out - len([o for o in g.outs if o[0] == 'U'])} "
        f"side outputs per switch) after {max_iterations} PathFinder iterations: "
        f"nets {', '.join(nets)} still share {len(over)} switch output(s): {detail}{more}",
        nets=nets, overused=[(g.network, g.tile(w // g.n_out), g.outs[w % g.n_out],
                              len(users[w])) for w in over])


def _tree_to_route(g: _Graph, pn: PhysicalNet, tree: dict) -> NetRoute:
    ins, outs, n_out = g.ins, g.outs, g.n_out
    # Parents first: breadth-first from the source.
    children = {}
    for w, a in tree.items():
        children.setdefault(a, []).append(w)
    src = (g.ti(pn.source[0]), g.in_index[pn.source[1]])
    hops, queue = [], [src]
    parent_of = {}
    while queue:
        a = queue.pop(0)
        for w in sorted(children.get(a, [])):
            hops.append((g.tile(a[0]), ins[a[1]], outs[w % n_out]))
            parent_of[w] = a
            if g.arrive[w] is not None:
                queue.append(g.arrive[w])
    # arrival point -> wire that drives it (inverse of arrive within this tree)
    driver = {g.arrive[w]: w for w in tree if g.arrive[w] is not None}
    paths = []
    for tile, port in pn.sinks:
        w = g.wire(tile, port)
        seq = [tile]
        a = tree[w]
        while a != src:
            w = driver[a]
            seq.append(g.tile(w // n_out))
            a = tree[w]
        paths.append(list(reversed(seq)))
    return NetRoute(pn.name, pn.network, pn.source, tuple(pn.sinks), hops, paths)


def route_nets(params: FabricParams, nets, *, config: FabricConfig | None = None,
               max_iterations: int = 40) -> Routing:
    """Route physical nets (:class:`~.place.PhysicalNet`) and configure the
    switches. Outputs already enabled in `config` are left alone and not
    used; the other units' configurations in `config` are kept."""
    t0 = time.perf_counter()
    nets = list(nets)
    names = [pn.name for pn in nets]
    if len(set(names)) != len(names):
        raise NetlistError(f"net names must be unique; repeated: "
                           f"{sorted({n for n in names if names.count(n) > 1})}")
    out = FabricConfig(params, copy.deepcopy(config.units) if config is not None else None)
    topo = out.topology
    routes = {}
    iterations = 0
    for network in NETWORKS:
        pnets = [pn for pn in nets if pn.network == network]
        if not pnets:
            continue
        g = _Graph(params, network)
        seen_src, seen_sink = {}, {}
        for pn in pnets:
            _check_physical(params, g, pn)
            for key, seen, what in [((pn.source,), seen_src, "source")] + [
                    ((s,), seen_sink, "sink") for s in pn.sinks]:
                if key in seen and seen[key] != pn.name:
                    raise NetlistError(f"nets {seen[key]!r} and {pn.name!r} share the {what} "
                                       f"{key[0][0]} {port_name(key[0][1])} on {network}")
                seen[key] = pn.name
        reserved = set()
        for tile in topo.tiles():
            value = out.units.get(topo.switch_unit(tile).name, {})
            for k, sel in enumerate(value.get(network, [])):
                if sel.get("en"):
                    reserved.add(g.ti(tile) * g.n_out + k)
        trees, its = _route_network(params, g, pnets, reserved, max_iterations)
        iterations = max(iterations, its)
        selects = {}
        for pn in pnets:
            for w, (ti, j) in trees[pn.name].items():
                selects[(ti, w % g.n_out)] = j
            routes[pn.name] = _tree_to_route(g, pn, trees[pn.name])
        for ti in range(params.tiles):
            ks = {k: j for (t, k), j in selects.items() if t == ti}
            if not ks:
                continue
            name = topo.switch_unit(g.tile(ti)).name
            value = copy.deepcopy(out.units.get(name, {}))
            sels = list(value.get(network, []))
            sels += [{} for _ in range(g.n_out - len(sels))]
            for k, j in ks.items():
                sels[k] = {"en": 1, "sel": j}
            value[network] = sels
            out.set(name, value)
    routes = {n: routes[n] for n in names}
    return Routing(out, routes, iterations, time.perf_counter() - t0)


def route(placement: Placement, *, config: FabricConfig | None = None,
          programs: dict | None = None, max_iterations: int = 40) -> Routing:
    """Route every net of a placed netlist; the result's ``config`` holds the
    switch selects merged into `config`. `programs` maps *logical* unit names
    to their configurations (a lowering's PCU/PMU/AGCU programs); they are
    stored under each unit's placed config unit (``placement.config_unit``)."""
    if programs:
        config = FabricConfig(placement.params,
                              copy.deepcopy(config.units) if config is not None else None)
        for unit, value in programs.items():
            if unit not in placement.slots:
                raise NetlistError(f"program for unit {unit!r}, which is not in the netlist")
            config.set(placement.config_unit(unit), value)
    return route_nets(placement.params, placement.physical_nets(), config=config,
                      max_iterations=max_iterations)


def check_routes(params: FabricParams, config: FabricConfig, nets) -> list:
    """Check a configuration against physical nets, independently of the
    router: from each net's source, follow every enabled switch output that
    selects the input the word is on, hop by hop, as the hardware would.
    Returns a list of problems (empty when the configuration is legal):
    a sink not reached, a unit input or edge output reached that is not the
    net's, a switch output reached by two nets, an enabled output no net
    reaches, a loop."""
    topo = Topology(params)
    problems = []
    normalized = config.normalized()
    by_net = {}
    for pn in nets:
        by_net.setdefault(pn.network, []).append(pn)
    for network in NETWORKS:
        ins, outs = switch_ports(params, network)
        in_index = {p: j for j, p in enumerate(ins)}
        # per tile and input: the outputs selecting it
        fanout = {}
        enabled = set()
        for tile in topo.tiles():
            sels = normalized[topo.switch_unit(tile).name][network]
            for k, s in enumerate(sels):
                if s["en"]:
                    enabled.add((tile, k))
                    fanout.setdefault((tile, s["sel"]), []).append(k)
        owner = {}
        for pn in by_net.get(network, []):
            start = (pn.source[0], in_index[pn.source[1]])
            reached = set()
            seen = {start}
            stack = [start]
            while stack:
                tile, j = stack.pop()
                for k in fanout.get((tile, j), []):
                    if (tile, k) in owner and owner[(tile, k)] != pn.name:
                        problems.append(f"{network} output {port_name(outs[k])} of switch {tile} "
                                        f"carries nets {owner[(tile, k)]!r} and {pn.name!r}")
                        continue
                    owner[(tile, k)] = pn.name
                    side, t = outs[k]
                    nb = topo.neighbour(tile, side) if side in SIDES else None
                    if nb is None:
                        reached.add((tile, outs[k]))
                        continue
                    nxt = (nb, in_index[(OPPOSITE[side], t)])
                    if nxt in seen:
                        problems.append(f"net {pn.name!r} loops back to switch {nb} input "
                                        f"{port_name((OPPOSITE[side], t))}")
                        continue
                    seen.add(nxt)
                    stack.append(nxt)
            want = set(pn.sinks)
            for s in sorted(want - reached):
                problems.append(f"net {pn.name!r} does not reach {s[0]} {port_name(s[1])}")
            for s in sorted(reached - want):
                problems.append(f"net {pn.name!r} also reaches {s[0]} {port_name(s[1])}")
        for tile, k in sorted(enabled - set(owner)):
            problems.append(f"{network} output {port_name(outs[k])} of switch {tile} is enabled "
                            f"but carries no net")
    return problems
