"""Draw a placed and routed netlist: the tile grid with each slot's kind and
role, the AGCUs on the edge, every net's route as a coloured polyline (line
style per network) and a legend (:func:`draw`); and a run's measured unit
activity as a heatmap on the same grid (:func:`draw_activity`). For reports and for debugging a mapping by
eye; uses matplotlib's Agg canvas directly (no pyplot, no display)."""

from __future__ import annotations

from pathlib import Path

from ..hw.params import FabricParams
from ..hw.topology import STEP, Topology
from .place import Placement

__all__ = ["draw", "draw_activity"]

_KIND_COLOUR = {"pcu": "#f6c28b", "pmu": "#9cc5e8", "agcu": "#b7e0a5"}
_NET_STYLE = {"vec": "-", "scal": "--", "ctrl": ":"}
_NET_OFFSET = {"vec": 0.0, "scal": 0.1, "ctrl": -0.1}


def _xy(tile):
    """Tile (row, col) -> plot coordinates (row 0 at the top)."""
    return float(tile[1]), -float(tile[0])


def draw(params: FabricParams, placement: Placement | None, routes, path, *,
         title: str | None = None, dpi: int = 100) -> Path:
    """Write a PNG of the grid, the placement and the routes to `path`.

    `routes` is a :class:`~.pathfinder.Routing`, a dict of
    :class:`~.pathfinder.NetRoute`, or None (placement only)."""
    from matplotlib.lines import Line2D

    if routes is not None and hasattr(routes, "routes"):
        routes = routes.routes
    routes = dict(routes or {})
    topo = Topology(params)
    rows, cols = params.rows, params.cols
    fig, ax = _axes(params, dpi)

    label_at = {}
    if placement is not None:
        for name, unit in placement.netlist.units.items():
            slot = placement.slots[name]
            label_at[(unit.kind, slot)] = unit.role or name

    def style(kind, slot):
        name = kind.upper() if kind != "agcu" else f"AGCU{slot}"
        if (kind, slot) not in label_at:
            return "#eeeeee", name, "#999999"
        return _KIND_COLOUR[kind], f"{name}\n{label_at[(kind, slot)]}", "black"

    _paint_units(ax, params, topo, style)

    import matplotlib
    cmap = matplotlib.colormaps["tab20"]
    handles = []
    n = max(len(routes), 1)
    for idx, (name, r) in enumerate(routes.items()):
        colour = cmap(idx % 20)
        jitter = ((idx % 7) - 3) * 0.025 + _NET_OFFSET.get(r.network, 0.0)
        src_tile, src_port = r.source
        for path_tiles, (sink_tile, sink_port) in zip(r.paths, r.sinks):
            pts = [_xy(t) for t in path_tiles]
            # Edge ports: extend the line out of the array (to the AGCU).
            if src_port[0] != "U":
                dr, dc = STEP[src_port[0]]
                x, y = _xy(src_tile)
                pts.insert(0, (x + 0.8 * dc, y - 0.8 * dr))
            if sink_port[0] != "U":
                dr, dc = STEP[sink_port[0]]
                x, y = _xy(sink_tile)
                pts.append((x + 0.8 * dc, y - 0.8 * dr))
            xs = [p[0] + jitter for p in pts]
            ys = [p[1] + jitter for p in pts]
            ax.plot(xs, ys, linestyle=_NET_STYLE.get(r.network, "-"), color=colour,
                    linewidth=1.8, alpha=0.9, zorder=3)
            ax.plot(xs[-1:], ys[-1:], marker="o", markersize=3.5, color=colour, zorder=4)
        ax.plot([pts[0][0] + jitter], [pts[0][1] + jitter], marker="s", markersize=4,
                color=colour, zorder=4)
        if idx < 24:
            handles.append(Line2D([], [], color=colour, linestyle=_NET_STYLE.get(r.network, "-"),
                                  label=f"{name} ({r.network}, {len(r.sinks)} sink"
                                        f"{'s' if len(r.sinks) != 1 else ''})"))
    if len(routes) > 24:
        handles.append(Line2D([], [], color="none", label=f"... {len(routes) - 24} more nets"))
    handles += [Line2D([], [], color="black", linestyle=s, label=f"{net} network")
                for net, s in _NET_STYLE.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6,
              frameon=False)
    return _save(fig, ax, params, path, title or f"Tessera {params.name} ({rows}x{cols}): "
                 f"{len(label_at)} units, {n if routes else 0} nets")


def _axes(params: FabricParams, dpi: int):
    """A figure sized for the grid (no pyplot: the Agg canvas, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(2.0 + 1.9 * (params.cols + 2), 1.2 + 1.5 * (params.rows + 1)),
                 dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def _save(fig, ax, params: FabricParams, path, title: str) -> Path:
    ax.set_xlim(-1.5, params.cols + 0.5)
    ax.set_ylim(-params.rows - 0.0, 1.0)
    ax.set_title(title, fontsize=9)
    path = Path(path)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


def _paint_units(ax, params: FabricParams, topo: Topology, style):
    """The unit slots (row 0 at the top) and the AGCUs beyond the edges.
    ``style(kind, slot)`` gives (face colour, text, text colour); `slot` is
    (row, col) for a tile and the AGCU's index for an AGCU."""
    from matplotlib.patches import FancyBboxPatch

    for r in range(params.rows):
        for c in range(params.cols):
            kind = params.unit_kind(r, c)
            x, y = _xy((r, c))
            face, text, colour = style(kind, (r, c))
            ax.add_patch(FancyBboxPatch((x - 0.38, y - 0.38), 0.76, 0.76,
                                        boxstyle="round,pad=0.02", linewidth=1.2,
                                        facecolor=face, edgecolor="#555555", zorder=1))
            ax.text(x, y + 0.22, text, ha="center", va="top", fontsize=7, color=colour,
                    zorder=5)
            ax.text(x - 0.36, y - 0.36, f"{r},{c}", fontsize=5, color="#777777", zorder=5)
    for k in range(params.agcus):
        x, y = _agcu_xy(topo, k)
        face, text, colour = style("agcu", k)
        ax.add_patch(FancyBboxPatch((x - 0.3, y - 0.2), 0.6, 0.4, boxstyle="round,pad=0.02",
                                    facecolor=face, edgecolor="#555555", zorder=1))
        ax.text(x, y, text, ha="center", va="center", fontsize=6, color=colour, zorder=5)


def _agcu_xy(topo: Topology, k: int):
    e = topo.agcu_edge(k)
    x, y = _xy(topo.edge_tile(e))
    dr, dc = STEP[e.side]
    return x + 0.95 * dc, y - 0.95 * dr


def draw_activity(params: FabricParams, unit_perf: dict, cycles: int, path, *,
                  title: str | None = None, dpi: int = 100) -> Path:
    """Write a PNG heatmap of measured unit activity to `path`: each unit
    slot and AGCU coloured by the fraction of `cycles` it was active, with
    its active / starved / stalled fractions written in. `unit_perf` is the
    report's ``unit_perf`` (the RTL's per-unit counters: ``{"pcu_0_0":
    {"active": n, "starved": n, "stalled": n}, ..., "agcu_0": ...}``)."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    if not isinstance(cycles, int) or cycles <= 0:
        raise ValueError(f"cycles must be a positive int, got {cycles!r}")
    topo = Topology(params)
    rows, cols = params.rows, params.cols
    fig, ax = _axes(params, dpi)
    cmap = matplotlib.colormaps["viridis"]
    norm = Normalize(0.0, 1.0)

    def style(kind, slot):
        name = f"{kind}_{slot[0]}_{slot[1]}" if kind != "agcu" else f"agcu_{slot}"
        label = kind.upper() if kind != "agcu" else f"AGCU{slot}"
        perf = unit_perf.get(name)
        if perf is None:
            return "#eeeeee", f"{label}\n(no counters)", "#999999"
        frac = {ev: perf.get(ev, 0) / cycles for ev in ("active", "starved", "stalled")}
        face = cmap(norm(frac["active"]))
        colour = "white" if frac["active"] < 0.6 else "black"
        return face, (f"{label}\nactive {frac['active']:.0%}\nstarved "
                      f"{frac['starved']:.0%}\nstalled {frac['stalled']:.0%}"), colour

    _paint_units(ax, params, topo, style)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.7,
                 label="active cycles / run cycles")
    return _save(fig, ax, params, path, title or f"Tessera {params.name} ({rows}x{cols}): "
                 f"unit activity over {cycles} cycles (RTL counters)")
