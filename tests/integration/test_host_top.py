"""The host top end to end: CSRs over AXI4-Lite, bitstreams fetched from DRAM
by the config DMA, AGCUs streaming DRAM -> fabric -> DRAM, performance
counters, soft reset, and model switching (load B while A runs)."""

import numpy as np
import pytest

from tessera.compiler.bitstream import encode
from tessera.hw.config import LoadError
from tessera.hw.host_top import CSR_MAP, HOST_VERSION, STATUS_BITS, HostTop
from tessera.hw.params import preset
from tessera.sim.host import copy_config, run_copy
from tessera.sim.host_driver import Host

from ..bitstreams import corruptions


def _active(config):
    return {cu.name: config.unit_bits(cu.name) for cu in config.topology.config_units}


def test_csr_map_is_consistent():
    p = preset("default")
    regs = HostTop.csr_map(p)
    assert len({r.offset for r in regs}) == len(regs)
    # 16 slots + 4 AGCUs, three events each
    assert len(regs) == len(CSR_MAP) + 3 * (p.tiles + p.agcus)


def test_csrs_and_bad_bitstreams_from_dram_pysim():
    """Loader errors through the DMA path: every code, state kept."""
    p = preset("tiny")
    host = Host(p, dram_bytes=1 << 16)
    version = host.csr_read("version")
    phash = host.csr_read("params_hash")
    host.csr_write("config_addr", 0x1230)
    addr = host.csr_read("config_addr")
    snaps = [host.snapshot()]
    a = copy_config(p, src=0x2000, dst=0x3000, nbytes=256, hops=3)
    la = host.load_config(encode(a))
    snaps.append(host.snapshot())
    loads = []
    bad = corruptions(encode(a), p.config_beat_words)
    for blob in bad.values():
        loads.append(host.load_config(blob))
        snaps.append(host.snapshot())
    host.run("pysim")
    assert version.value == HOST_VERSION
    assert phash.value == p.hash32
    assert addr.value == 0x1230
    assert set(snaps[0].value.values()) == {0}
    assert la.value["accepted"], la.value
    assert snaps[1].value == _active(a)
    for code, load, snap in zip(bad, loads, snaps[2:]):
        assert load.value["ended"] and not load.value["accepted"], code
        assert LoadError(load.value["error"]) == code
        assert snap.value == _active(a), f"{code.name} changed the configuration"


def test_copy_counters_and_soft_reset_pysim():
    p = preset("tiny")
    host = Host(p, dram_bytes=1 << 16)
    n = 2048
    data = np.arange(n, dtype=np.uint8) * 7
    src, dst = host.alloc(n), host.alloc(n)
    host.write_tensor(src, data)
    host.load_config(encode(copy_config(p, src=src, dst=dst, nbytes=n, hops=3)))
    host.start()
    done = host.wait(100_000)
    counters = host.read_counters()
    out = host.read_tensor(dst, (n,), "uint8")
    host.csr_write("config_addr", 0x40)
    host.soft_reset()
    after = host.snapshot()
    kept = host.csr_read("config_addr")
    status = host.csr_read("status")
    host.run("pysim")
    assert done.value["ok"]
    np.testing.assert_array_equal(out.value, data)
    c = counters.value
    assert c["offchip_read_bytes"] == n and c["offchip_write_bytes"] == n
    assert c["status"] >> STATUS_BITS["done"] & 1
    run = c["run_cycles"]
    assert run > 0
    for name in HostTop.perf_units(p):
        events = [c[f"perf_{name}_{ev}"] for ev in ("active", "starved", "stalled")]
        assert sum(events) <= run, name
    # AGCU 0 moved every vector in and out: one active cycle per vector moved
    vectors = 2 * n // (4 * p.lanes)
    assert c["perf_agcu_0_active"] <= vectors
    assert c["perf_agcu_0_active"] >= vectors // 2
    # soft reset: configuration gone, CSRs kept
    assert set(after.value.values()) == {0}
    assert kept.value == 0x40
    assert not status.value >> STATUS_BITS["loaded"] & 1


def _model_switch(sim):
    p = preset("small")
    host = Host(p)
    n = 32768                        # long enough that B loads while A runs
    x = np.random.default_rng(1).integers(-128, 128, n, dtype=np.int8)
    w = np.random.default_rng(2).integers(-128, 128, n, dtype=np.int8)
    X, Y, W, Z = (host.alloc(n) for _ in range(4))
    host.write_tensor(X, x)
    host.write_tensor(W, w)
    a = copy_config(p, src=X, dst=Y, nbytes=n, hops=3, read_agcu=0, write_agcu=1)
    b = copy_config(p, src=W, dst=Z, nbytes=n, hops=5, read_agcu=1, write_agcu=0)
    la = host.load_config(encode(a))
    host.start()
    lb = host.load_config(encode(b), defer=True)
    during = host.csr_read("status")
    snap_a = host.snapshot()
    done_a = host.wait()
    host.switch()
    switch_cycles = host.csr_read("switch_cycles")
    snap_b = host.snapshot()
    host.start()
    done_b = host.wait()
    y = host.read_tensor(Y, (n,), "int8")
    z = host.read_tensor(Z, (n,), "int8")
    host.run(sim)
    assert la.value["accepted"] and lb.value["accepted"]
    s = during.value
    assert s >> STATUS_BITS["busy"] & 1, "graph A had finished before B was loaded"
    assert s >> STATUS_BITS["pending"] & 1
    assert snap_a.value == _active(a), "a deferred load changed the running graph"
    assert done_a.value["ok"] and done_b.value["ok"]
    assert snap_b.value == _active(b)
    assert 1 <= switch_cycles.value <= 10
    np.testing.assert_array_equal(y.value, x)
    np.testing.assert_array_equal(z.value, w)
    return switch_cycles.value


def test_model_switch_pysim():
    _model_switch("pysim")


@pytest.mark.verilator
def test_model_switch_verilator(need_sim):
    need_sim("verilator")
    _model_switch("verilator")


@pytest.mark.verilator
def test_streaming_copy_bandwidth(need_sim):
    """DRAM -> fabric -> DRAM at >= 90% of the DRAM model's bandwidth."""
    need_sim("verilator")
    r = run_copy(preset("small"), nbytes=1 << 16, hops=4, sim="verilator")
    assert r["ok"], r
    assert r["offchip_read_bytes"] == r["offchip_write_bytes"] == 1 << 16
    assert r["bandwidth_fraction"] >= 0.90, r
