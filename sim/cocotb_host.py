"""cocotb entry point for the compiled backends (Verilator, Icarus).

Reads a script (see :mod:`tessera.sim.driver`) from the file named by
``TESSERA_SCRIPT``, runs it against the SimTop and writes the results as JSON
to ``TESSERA_RESULT``. The clock is cocotb's GPI clock and every wait is a
simulator trigger, so no Python runs per clock cycle.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import First, RisingEdge, Timer

from tessera.sim.driver import Primitives, run_script

PERIOD_NS = 10
SETTLE_NS = 1       # act one nanosecond after each rising edge


class CocotbPrimitives(Primitives):
    def __init__(self, dut, boot, names):
        self.dut = dut
        self.boot = boot
        self.names = names

    async def write_boot(self, words):
        for i, w in enumerate(words):
            self.boot[i].value = w
        await Timer(SETTLE_NS, "ns")

    def set(self, name, value):
        getattr(self.dut, name).value = value

    def get(self, name):
        return int(getattr(self.dut, name).value)

    def snapshot(self):
        fabric = self.dut.fabric
        return {name: int(getattr(fabric, f"cfg_{name}").active.value) for name in self.names}

    async def tick(self, n=1):
        for _ in range(n):
            await RisingEdge(self.dut.clk)
        await Timer(SETTLE_NS, "ns")

    async def wait_high(self, name, timeout):
        sig = getattr(self.dut, name)
        if int(sig.value):
            return True
        await First(RisingEdge(sig), Timer(timeout * PERIOD_NS, "ns"))
        await Timer(SETTLE_NS, "ns")
        return bool(int(sig.value))


def _find_boot(dut):
    """The boot memory array, wherever the Verilog generator put it."""
    for path in (("boot",), ("boot", "data"), ("boot", "mem")):
        handle = dut
        try:
            for part in path:
                handle = getattr(handle, part)
            handle[0]
            return handle
        except (AttributeError, IndexError, TypeError):
            continue
    raise RuntimeError("cannot find the boot memory array in the simulated top")


@cocotb.test()
async def run(dut):
    with open(os.environ["TESSERA_SCRIPT"]) as f:
        script = json.load(f)
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    for name, value in script.get("inputs", {}).items():
        getattr(dut, name).value = value
    dut.rst.value = 1
    await Timer(3 * PERIOD_NS + SETTLE_NS, "ns")
    dut.rst.value = 0
    start = time.perf_counter()
    cycle0 = int(dut.cycle.value)
    results = await run_script(CocotbPrimitives(dut, _find_boot(dut), script.get("config_units", [])), script["ops"])
    wall = time.perf_counter() - start
    out = {"results": results, "sim_seconds": wall,
           "sim_cycles": (int(dut.cycle.value) - cycle0) & 0xFFFF_FFFF}
    with open(os.environ["TESSERA_RESULT"], "w") as f:
        json.dump(out, f)
