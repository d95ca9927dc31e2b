"""The host top: the accelerator as a host sees it.

    host --AXI4-Lite--> CSRBlock --control--+
                                            |
    DRAM <--AXI4-- AXI4Interconnect <-- ConfigDMA --> ConfigLoader --> Fabric.cfg
                          ^   ^
                          |   +-- AGCU k <--> Fabric vector edge ports
                          ...                 (Topology.agcu_ports(k))

Everything a run touches is in RTL: the host writes tensors and the
bitstream into DRAM (a backdoor in simulation, DMA on a board), writes CSRs,
waits for ``done`` and reads counters and results back. Off-chip traffic is
counted on the AXI channels, cycles by counters in this module.

Control (CSR map: :data:`CSR_MAP`):

* ``load``: the config DMA fetches ``config_len`` beats from ``config_addr``
  into the loader. With ``config_mode.defer`` clear, a good bitstream is
  committed (switched in) when it ends; with it set, the commit is held
  (``status.pending``) until the host writes ``switch``: the second graph is
  loaded into the shadow registers while the first one runs, and switched in
  by one CSR write. ``switch_cycles`` counts from that write's strobe to the
  cycle the config registers take the commit.
* ``start``: starts every AGCU (their read and write streams); ``done`` when
  all of them are done (every read vector delivered, every write
  acknowledged). ``run_cycles`` counts from ``start`` to ``done``.
* ``soft_reset``: returns the fabric, the AGCUs, the DMA, the loader and the
  interconnect to their reset state (configurations included); the CSRs and
  the DRAM contents stay.
* Performance counters, reset by ``start`` and counting while running: per
  unit slot and per AGCU, cycles active, starved on input and stalled on
  output (the events each unit reports), at ``PERF_BASE + 16*u`` (+0, +4, +8)
  with ``u`` the index in :meth:`HostTop.perf_units`.
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .agcu import AGCU, ScalarPort, agcu_axi_params
from .axi import AXI4LiteSignature
from .axi_interconnect import AXI4Interconnect
from .config_dma import ConfigDMA
from .csr import CSRBlock, Reg
from .dram import DRAM
from .fabric import Fabric, after_the_bus, load_done_flag
from .loader import ConfigLoader
from .params import FabricParams

__all__ = ["HostTop", "CSR_MAP", "PERF_BASE", "PERF_EVENTS", "STATUS_BITS", "csr_offset",
           "HOST_VERSION"]

HOST_VERSION = 1
PERF_BASE = 0x100
PERF_EVENTS = ("active", "starved", "stalled")

#: status register bits
STATUS_BITS = {"busy": 0, "done": 1, "load_busy": 2, "load_done": 3, "loaded": 4,
               "pending": 5, "error_shift": 8}

CSR_MAP = [
    Reg("start", 0x00, "pulse", "write 1: start every AGCU"),
    Reg("soft_reset", 0x04, "pulse", "write 1: reset everything but the CSRs and DRAM"),
    Reg("load", 0x08, "pulse", "write 1: fetch the bitstream at config_addr"),
    Reg("switch", 0x0C, "pulse", "write 1: commit a held (deferred) bitstream"),
    Reg("config_addr", 0x10, "rw", "byte address of the bitstream (beat-aligned)"),
    Reg("config_len", 0x14, "rw", "bitstream length in beats"),
    Reg("config_mode", 0x18, "rw", "bit 0: defer the commit until 'switch'"),
    Reg("status", 0x20, "ro", "busy, done, load_busy, load_done, loaded, pending; "
                              "error code in bits 8..11"),
    Reg("cycle", 0x24, "ro", "free-running cycle counter"),
    Reg("run_cycles", 0x28, "ro", "cycles from start to done"),
    Reg("config_cycles", 0x2C, "ro", "cycles from 'load' to the bitstream's end in the "
                                     "loader (DMA latency included)"),
    Reg("switch_cycles", 0x30, "ro", "cycles from 'switch' to the commit"),
    Reg("offchip_read_bytes", 0x34, "ro", "AGCU read bytes since start (R beats)"),
    Reg("offchip_write_bytes", 0x38, "ro", "AGCU written bytes since start (strobed)"),
    Reg("config_read_bytes", 0x3C, "ro", "config DMA bytes of the last load"),
    Reg("dram_read_bytes", 0x40, "ro", "all R bytes at the DRAM (wraps)"),
    Reg("dram_write_bytes", 0x44, "ro", "all strobed W bytes at the DRAM (wraps)"),
    Reg("params_hash", 0x48, "ro", "hash32 of the FabricParams"),
    Reg("version", 0x4C, "ro", "host interface version"),
    Reg("load_count", 0x50, "ro", "committed bitstreams (wraps at 2**16)"),
]


def csr_offset(name: str) -> int:
    for r in CSR_MAP:
        if r.name == name:
            return r.offset
    raise KeyError(f"no CSR named {name!r}")


class HostTop(wiring.Component):
    """CSRs + DRAM + config DMA + loader + AGCUs + fabric (module docstring).

    Ports: ``csr`` (AXI4-Lite slave, the host's only way in), ``run_done``
    and ``load_done`` (level signals a host may treat as interrupts; also
    in ``status``), ``cycle``.
    """

    def __init__(self, params: FabricParams, *, dram_bytes: int | None = None,
                 dram_latency: int | None = None):
        if not isinstance(params, FabricParams):
            raise TypeError(f"params must be a FabricParams, not {params!r}")
        if params.agcus < 1:
            raise ValueError(f"preset {params.name!r} has no AGCU: a host top needs at least one")
        self.params = params
        self.dram_bytes = dram_bytes or self.default_dram_bytes(params)
        self.axi_params = agcu_axi_params(params)
        self.fabric = Fabric(params)
        self.interconnect = AXI4Interconnect(self.axi_params, 1 + params.agcus)
        self.dram = DRAM(axi_params=self.interconnect.slave_params, size_bytes=self.dram_bytes,
                         latency=dram_latency or params.dram_latency,
                         bytes_per_cycle=params.dram_bytes_per_cycle, max_outstanding=16)
        super().__init__({
            "csr": In(AXI4LiteSignature(addr_width=12)),
            "run_done": Out(1),
            "load_done": Out(1),
            "cycle": Out(32),
        })

    @staticmethod
    def default_dram_bytes(params: FabricParams) -> int:
        """1 MiB: room for 256^3 int8 GEMM operands, an int32 result and a
        bitstream."""
        return 1 << 20

    @staticmethod
    def perf_units(params: FabricParams) -> list:
        """Names of the units with performance counters, in CSR order: the
        unit slots (row-major), then the AGCUs."""
        units = [f"{params.unit_kind(r, c)}_{r}_{c}"
                 for r in range(params.rows) for c in range(params.cols)]
        return units + [f"agcu_{k}" for k in range(params.agcus)]

    @classmethod
    def csr_map(cls, params: FabricParams) -> list:
        regs = list(CSR_MAP)
        for u, name in enumerate(cls.perf_units(params)):
            for e, ev in enumerate(PERF_EVENTS):
                regs.append(Reg(f"perf_{name}_{ev}", PERF_BASE + 16 * u + 4 * e, "ro"))
        return regs

    def elaborate(self, platform):
        m = Module()
        p = self.params
        regs = self.csr_map(p)
        m.submodules.csr = csr = CSRBlock(regs, addr_width=12)
        wiring.connect(m, wiring.flipped(self.csr), csr.bus)

        # Everything below the CSRs is in a soft-resettable region.
        core = Module()
        m.submodules.core = ResetInserter(csr.soft_reset)(core)
        core.submodules.fabric = fabric = self.fabric
        core.submodules.dram = dram = self.dram
        core.submodules.interconnect = ic = self.interconnect
        core.submodules.dma = dma = ConfigDMA(self.axi_params, p.config_beat_words)
        core.submodules.loader = loader = ConfigLoader(p)
        agcus = []
        for k in range(p.agcus):
            a = AGCU(p)
            core.submodules[f"agcu_{k}"] = a
            agcus.append(a)

        # -- memory path --------------------------------------------------------------
        wiring.connect(core, dma.axi, ic.masters[0])
        for k, a in enumerate(agcus):
            wiring.connect(core, a.axi, ic.masters[1 + k])
        wiring.connect(core, ic.slave, dram.axi)

        # -- configuration: DMA -> loader -> (commit gate) -> fabric ------------------
        core.d.comb += [dma.start.eq(csr.load), dma.addr.eq(csr.config_addr),
                        dma.length.eq(csr.config_len)]
        wiring.connect(core, dma.o, loader.i)
        defer = csr.config_mode[0]
        pending = Signal()
        commit = Signal()
        core.d.comb += [
            fabric.cfg.write.eq(loader.cfg.write),
            fabric.cfg.addr.eq(loader.cfg.addr),
            fabric.cfg.data.eq(loader.cfg.data),
            commit.eq((loader.cfg.commit & ~defer) | (csr.switch & (pending | loader.cfg.commit))),
            fabric.cfg.commit.eq(commit),
        ]
        with core.If(commit):
            core.d.sync += pending.eq(0)
        with core.Elif(loader.cfg.commit & defer):
            core.d.sync += pending.eq(1)
        with core.Elif(csr.load):
            core.d.sync += pending.eq(0)      # a new load drops a held one

        # switch_cycles: from the 'switch' strobe to the config registers'
        # commit (the fabric registers its config bus once).
        switching = Signal()
        switch_cycles = Signal(32)
        with core.If(csr.switch & pending):
            core.d.sync += [switching.eq(1), switch_cycles.eq(1)]
        with core.Elif(switching):
            core.d.sync += switch_cycles.eq(switch_cycles + 1)
        with core.If(fabric.committing):
            core.d.sync += switching.eq(0)

        # load_done: cleared by 'load', set when the loader has ended that
        # bitstream and its commit (if any, and not held) has reached the units.
        load_done, ended = load_done_flag(core, csr.load, loader.ended)
        load_cycles = Signal(32)
        loading = Signal()
        with core.If(csr.load):
            core.d.sync += [loading.eq(1), load_cycles.eq(1)]
        with core.Elif(ended):
            core.d.sync += loading.eq(0)
        with core.Elif(loading):
            core.d.sync += load_cycles.eq(load_cycles + 1)
        dma_bytes = Signal(32)          # bytes the DMA read for the last load
        dma_base = Signal(32)
        with core.If(csr.load):
            core.d.sync += dma_base.eq(dma.read_bytes)
        core.d.sync += dma_bytes.eq(dma.read_bytes - dma_base)

        start = after_the_bus(core, csr.start, "start")

        # -- AGCUs on the fabric's edge ports ----------------------------------------------
        topo = fabric.topology
        for k, a in enumerate(agcus):
            i_in, i_out = topo.agcu_ports(k)
            cfg = fabric.agcu_config[k]
            # The read stream goes to the vector edge input, or (cfg.scal)
            # through the scalar port to the scalar edge input.
            sp = ScalarPort(p)
            core.submodules[f"agcu_{k}_scal"] = sp
            vin = fabric.edge_in_vec[i_in]
            sin = fabric.edge_in_scal[topo.agcu_scal_port(k)]
            core.d.comb += [
                vin.payload.eq(a.o_vec.payload), sp.i.payload.eq(a.o_vec.payload),
                vin.valid.eq(a.o_vec.valid & ~cfg.scal), sp.i.valid.eq(a.o_vec.valid & cfg.scal),
                a.o_vec.ready.eq(Mux(cfg.scal, sp.i.ready, vin.ready)),
            ]
            wiring.connect(core, sp.o, sin)
            wiring.connect(core, fabric.edge_out_vec[i_out], a.i_vec)
            core.d.comb += [a.config.eq(cfg), a.start.eq(start)]

        # -- run control ----------------------------------------------------------------------
        running = Signal()
        done = Signal()
        all_done = Signal()
        core.d.comb += all_done.eq(Cat(*[a.done for a in agcus]).all())
        run_cycles = Signal(32)
        with core.If(csr.start):
            core.d.sync += done.eq(0)       # at once: no stale 'done' while start travels
        with core.If(start):
            core.d.sync += [running.eq(1), done.eq(0), run_cycles.eq(0)]
        with core.Elif(running):
            core.d.sync += run_cycles.eq(run_cycles + 1)
            # the AGCUs raise busy the cycle after start, done when finished
            with core.If(all_done):
                core.d.sync += [running.eq(0), done.eq(1)]

        # -- counters -----------------------------------------------------------------------
        cycle = Signal(32)
        m.d.sync += cycle.eq(cycle + 1)
        rd_bytes = Signal(32)
        wr_bytes = Signal(32)
        core.d.sync += [rd_bytes.eq(sum(a.read_bytes for a in agcus)),
                        wr_bytes.eq(sum(a.write_bytes for a in agcus))]
        events = {ev: Cat(getattr(fabric, f"perf_{ev}"),
                          *[getattr(a, f"perf_{ev}") for a in agcus]) for ev in PERF_EVENTS}
        n_units = len(self.perf_units(p))
        for u, name in enumerate(self.perf_units(p)):
            for ev in PERF_EVENTS:
                ctr = Signal(32, name=f"perf_{name}_{ev}")
                with core.If(start):
                    core.d.sync += ctr.eq(0)
                with core.Elif(running & events[ev][u]):
                    core.d.sync += ctr.eq(ctr + 1)
                core.d.comb += getattr(csr, f"perf_{name}_{ev}").eq(ctr)
        assert n_units == len(events["active"])

        status = Signal(32)
        core.d.comb += status.eq(
            (running << STATUS_BITS["busy"]) | (done << STATUS_BITS["done"])
            | ((loader.busy | dma.busy) << STATUS_BITS["load_busy"])
            | (load_done << STATUS_BITS["load_done"])
            | (loader.loaded << STATUS_BITS["loaded"])
            | (pending << STATUS_BITS["pending"])
            | (loader.error << STATUS_BITS["error_shift"]))
        m.d.comb += [
            csr.status.eq(status),
            csr.cycle.eq(cycle),
            csr.run_cycles.eq(run_cycles),
            csr.config_cycles.eq(load_cycles),
            csr.switch_cycles.eq(switch_cycles),
            csr.offchip_read_bytes.eq(rd_bytes),
            csr.offchip_write_bytes.eq(wr_bytes),
            csr.config_read_bytes.eq(dma_bytes),
            csr.dram_read_bytes.eq(dram.read_bytes),
            csr.dram_write_bytes.eq(dram.write_bytes),
            csr.params_hash.eq(p.hash32),
            csr.version.eq(HOST_VERSION),
            csr.load_count.eq(loader.commits),
            self.run_done.eq(done),
            self.load_done.eq(load_done),
            self.cycle.eq(cycle),
        ]
        return m
