"""cocotb entry point for a :class:`~tessera.hw.host_top.HostTop` on the
compiled backends: reads host operations (:mod:`tessera.sim.host_driver`)
from ``TESSERA_SCRIPT``, runs them and writes the results to
``TESSERA_RESULT``. Waits are simulator triggers: no Python per clock cycle
while the fabric runs."""

from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import First, RisingEdge, Timer

from tessera.hw.axi import AXI4LiteSignature
from tessera.sim.host_driver import HostPrimitives, run_host_ops

PERIOD_NS = 10
SETTLE_NS = 1


def _payload_fields():
    """{"csr.aw.payload.addr": (port, offset, width), ...} from the signature."""
    fields = {}
    sig = AXI4LiteSignature(addr_width=12)
    for ch in ("ar", "r", "aw", "w", "b"):
        layout = sig.members[ch].signature.members["payload"].shape
        for name, f in layout:
            fields[f"csr.{ch}.payload.{name}"] = (f"csr__{ch}__payload", f.offset, f.width)
    return fields


class CocotbHostPrimitives(HostPrimitives):
    def __init__(self, dut, design, beat_bytes, names):
        self.dut = dut
        self.design = design      # the HostTop instance under the simulation top
        storage = design.core.dram.storage
        self.storage = storage
        self.beat_bytes = beat_bytes
        self.names = names
        self.fields = _payload_fields()
        self.shadow = {}          # packed input ports we drive field by field

    def _handle(self, name):
        return getattr(self.dut, name.replace(".", "__"))

    def set(self, name, value):
        if name in self.fields:
            port, off, width = self.fields[name]
            mask = ((1 << width) - 1) << off
            v = (self.shadow.get(port, 0) & ~mask) | ((value << off) & mask)
            self.shadow[port] = v
            getattr(self.dut, port).value = v
        else:
            self._handle(name).value = value

    def get(self, name):
        if name in self.fields:
            port, off, width = self.fields[name]
            return (int(getattr(self.dut, port).value) >> off) & ((1 << width) - 1)
        return int(self._handle(name).value)

    async def tick(self, n=1):
        for _ in range(n):
            await RisingEdge(self.dut.clk)
        await Timer(SETTLE_NS, "ns")

    async def wait_high(self, name, timeout):
        sig = self._handle(name)
        if int(sig.value):
            return True
        await First(RisingEdge(sig), Timer(timeout * PERIOD_NS, "ns"))
        await Timer(SETTLE_NS, "ns")
        return bool(int(sig.value))

    async def write_beat(self, index, value):
        self.storage[index].value = value

    async def settle(self):
        # cocotb applies writes at the end of the time step: let them land.
        await Timer(SETTLE_NS, "ns")

    def read_beat(self, index):
        return int(self.storage[index].value)

    def snapshot(self):
        fabric = self.design.core.fabric
        return {name: int(getattr(fabric, f"cfg_{name}").active.value) for name in self.names}


@cocotb.test()
async def run(dut):
    with open(os.environ["TESSERA_SCRIPT"]) as f:
        payload = json.load(f)
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    for name in ("csr__ar__valid", "csr__aw__valid", "csr__w__valid", "csr__r__ready",
                 "csr__b__ready", "csr__ar__payload", "csr__aw__payload", "csr__w__payload"):
        getattr(dut, name).value = 0
    dut.rst.value = 1
    await Timer(3 * PERIOD_NS + SETTLE_NS, "ns")
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    await Timer(SETTLE_NS, "ns")
    design = getattr(dut, payload["inner"]) if payload.get("inner") else dut
    prims = CocotbHostPrimitives(dut, design, payload["beat_bytes"], payload["config_units"])
    start = time.perf_counter()
    cycle0 = int(dut.cycle.value)
    results = await run_host_ops(prims, payload["ops"], payload["csr"])
    out = {"results": results, "sim_seconds": time.perf_counter() - start,
           "sim_cycles": (int(dut.cycle.value) - cycle0) & 0xFFFF_FFFF}
    with open(os.environ["TESSERA_RESULT"], "w") as f:
        json.dump(out, f)
