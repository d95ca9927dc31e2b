"""cocotb entry point of the stream harness (:mod:`tessera.sim.harness`) on
compiled simulators: reads the stimulus from ``TESSERA_SCRIPT``, runs the
shared per-cycle loop, writes the result to ``TESSERA_RESULT``."""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, Timer

from tessera.sim.harness import drive, verilog_name


class CocotbIO:
    """Drive at the falling edge, sample in the ReadOnly phase after it:
    the values seen then are the ones the rising edge will act on."""

    def __init__(self, dut):
        self.dut = dut
        self.handles = {}

    def _h(self, path, member):
        key = (path, member)
        if key not in self.handles:
            self.handles[key] = getattr(self.dut, verilog_name(path, member))
        return self.handles[key]

    def set(self, path, member, value):
        self._h(path, member).value = value

    def get(self, path, member):
        return int(self._h(path, member).value)

    async def settle(self):
        await ReadOnly()

    async def tick(self):
        await FallingEdge(self.dut.clk)


@cocotb.test()
async def run(dut):
    with open(os.environ["TESSERA_SCRIPT"]) as f:
        kwargs = json.load(f)
    Clock(dut.clk, 10, unit="ns").start()
    io = CocotbIO(dut)
    # every input port idle during reset
    for path in kwargs["inputs"]:
        io.set(path, "valid", 0)
    for path in kwargs["expect"]:
        io.set(path, "ready", 0)
    for path, value in kwargs["static"].items():
        io.set(path, None, value)
    dut.rst.value = 1
    await Timer(25, "ns")
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    out = await drive(io, **kwargs)
    with open(os.environ["TESSERA_RESULT"], "w") as f:
        json.dump(out, f)
