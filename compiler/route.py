"""Route compiler for the link demo: a path of exactly H switch hops from a
vector edge input to a vector edge output, turned into a FabricConfig.

The search runs on the routing-resource graph of :class:`~tessera.hw.topology.Topology`:
a state is (switch tile, input port); a move sends the word out of an unused
output of that switch, either to a neighbour's input, to an edge output (the
end), or through the tile's unit (a pass-through unit re-enters the switch).
Each link is used at most once, so the route is a simple path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..hw.params import FabricParams
from ..hw.topology import OPPOSITE, Topology, unit_class_for
from .bitstream import FabricConfig

__all__ = ["Route", "RouteError", "compile_route"]


class RouteError(ValueError):
    pass


@dataclass
class Route:
    hops: int
    src: int                       # index into edge_ports[(net, "in")]
    dst: int                       # index into edge_ports[(net, "out")]
    src_name: str
    dst_name: str
    path: list = field(default_factory=list)    # [(tile, in_port, out_port)]
    config: FabricConfig = None


def compile_route(params: FabricParams, hops: int, *, network: str = "vec",
                  src: int | None = None, dst: int | None = None,
                  max_expansions: int = 200_000) -> Route:
    """Find a route of exactly `hops` switch traversals and configure it.

    `src` / `dst` pin the edge input / output (indices into
    ``Topology.edge_ports``); by default the first that works is taken."""
    if not isinstance(hops, int) or hops < 1:
        raise RouteError(f"hops must be a positive integer, got {hops!r}")
    topo = Topology(params)
    ins = topo.switch_inputs(network)
    outs = topo.switch_outputs(network)
    in_index = {name: j for j, name in enumerate(ins)}
    n_unit_out = len([1 for s, _ in ins if s == "U"])

    expansions = 0
    used_links = set()           # (tile, out_port)
    used_units = set()
    path = []

    def moves(tile, in_port):
        """Outputs of `tile` in a fixed order: straight on first (long snakes)."""
        order = []
        for k, (side, t) in enumerate(outs):
            if (tile, k) in used_links:
                continue
            if side == "U":
                if t == 0 and tile not in used_units and n_unit_out:
                    order.append((k, "unit", tile))
                continue
            nb = topo.neighbour(tile, side)
            order.append((k, "edge" if nb is None else "link", nb))
        return order

    def dfs(tile, in_port, depth):
        nonlocal expansions
        expansions += 1
        if expansions > max_expansions:
            raise RouteError(f"no route of {hops} hops found on preset {params.name!r} within "
                             f"{max_expansions} search steps; try fewer hops")
        for k, kind, nb in moves(tile, in_port):
            side, t = outs[k]
            if kind == "edge":
                pos = tile[1] if side in ("N", "S") else tile[0]
                if dst is not None and topo.find_edge(network, "out", side, pos, t) != dst:
                    continue
                if depth == hops:
                    path.append((tile, in_port, k))
                    return (side, t)
                continue
            if depth == hops:
                continue
            used_links.add((tile, k))
            path.append((tile, in_port, k))
            if kind == "link":
                nxt = (nb, in_index[(OPPOSITE[side], t)])
            else:
                used_units.add(tile)
                nxt = (tile, in_index[("U", 0)])
            found = dfs(nxt[0], nxt[1], depth + 1)
            if found:
                return found
            path.pop()
            used_links.discard((tile, k))
            if kind == "unit":
                used_units.discard(tile)
        return None

    for s_index, port in enumerate(topo.edge_ports[(network, "in")]):
        if src is not None and s_index != src:
            continue
        tile = topo.edge_tile(port)
        j = in_index[(port.side, port.track)]
        path.clear(); used_links.clear(); used_units.clear()
        end = dfs(tile, j, 1)
        if end:
            last_tile = path[-1][0]
            side, t = end
            pos = last_tile[1] if side in ("N", "S") else last_tile[0]
            d_index = topo.find_edge(network, "out", side, pos, t)
            route = Route(hops, s_index, d_index, port.name,
                          topo.edge_ports[(network, "out")][d_index].name, list(path))
            route.config = _configure(params, topo, network, route.path)
            return route
    raise RouteError(f"no route of {hops} switch hops exists on preset {params.name!r} "
                     f"({params.rows}x{params.cols} tiles)")


def _merge(into: dict, more: dict) -> dict:
    """Merge nested configuration dicts (a unit forwarding several networks)."""
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def _configure(params, topo, network, path) -> FabricConfig:
    config = FabricConfig(params)
    switch_cfg = {}
    unit_cfg = {}
    outs = topo.switch_outputs(network)
    for tile, j, k in path:
        sw = switch_cfg.setdefault(topo.switch_unit(tile).name, {network: [{} for _ in outs]})
        sw[network][k] = {"en": 1, "sel": j}
        side, t = outs[k]
        if side == "U":
            cu = topo.slot_unit(tile)
            _merge(unit_cfg.setdefault(cu.name, {}),
                   unit_class_for(cu.kind).pass_config(params, network, t))
    for name, value in {**switch_cfg, **unit_cfg}.items():
        config.set(name, value)
    return config
