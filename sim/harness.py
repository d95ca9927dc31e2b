"""Stream harness for unit tests: drive any component's input streams and
collect its output streams, with random gaps and random backpressure, on
Amaranth's simulator or on Verilator/Icarus (one cached model per key).

    res = run_streams(make_dut, sim="verilator", key="pcu-small",
                      static={"config": bits},
                      inputs={"i_vec[0]": [payload bits, ...]},
                      expect={"o_vec[0]": 16},
                      in_gap=0.3, out_stall=0.3, seed=1)
    res.outputs["o_vec[0]"], res.cycles, res.transfers["o_vec[0]"]

Ports are named by their path in the component's signature: ``"i"``,
``"i_vec[0]"``. Payloads are raw integers (``layout.const(...).as_bits()``).
The stimulus schedule depends only on `seed`, so both backends see the same
cycles. Output streams are checked against the stream rules (valid held with a
stable payload until the transfer). This runs Python every cycle: it is for
unit tests, not for the main flow.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

__all__ = ["run_streams", "HarnessResult", "StreamRuleError"]

TOP_NAME = "tessera_unit_top"


class StreamRuleError(AssertionError):
    pass


@dataclass
class HarnessResult:
    outputs: dict
    transfers: dict
    consumed: dict            # input port -> number of words the DUT took
    cycles: int               # cycles until every expected output arrived
    timed_out: bool
    sim: str
    build_seconds: float = 0.0
    extra: dict = field(default_factory=dict)


_PATH = re.compile(r"^([A-Za-z_]\w*)(?:\[(\d+)\])?$")


def _split(path: str):
    m = _PATH.match(path)
    if not m:
        raise ValueError(f"bad port path {path!r}; expected 'name' or 'name[index]'")
    return m.group(1), None if m.group(2) is None else int(m.group(2))


def verilog_name(path: str, member: str | None = None) -> str:
    """Name Amaranth gives a (flattened) port in generated Verilog."""
    name, index = _split(path)
    parts = [name] + ([str(index)] if index is not None else []) + ([member] if member else [])
    return "__".join(parts)


async def drive(io, *, static, inputs, expect, in_gap, out_stall, seed, timeout, drain):
    """The per-cycle loop, shared by both backends. `io` provides set(path,
    member, value), get(path, member), and async tick()."""
    rng = random.Random(seed)
    for path, value in static.items():
        io.set(path, None, value)
    pos = {p: 0 for p in inputs}
    offering = {p: False for p in inputs}
    outputs = {p: [] for p in expect}
    transfers = {p: [] for p in expect}
    held = {p: None for p in expect}
    done_at = None
    for cycle in range(timeout + drain):
        finishing = done_at is not None
        # drive inputs: keep offering a word until it is taken (stream rule)
        for p, items in inputs.items():
            if not offering[p] and pos[p] < len(items) and rng.random() >= in_gap:
                offering[p] = True
            io.set(p, "valid", int(offering[p]))
            if offering[p]:
                io.set(p, "payload", items[pos[p]])
        ready = {p: int(finishing or rng.random() >= out_stall) for p in expect}
        for p in expect:
            io.set(p, "ready", ready[p])
        await io.settle()
        for p in inputs:
            if offering[p] and io.get(p, "ready"):
                pos[p] += 1
                offering[p] = False
        for p in expect:
            valid = io.get(p, "valid")
            payload = io.get(p, "payload") if valid else None
            if held[p] is not None:
                if not valid:
                    raise StreamRuleError(f"{p}: valid withdrawn before the transfer (cycle {cycle})")
                if payload != held[p]:
                    raise StreamRuleError(f"{p}: payload changed before the transfer (cycle {cycle})")
            if valid and ready[p]:
                outputs[p].append(payload)
                transfers[p].append(cycle)
                held[p] = None
            elif valid:
                held[p] = payload
        await io.tick()
        if done_at is None and all(len(outputs[p]) >= n for p, n in expect.items()):
            done_at = cycle + 1
        if done_at is not None and cycle + 1 >= done_at + drain:
            break
    return {"outputs": outputs, "transfers": transfers, "consumed": pos,
            "cycles": done_at if done_at is not None else timeout,
            "timed_out": done_at is None}


class _PysimIO:
    def __init__(self, ctx, dut):
        self.ctx = ctx
        self.dut = dut

    def _port(self, path):
        name, index = _split(path)
        obj = getattr(self.dut, name)
        return obj if index is None else obj[index]

    def set(self, path, member, value):
        port = self._port(path)
        sig = port if member is None else getattr(port, member)
        if hasattr(sig, "as_value"):
            sig = sig.as_value()
        self.ctx.set(sig, value)

    def get(self, path, member):
        port = self._port(path)
        sig = port if member is None else getattr(port, member)
        if hasattr(sig, "as_value"):
            sig = sig.as_value()
        return int(self.ctx.get(sig))

    async def settle(self):
        pass                    # testbench reads are settled in Amaranth 0.5

    async def tick(self):
        await self.ctx.tick()


def _run_pysim(make_dut, kwargs):
    from amaranth.sim import Simulator
    dut = make_dut()
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    out = {}

    async def bench(ctx):
        out.update(await drive(_PysimIO(ctx, dut), **kwargs))

    sim.add_testbench(bench)
    sim.run()
    return out


def run_streams(make_dut, *, sim: str = "pysim", key: str | None = None,
                static: dict | None = None, inputs: dict | None = None,
                expect: dict | None = None, in_gap: float = 0.0, out_stall: float = 0.0,
                seed: int = 0, timeout: int = 100_000, drain: int = 16) -> HarnessResult:
    """Run one stimulus on `make_dut()`; see the module docstring."""
    if not expect:
        raise ValueError("expect must name at least one output port and its word count")
    kwargs = dict(static=dict(static or {}), inputs={p: list(v) for p, v in (inputs or {}).items()},
                  expect=dict(expect), in_gap=in_gap, out_stall=out_stall, seed=seed,
                  timeout=timeout, drain=drain)
    build_seconds = 0.0
    if sim == "pysim":
        out = _run_pysim(make_dut, kwargs)
    elif sim in ("verilator", "icarus"):
        if not key:
            raise ValueError("a compiled backend needs key= to name its cached model "
                             "(include everything the model depends on, e.g. the preset)")
        from .backends import build_model, run_cocotb, simulator_env
        public = f'`verilator_config\npublic_flat_rw -module "{TOP_NAME}" -var "*"\n'
        with simulator_env(sim):
            d, _, build_seconds = build_model(sim, top_name=TOP_NAME, key={"unit": key},
                                              make_top=make_dut, public=public,
                                              label=f"unit-{key}")
            out = run_cocotb(sim, d, top_name=TOP_NAME, test_module="tessera.sim.cocotb_streams",
                             payload=kwargs)
    else:
        raise ValueError(f"unknown simulator {sim!r}; choose pysim, verilator or icarus")
    return HarnessResult(out["outputs"], out["transfers"], out["consumed"], out["cycles"],
                         out["timed_out"], sim, build_seconds)
