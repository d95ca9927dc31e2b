"""CSR block over AXI4-Lite: register semantics against a dict model,
random ready/valid stalls on every channel, SLVERR off the map."""

import random

import pytest
from amaranth.sim import Simulator

from tessera.hw.axi import RESP_OKAY, RESP_SLVERR
from tessera.hw.csr import CSRBlock, Reg

REGS = [Reg("id", 0x00, "ro"), Reg("ctrl", 0x04, "pulse"), Reg("addr", 0x08, "rw"),
        Reg("len", 0x0C, "rw"), Reg("status", 0x10, "ro")]


async def lite_write(ctx, bus, rng, addr, data, strb=0xF):
    """AW and W presented in random order and timing; wait for B."""
    aw_sent = w_sent = False
    aw_at, w_at = rng.randrange(3), rng.randrange(3)
    cycle = 0
    while not (aw_sent and w_sent):
        ctx.set(bus.aw.valid, int(not aw_sent and cycle >= aw_at))
        ctx.set(bus.aw.payload.addr, addr)
        ctx.set(bus.w.valid, int(not w_sent and cycle >= w_at))
        ctx.set(bus.w.payload.data, data)
        ctx.set(bus.w.payload.strb, strb)
        aw_fire = ctx.get(bus.aw.valid) and ctx.get(bus.aw.ready)
        w_fire = ctx.get(bus.w.valid) and ctx.get(bus.w.ready)
        await ctx.tick()
        aw_sent |= bool(aw_fire)
        w_sent |= bool(w_fire)
        cycle += 1
    ctx.set(bus.aw.valid, 0)
    ctx.set(bus.w.valid, 0)
    while True:
        ctx.set(bus.b.ready, int(rng.random() < 0.5))
        if ctx.get(bus.b.valid) and ctx.get(bus.b.ready):
            resp = ctx.get(bus.b.payload.resp)
            await ctx.tick()
            ctx.set(bus.b.ready, 0)
            return resp
        await ctx.tick()


async def lite_read(ctx, bus, rng, addr):
    ctx.set(bus.ar.valid, 1)
    ctx.set(bus.ar.payload.addr, addr)
    await ctx.tick().until(bus.ar.ready)
    ctx.set(bus.ar.valid, 0)
    while True:
        ctx.set(bus.r.ready, int(rng.random() < 0.5))
        if ctx.get(bus.r.valid) and ctx.get(bus.r.ready):
            value = (ctx.get(bus.r.payload.data), ctx.get(bus.r.payload.resp))
            await ctx.tick()
            ctx.set(bus.r.ready, 0)
            return value
        await ctx.tick()


def test_csr_against_model():
    dut = CSRBlock(REGS)
    rng = random.Random(1)
    pulses = []

    async def watch(ctx):
        async for _, _, ctrl, data in ctx.tick().sample(dut.ctrl, dut.ctrl_data):
            if ctrl:
                pulses.append(data)

    async def host(ctx):
        ctx.set(dut.id, 0x41525354)
        ctx.set(dut.status, 7)
        model = {"addr": 0, "len": 0}
        for i in range(150):
            op = rng.choice(["w_rw", "w_ro", "w_pulse", "w_bad", "r"])
            if op == "w_rw":
                name = rng.choice(["addr", "len"])
                reg = next(r for r in REGS if r.name == name)
                value, strb = rng.getrandbits(32), rng.choice([0xF, 0x1, 0x6, 0x8])
                assert await lite_write(ctx, dut.bus, rng, reg.offset, value, strb) == RESP_OKAY
                mask = sum(0xFF << (8 * b) for b in range(4) if strb >> b & 1)
                model[name] = (model[name] & ~mask) | (value & mask)
            elif op == "w_ro":
                assert await lite_write(ctx, dut.bus, rng, 0x10, 5) == RESP_SLVERR
            elif op == "w_pulse":
                value = rng.getrandbits(32) | 1
                assert await lite_write(ctx, dut.bus, rng, 0x04, value) == RESP_OKAY
                await ctx.tick()
                assert pulses and pulses[-1] == value
            elif op == "w_bad":
                assert await lite_write(ctx, dut.bus, rng, 0x40, 1) == RESP_SLVERR
            else:
                reg = rng.choice(REGS)
                data, resp = await lite_read(ctx, dut.bus, rng, reg.offset)
                assert resp == RESP_OKAY
                expect = {"id": 0x41525354, "status": 7}.get(reg.name, model.get(reg.name))
                if reg.name != "ctrl":
                    assert data == expect, (reg.name, hex(data), hex(expect))
            assert ctx.get(dut.addr) == model["addr"] and ctx.get(dut.len) == model["len"]
        data, resp = await lite_read(ctx, dut.bus, rng, 0x44)
        assert resp == RESP_SLVERR
        done.append(i)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(watch)
    sim.add_testbench(host)
    done = []
    sim.run()
    assert done == [149] and len(pulses) > 10


def test_register_map_is_validated():
    with pytest.raises(ValueError, match="duplicates"):
        CSRBlock([Reg("a", 0, "rw"), Reg("b", 0, "rw")])
    with pytest.raises(ValueError, match="not 4-aligned"):
        Reg("a", 2, "rw")
    with pytest.raises(ValueError, match="access must be"):
        Reg("a", 0, "wo")
