"""Placement: logical units of a :class:`~.netlist.Netlist` onto physical slots.

PCUs and PMUs go to the tiles of their checkerboard colour
(``FabricParams.unit_kind``); AGCUs to one of the fixed AGCU positions
(AGCU k is attached to the vector edge ports of ``Topology.agcu_edge(k)``).
Units with a ``pin`` stay where they are pinned.

The placer is simulated annealing (as in VPR, which the Plasticine papers'
toolchain follows) on

    cost = sum over nets of the half-perimeter of its pins' bounding box
         + congestion_weight * channel overflow,

where the channel overflow estimates routing demand: a net whose bounding
box spans columns c0..c1 and rows r0..r1 crosses each vertical cut between
c0 and c1 once, spread evenly over rows r0..r1 (and likewise for horizontal
cuts); demand above the network's track count per cut is overflow. Moves
swap a unit with another slot of its kind (occupied or free); the cost is
updated incrementally from the nets of the moved units. Everything is driven
by one ``random.Random(seed)``: the same netlist and seed give the same
placement.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from ..hw.params import FabricParams
from ..hw.topology import Topology
from .errors import DoesNotFit, NetlistError
from .netlist import UNIT_KINDS, Net, Netlist, Pin

__all__ = ["place", "Placement", "PhysicalNet", "placement_cost", "slots_of_kind"]


def slots_of_kind(params: FabricParams, kind: str) -> list:
    """Physical slots of a unit kind: tiles for 'pcu'/'pmu', indices for 'agcu'."""
    if kind == "agcu":
        return list(range(params.agcus))
    return [(r, c) for r in range(params.rows) for c in range(params.cols)
            if params.unit_kind(r, c) == kind]


@dataclass(frozen=True)
class PhysicalNet:
    """A net in switch terms: it enters switch `source[0]` at input port
    `source[1]` (``(side, track)`` or ``("U", k)``) and must leave at each
    ``(tile, output port)`` of `sinks`."""
    name: str
    network: str
    source: tuple
    sinks: tuple


@dataclass
class Placement:
    params: FabricParams
    netlist: Netlist
    slots: dict                 # unit name -> (row, col) or AGCU index
    seed: int = 0
    cost: float = 0.0
    wirelength: float = 0.0
    overflow: float = 0.0
    moves: int = 0
    accepted: int = 0
    topology: Topology = field(init=False, repr=False)

    def __post_init__(self):
        self.topology = Topology(self.params)

    def kind(self, unit: str) -> str:
        return self.netlist.units[unit].kind

    def tile(self, unit: str) -> tuple:
        """The tile of a unit (for an AGCU: the edge tile it attaches to)."""
        slot = self.slots[unit]
        if self.kind(unit) == "agcu":
            return self.topology.edge_tile(self.topology.agcu_edge(slot))
        return slot

    def config_unit(self, unit: str) -> str:
        """Name of the unit's config unit in the bitstream ('pcu_1_2', 'agcu_0')."""
        slot = self.slots[unit]
        if self.kind(unit) == "agcu":
            return f"agcu_{slot}"
        return f"{self.kind(unit)}_{slot[0]}_{slot[1]}"

    def source_port(self, pin: Pin) -> tuple:
        """(tile, switch input port) where an output pin enters the network."""
        if self.kind(pin.unit) == "agcu":
            e = self.topology.agcu_edge(self.slots[pin.unit])
            return self.tile(pin.unit), (e.side, e.track)
        return self.tile(pin.unit), ("U", pin.port)

    def sink_port(self, pin: Pin) -> tuple:
        """(tile, switch output port) that feeds an input pin."""
        if self.kind(pin.unit) == "agcu":
            e = self.topology.agcu_edge(self.slots[pin.unit])
            return self.tile(pin.unit), (e.side, e.track)
        return self.tile(pin.unit), ("U", pin.port)

    def physical_net(self, net: Net) -> PhysicalNet:
        return PhysicalNet(net.name, net.network, self.source_port(net.source),
                           tuple(self.sink_port(s) for s in net.sinks))

    def physical_nets(self) -> list:
        return [self.physical_net(n) for n in self.netlist.nets]

    def summary(self) -> str:
        lines = [f"placement on {self.params.name} ({self.params.rows}x{self.params.cols}), "
                 f"seed {self.seed}: wirelength {self.wirelength:g}, overflow "
                 f"{self.overflow:g}, {self.accepted}/{self.moves} moves accepted"]
        for name, unit in self.netlist.units.items():
            lines.append(f"  {unit.label:<24} -> {self.config_unit(name)}")
        return "\n".join(lines)


# -- cost model ------------------------------------------------------------------------

class _Cost:
    """Incremental wirelength + channel-overflow cost of a placement.

    Channel cells are numbered: per network, the vertical cuts (between
    columns c and c+1, one per row) and then the horizontal cuts (between rows
    r and r+1, one per column); a bounding box's cells are memoized."""

    def __init__(self, params, netlist, pos, weight):
        self.params = params
        self.weight = weight
        self.nets = netlist.nets
        self.network = [net.network for net in self.nets]
        self.pins = [[net.source.unit] + [s.unit for s in net.sinks] for net in self.nets]
        self.pos = pos                    # unit -> (r, c) of its tile
        R, C = params.rows, params.cols
        caps = {"vec": params.vec_tracks, "scal": params.scal_tracks, "ctrl": params.ctrl_tracks}
        self.base = {}
        self.cap = []
        for net_name, cap in caps.items():
            self.base[net_name] = len(self.cap)
            self.cap += [float(cap)] * (R * (C - 1) + (R - 1) * C)
        self.demand = [0.0] * len(self.cap)
        self._boxes = {}
        self.nets_of = {u: [] for u in netlist.units}
        for i, pins in enumerate(self.pins):
            for u in dict.fromkeys(pins):
                self.nets_of[u].append(i)
        self.contrib = [None] * len(self.nets)
        self.wl = 0.0
        self.over = 0.0
        for i in range(len(self.nets)):
            self._add(i)

    @property
    def total(self) -> float:
        return self.wl + self.weight * self.over

    def _box_cells(self, network, r0, r1, c0, c1):
        key = (network, r0, r1, c0, c1)
        cells = self._boxes.get(key)
        if cells is None:
            R, C = self.params.rows, self.params.cols
            b = self.base[network]
            cells = []
            if c1 > c0:
                share = 1.0 / (r1 - r0 + 1)
                cells += [(b + r * (C - 1) + c, share)
                          for c in range(c0, c1) for r in range(r0, r1 + 1)]
            if r1 > r0:
                share = 1.0 / (c1 - c0 + 1)
                b2 = b + R * (C - 1)
                cells += [(b2 + r * C + c, share)
                          for r in range(r0, r1) for c in range(c0, c1 + 1)]
            self._boxes[key] = cells
        return cells

    def _net_terms(self, i):
        pos = self.pos
        pts = [pos[u] for u in self.pins[i]]
        r0 = min(p[0] for p in pts); r1 = max(p[0] for p in pts)
        c0 = min(p[1] for p in pts); c1 = max(p[1] for p in pts)
        return (r1 - r0) + (c1 - c0), self._box_cells(self.network[i], r0, r1, c0, c1)

    def _apply(self, cells, sign):
        dem, cap = self.demand, self.cap
        over = 0.0
        for idx, d in cells:
            old = dem[idx]
            new = old + sign * d
            dem[idx] = new
            cp = cap[idx]
            if new > cp or old > cp:
                over += max(new - cp, 0.0) - max(old - cp, 0.0)
        self.over += over

    def _add(self, i):
        wl, cells = self._net_terms(i)
        self.contrib[i] = (wl, cells)
        self.wl += wl
        self._apply(cells, 1.0)

    def _remove(self, i):
        wl, cells = self.contrib[i]
        self.wl -= wl
        self._apply(cells, -1.0)

    def update(self, units):
        nets = sorted({i for u in units for i in self.nets_of[u]})
        for i in nets:
            self._remove(i)
        for i in nets:
            self._add(i)


def placement_cost(params: FabricParams, netlist: Netlist, slots: dict, *,
                   congestion_weight: float = 2.0) -> tuple:
    """(cost, wirelength, overflow) of a placement, computed from scratch."""
    p = Placement(params, netlist, dict(slots))
    c = _Cost(params, netlist, {u: p.tile(u) for u in netlist.units}, congestion_weight)
    return c.total, c.wl, c.over


# -- annealing ---------------------------------------------------------------------------

def _check_fit(params, netlist):
    asked = netlist.count()
    available = {k: len(slots_of_kind(params, k)) for k in UNIT_KINDS}
    short = [k for k in UNIT_KINDS if asked[k] > available[k]]
    if short:
        def fmt(d):
            return ", ".join(f"{d[k]} {k.upper()}{'s' if d[k] != 1 else ''}" for k in UNIT_KINDS)
        raise DoesNotFit(
            f"the netlist needs {fmt(asked)}; preset {params.name!r} "
            f"({params.rows}x{params.cols}) has {fmt(available)}: too many "
            + ", ".join(f"{k.upper()}s ({asked[k]} > {available[k]})" for k in short),
            asked=asked, available=available)


def place(params: FabricParams, netlist: Netlist, *, seed: int = 0, effort: float = 1.0,
          congestion_weight: float = 2.0) -> Placement:
    """Place every unit of `netlist`; deterministic for a given `seed`.

    `effort` scales the number of moves per temperature. Raises
    :class:`DoesNotFit` when a kind has more units than slots and
    :class:`NetlistError` for a netlist or pin constraint that cannot work."""
    if not isinstance(params, FabricParams):
        raise TypeError(f"params must be a FabricParams, not {params!r}")
    netlist.validate(params)
    _check_fit(params, netlist)
    rng = random.Random(seed)
    topo = Topology(params)

    slots = {}
    owner = {}                  # (kind, slot) -> unit
    for name, unit in netlist.units.items():
        if unit.pin is not None:
            key = (unit.kind, unit.pin)
            if key in owner:
                raise NetlistError(f"units {owner[key]!r} and {name!r} are both pinned to "
                                   f"{unit.kind.upper()} slot {unit.pin}")
            owner[key] = name
            slots[name] = unit.pin
    for kind in UNIT_KINDS:
        free = [s for s in slots_of_kind(params, kind) if (kind, s) not in owner]
        rng.shuffle(free)
        for name, unit in netlist.units.items():
            if unit.kind == kind and unit.pin is None:
                s = free.pop()
                slots[name] = s
                owner[(kind, s)] = name

    def tile_of(name):
        if netlist.units[name].kind == "agcu":
            return topo.edge_tile(topo.agcu_edge(slots[name]))
        return slots[name]

    pos = {u: tile_of(u) for u in netlist.units}
    cost = _Cost(params, netlist, pos, congestion_weight)
    movable = [u for u, unit in netlist.units.items() if unit.pin is None]
    kind_slots = {k: slots_of_kind(params, k) for k in UNIT_KINDS}
    slot_pos = {k: {t: (topo.edge_tile(topo.agcu_edge(t)) if k == "agcu" else t)
                    for t in kind_slots[k]} for k in UNIT_KINDS}
    span = max(params.rows, params.cols)
    rlim = span
    budget = int(effort * 40000)
    moves = accepted = 0

    def propose():
        """Apply a random move; return an undo closure, or None if no move."""
        u = rng.choice(movable)
        kind = netlist.units[u].kind
        cands = kind_slots[kind]
        if len(cands) < 2:
            return None
        if rlim < span:
            # Range-limited moves (VPR): once cool, try only nearby slots.
            ur, uc = pos[u]
            cands = [t for t in cands if abs(slot_pos[kind][t][0] - ur) <= rlim
                     and abs(slot_pos[kind][t][1] - uc) <= rlim]
            if len(cands) < 2:
                return None
        s = rng.choice(cands)
        if s == slots[u]:
            return None
        v = owner.get((kind, s))
        if v is not None and netlist.units[v].pin is not None:
            return None
        old = slots[u]
        changed = [u] if v is None else [u, v]

        def assign(a, sa, b, sb):
            slots[a] = sa
            owner[(kind, sa)] = a
            pos[a] = tile_of(a)
            if b is None:
                owner.pop((kind, sb), None)
            else:
                slots[b] = sb
                owner[(kind, sb)] = b
                pos[b] = tile_of(b)

        assign(u, s, v, old)
        cost.update(changed)

        def undo():
            assign(u, old, v, s)
            cost.update(changed)
        return undo

    best = (cost.total, dict(slots))
    if movable and netlist.nets:
        # Initial temperature from the spread of random moves (VPR).
        deltas = []
        for _ in range(max(10, 2 * len(movable))):
            before = cost.total
            undo = propose()
            if undo is not None:
                deltas.append(cost.total - before)
        mean = sum(deltas) / len(deltas) if deltas else 0.0
        std = math.sqrt(sum((d - mean) ** 2 for d in deltas) / len(deltas)) if deltas else 0.0
        temp = 5.0 * std if std > 0 else 1.0
        if cost.total < best[0]:
            best = (cost.total, dict(slots))
        inner = max(20, int(effort * 4 * len(movable) ** (4 / 3)))
        frozen = 0
        best_at_step = best[0]
        steps = 0
        while steps < 200:
            steps += 1
            acc_here = uphill = uphill_acc = 0
            for _ in range(inner):
                before = cost.total
                undo = propose()
                if undo is None:
                    continue
                moves += 1
                delta = cost.total - before
                if delta > 1e-9:
                    uphill += 1
                if delta <= 0 or (temp > 0 and rng.random() < math.exp(-delta / temp)):
                    accepted += 1
                    acc_here += 1
                    uphill_acc += delta > 1e-9
                    if cost.total < best[0] - 1e-9:
                        best = (cost.total, dict(slots))
                else:
                    undo()
            rate = uphill_acc / max(uphill, 1)
            # Stop when frozen: few uphill moves taken and no new best for several
            # temperatures (zero-cost swaps keep the plain acceptance rate up).
            cold = uphill_acc <= 0.05 * max(uphill, 1)
            frozen = frozen + 1 if cold and best[0] >= best_at_step - 1e-9 else 0
            best_at_step = best[0]
            if (temp < 0.005 * max(cost.total, 1.0) / len(netlist.nets) or best[0] == 0
                    or frozen >= 6):
                break
            rlim = min(float(span), max(1.0, rlim * (1 - 0.44 + rate)))
            if moves >= budget:
                break
            temp *= 0.5 if rate > 0.9 else 0.8 if rate > 0.5 else 0.88 if rate > 0.1 else 0.8

    final_slots = best[1]
    total, wl, over = placement_cost(params, netlist, final_slots,
                                     congestion_weight=congestion_weight)
    return Placement(params, netlist, final_slots, seed=seed, cost=total, wirelength=wl,
                     overflow=over, moves=moves, accepted=accepted)
