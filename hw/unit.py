"""The unit-slot contract and the pass-through unit.

Every unit in a tile (PCU, PMU) has the same port shape, derived from
FabricParams: ``i_vec``/``o_vec``, ``i_scal``/``o_scal``, ``i_ctrl``/``o_ctrl``
stream arrays, and a ``config`` input holding its active configuration.
Inputs are buffered in :class:`~.links.StreamFIFO`s inside the unit.

:class:`PassUnit` is the placeholder that fills PCU and PMU slots until those
units land: it forwards one selected input of each network to output 0 of
that network, through the input FIFO (so it is registered like a real unit).
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .links import NETWORKS, StreamFIFO, flagged_counter, network_layout
from .params import FabricParams

__all__ = ["unit_port_counts", "unit_signature_members", "PassUnit", "pass_config_layout",
           "settled_config", "CONFIG_DELAY", "flagged_counter"]


def unit_port_counts(params: FabricParams, network: str) -> tuple[int, int]:
    """(inputs, outputs) of a unit slot on `network`."""
    return {
        "vec": (params.unit_vec_in, params.unit_vec_out),
        "scal": (params.unit_scal_in, params.unit_scal_out),
        "ctrl": (params.unit_ctrl_in, params.unit_ctrl_out),
    }[network]


def unit_signature_members(params: FabricParams, config_layout) -> dict:
    members = {"config": In(config_layout)}
    for net in NETWORKS:
        n_in, n_out = unit_port_counts(params, net)
        sig = stream.Signature(network_layout(params, net))
        members[f"i_{net}"] = In(sig).array(n_in)
        members[f"o_{net}"] = Out(sig).array(n_out)
    return members


def pass_config_layout(params: FabricParams) -> data.StructLayout:
    fields = {}
    for net in NETWORKS:
        n_in, _ = unit_port_counts(params, net)
        fields[net] = data.StructLayout({"en": 1, "sel": range(max(n_in, 2))})
    return data.StructLayout(fields)


#: Bits of a configuration compared per register by settled_config.
_CHANGE_CHUNK = 8

#: Cycles from a change of a unit's ``config`` to its registered copy
#: (:func:`settled_config`'s two detection stages and its load stage); the
#: unit then stays cleared for two more.
CONFIG_DELAY = 3


def settled_config(m: Module, config: data.View, name: str = "cfg_r", quiet_copies=(),
                   runs=(), run_enable=None):
    """A unit's registered copy of its ``config``, and ``quiet``: a flop that
    is 0 for the two cycles after any change of the copy.

    A unit acts on the copy and on values derived from it in registers
    (counter limits, decoded control bits), so no path runs from the
    configuration through adders into the datapath; ``quiet`` holds the unit
    cleared while those registers settle, so a new program always starts
    from a clean state.

    A change is found in two register stages: ``{name}_ne`` registers, per
    chunk of 8 bits, whether ``config`` differs from the copy, and
    ``{name}_changed`` registers their OR. One cycle later (``{name}_load``)
    the copy loads ``config`` (its value then); ``changed`` and ``load``
    both clear the two stages, whose findings against the old copy are then
    stale. So a new configuration reaches the copy three cycles after it
    appears (the old program runs on until then, on a consistent copy), and
    no path runs through a comparator as wide as the configuration.

    ``quiet`` needs no counter: it is ``{name}_calm`` (a flop, 0 in the
    cycle after ``changed`` or ``load``) delayed by one flop. Each signal of
    ``quiet_copies`` becomes another such flop loaded from ``calm`` (for
    place and route: a unit whose registers load while it settles can give
    each group of them its own enable; name them ``*_rep`` so that Yosys
    keeps them apart). Every copy is a flop fed by a flop, with no logic
    between, however far apart place and route puts the groups.

    Each signal of ``runs`` becomes a flop equal in every cycle to ``quiet &
    run_enable(copy)`` (a unit's "running": settled and enabled), loaded a
    cycle early from ``calm`` and the copy: where ``calm`` is 1, neither
    ``changed`` nor ``load`` was set in the cycle before, so the copy does not
    change in the next one. A unit's control then reads its own flop rather
    than an AND of two flops that drive the whole unit.
    Returns ``(copy, quiet)``."""
    if runs and run_enable is None:
        raise ValueError("settled_config: runs need run_enable (the copy's enable)")
    cfg = Signal(config.shape(), name=name)
    new, old = config.as_value(), cfg.as_value()
    chunks = range(0, len(new), _CHANGE_CHUNK)
    ne = Signal(len(chunks), name=f"{name}_ne")
    for i, lo in enumerate(chunks):
        m.d.sync += ne[i].eq(new[lo:lo + _CHANGE_CHUNK] != old[lo:lo + _CHANGE_CHUNK])
    changed = Signal(name=f"{name}_changed")
    load = Signal(name=f"{name}_load")
    m.d.sync += [changed.eq(ne.any()), load.eq(changed)]
    with m.If(changed | load):
        m.d.sync += [ne.eq(0), changed.eq(0)]
    with m.If(load):
        m.d.sync += cfg.eq(config)
    # 0 in the cycles the copy loads and the one after (and after reset)
    calm = Signal(name=f"{name}_calm")
    m.d.sync += calm.eq(~changed & ~load)
    quiet = Signal(name=f"{name}_quiet")
    for q in (quiet, *quiet_copies):
        m.d.sync += q.eq(calm)
    for r in runs:
        m.d.sync += r.eq(calm & run_enable(cfg))
    return cfg, quiet


class PassUnit(wiring.Component):
    """Placeholder unit: on each network, input ``sel`` -> output 0 when ``en``."""

    kind = "pass"

    def __init__(self, params: FabricParams):
        if not isinstance(params, FabricParams):
            raise TypeError(f"params must be a FabricParams, not {params!r}")
        self.params = params
        super().__init__(unit_signature_members(params, pass_config_layout(params)))

    @staticmethod
    def config_layout(params: FabricParams) -> data.StructLayout:
        return pass_config_layout(params)

    @staticmethod
    def pass_config(params: FabricParams, network: str, sel: int) -> dict:
        """Configuration that forwards input `sel` of `network` to output 0
        (every unit class provides this; the route compiler uses it)."""
        return {network: {"en": 1, "sel": sel}}

    def elaborate(self, platform):
        m = Module()
        for net in NETWORKS:
            n_in, n_out = unit_port_counts(self.params, net)
            layout = network_layout(self.params, net)
            cfg = getattr(self.config, net)
            ins = getattr(self, f"i_{net}")
            outs = getattr(self, f"o_{net}")
            fifos = []
            for j in range(n_in):
                q = StreamFIFO(layout, self.params.fifo_depth)
                m.submodules[f"fifo_{net}{j}"] = q
                wiring.connect(m, wiring.flipped(ins[j]), q.i)
                fifos.append(q)
            out = outs[0]
            with m.Switch(cfg.sel):
                for j, q in enumerate(fifos):
                    with m.Case(j):
                        m.d.comb += [
                            out.valid.eq(cfg.en & q.o.valid),
                            out.payload.eq(q.o.payload),
                            q.o.ready.eq(cfg.en & out.ready),
                        ]
        return m
