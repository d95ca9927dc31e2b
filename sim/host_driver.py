"""The host driver: what software does to a :class:`~tessera.hw.host_top.HostTop`.

A host program is written once against :class:`Host` and runs on any
transport. ``Host`` records operations (``write_tensor``, ``load_config``,
``start``, ``wait``, ``read_tensor``, ``read_counters``, ...) and
:meth:`Host.run` executes them on a backend, then fills in the results. The
operations are plain JSON-able dicts interpreted by :func:`run_host_ops`
inside the simulator, on top of a few primitives (drive/sample a port, wait
for a clock edge or a level, backdoor DRAM beats); every CSR access is a
real AXI4-Lite transaction on the top's ``csr`` port, and waiting for
``done`` is one simulator-side wait, so no Python runs per clock cycle while
the fabric works. A board transport would implement the same primitives
over its link (CSR reads/writes and DMA for the DRAM backdoor).

Operations:

``{"op": "mem_write", "addr": a, "hex": ...}``  bytes into DRAM (backdoor)
``{"op": "mem_read", "addr": a, "length": n}``  -> ``hex``
``{"op": "csr_write", "reg": name, "value": v}`` -> ``resp``
``{"op": "csr_read", "reg": name}``              -> ``value``, ``resp``
``{"op": "wait", "signal": "run_done"|"load_done", "timeout": cycles}`` -> ``ok``, ``cycles``
``{"op": "counters"}``                           -> every CSR by name
``{"op": "snapshot"}``                           -> active config of every config unit
``{"op": "idle", "cycles": n}``
"""

from __future__ import annotations

import time

import numpy as np

from ..hw.host_top import STATUS_BITS, HostTop
from ..hw.params import FabricParams
from .backends import SimResult

__all__ = ["Host", "HostPrimitives", "run_host_ops", "op_seconds", "Pending", "HostRunResult",
           "DTYPES"]

DTYPES = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "uint8": np.uint8}


class HostPrimitives:
    """What a transport provides (see the pysim and cocotb backends)."""

    beat_bytes: int

    def set(self, name: str, value: int) -> None: ...
    def get(self, name: str) -> int: ...
    async def tick(self, n: int = 1) -> None: ...
    async def wait_high(self, name: str, timeout: int) -> bool: ...
    async def write_beat(self, index: int, value: int) -> None: ...
    def read_beat(self, index: int) -> int: ...
    async def settle(self) -> None:
        """Let port and backdoor writes take effect and combinational
        outputs settle, without a clock edge."""
    def snapshot(self) -> dict: ...


async def _csr_write(prims, addr, value, limit=64):
    """An AXI4-Lite write: AW and W together, then B."""
    prims.set("csr.aw.payload.addr", addr)
    prims.set("csr.w.payload.data", value & 0xFFFF_FFFF)
    prims.set("csr.w.payload.strb", 0xF)
    prims.set("csr.aw.valid", 1)
    prims.set("csr.w.valid", 1)
    prims.set("csr.b.ready", 1)
    aw = w = False
    for _ in range(limit):
        await prims.settle()        # sample ready only after the new inputs settle
        aw_fire = prims.get("csr.aw.ready") and not aw
        w_fire = prims.get("csr.w.ready") and not w
        await prims.tick()
        aw |= bool(aw_fire)
        w |= bool(w_fire)
        prims.set("csr.aw.valid", int(not aw))
        prims.set("csr.w.valid", int(not w))
        if aw and w:
            break
    for _ in range(limit):
        if prims.get("csr.b.valid"):
            resp = prims.get("csr.b.payload.resp")
            await prims.tick()
            prims.set("csr.b.ready", 0)
            return resp
        await prims.tick()
    raise RuntimeError(f"CSR write to {addr:#x} got no response in {limit} cycles")


async def _csr_read(prims, addr, limit=64):
    prims.set("csr.ar.payload.addr", addr)
    prims.set("csr.ar.valid", 1)
    prims.set("csr.r.ready", 1)
    for _ in range(limit):
        await prims.settle()
        fire = prims.get("csr.ar.ready")
        await prims.tick()
        if fire:
            break
    prims.set("csr.ar.valid", 0)
    for _ in range(limit):
        if prims.get("csr.r.valid"):
            value = prims.get("csr.r.payload.data")
            resp = prims.get("csr.r.payload.resp")
            await prims.tick()
            prims.set("csr.r.ready", 0)
            return value, resp
        await prims.tick()
    raise RuntimeError(f"CSR read of {addr:#x} got no response in {limit} cycles")


async def _mem_write(prims, addr, blob):
    bb = prims.beat_bytes
    end = addr + len(blob)
    first, last = addr // bb, (end - 1) // bb
    for beat in range(first, last + 1):
        lo, hi = max(addr, beat * bb), min(end, (beat + 1) * bb)
        chunk = blob[lo - addr:hi - addr]
        if hi - lo == bb:
            value = int.from_bytes(chunk, "little")
        else:           # a partial beat: read, modify, write
            old = bytearray(prims.read_beat(beat).to_bytes(bb, "little"))
            old[lo - beat * bb:hi - beat * bb] = chunk
            value = int.from_bytes(bytes(old), "little")
        await prims.write_beat(beat, value)


def _mem_read(prims, addr, length):
    bb = prims.beat_bytes
    if length <= 0:
        return b""
    first, last = addr // bb, (addr + length - 1) // bb
    raw = b"".join(prims.read_beat(b).to_bytes(bb, "little") for b in range(first, last + 1))
    off = addr - first * bb
    return raw[off:off + length]


async def run_host_ops(prims: HostPrimitives, ops: list, csr_names: dict) -> list:
    """Execute host operations; `csr_names` maps register name -> byte offset."""
    results = []
    for op in ops:
        kind = op["op"]
        t0 = time.perf_counter()
        if kind == "mem_write":
            await _mem_write(prims, op["addr"], bytes.fromhex(op["hex"]))
            await prims.settle()
            results.append({"op": kind})
        elif kind == "mem_read":
            results.append({"op": kind, "hex": _mem_read(prims, op["addr"], op["length"]).hex()})
        elif kind == "csr_write":
            resp = await _csr_write(prims, csr_names[op["reg"]], int(op["value"]))
            results.append({"op": kind, "resp": resp})
        elif kind == "csr_read":
            value, resp = await _csr_read(prims, csr_names[op["reg"]])
            results.append({"op": kind, "value": value, "resp": resp})
        elif kind == "wait":
            c0 = prims.get("cycle")
            ok = await prims.wait_high(op["signal"], int(op["timeout"]))
            results.append({"op": kind, "ok": bool(ok),
                            "cycles": (prims.get("cycle") - c0) & 0xFFFF_FFFF})
        elif kind == "counters":
            values = {}
            for name, addr in csr_names.items():
                values[name], _ = await _csr_read(prims, addr)
            results.append({"op": kind, "values": values})
        elif kind == "snapshot":
            results.append({"op": kind, "active": prims.snapshot()})
        elif kind == "idle":
            await prims.tick(int(op.get("cycles", 1)))
            results.append({"op": kind})
        else:
            raise ValueError(f"unknown host operation {kind!r}")
        # wall time of the operation: the simulator's share (waits) against
        # the testbench's (backdoor and CSR traffic); see op_seconds()
        results[-1]["seconds"] = time.perf_counter() - t0
    return results


def op_seconds(results: list) -> dict:
    """Wall seconds per kind of host operation (``wait`` is the fabric
    running on its own; the others are the testbench's traffic)."""
    out = {}
    for r in results:
        out[r["op"]] = out.get(r["op"], 0.0) + r.get("seconds", 0.0)
    return {k: round(v, 4) for k, v in out.items()}


class Pending:
    """A result that :meth:`Host.run` fills in: ``convert`` applied to the
    results of the operations at ``indices`` (one or several)."""

    def __init__(self, convert, *indices):
        self._convert = convert
        self._indices = indices
        self._value = None
        self._set = False

    def _resolve(self, results):
        self._value = self._convert(*[results[i] for i in self._indices])
        self._set = True

    @property
    def value(self):
        if not self._set:
            raise RuntimeError("this result is available after Host.run()")
        return self._value


#: What :meth:`Host.run` returns: the backends' result record.
HostRunResult = SimResult


class Host:
    """A host program for one HostTop (see the module docstring).

    ``dram_bytes`` sizes the simulated DRAM; memory is handed out by
    :meth:`alloc` (64-byte aligned by default) from address 0x1000 up.
    """

    CONFIG_REGION = 0x0

    def __init__(self, params: FabricParams, *, dram_bytes: int | None = None):
        if not isinstance(params, FabricParams):
            raise TypeError(f"params must be a FabricParams, not {params!r}")
        self.params = params
        self.dram_bytes = dram_bytes or HostTop.default_dram_bytes(params)
        self.beat_bytes = params.dram_bytes_per_cycle
        self.ops: list = []
        self._pending: list = []        # Pending results, filled by run()
        self._next = 0x1000
        self.csr_map = {r.name: r.offset for r in HostTop.csr_map(params)}

    # -- memory ----------------------------------------------------------------------
    def alloc(self, nbytes: int, *, align: int = 64) -> int:
        if not isinstance(nbytes, int) or nbytes < 0:
            raise ValueError(f"alloc: size must be a non-negative int, got {nbytes!r}")
        addr = -(-self._next // align) * align
        if addr + nbytes > self.dram_bytes:
            raise MemoryError(f"alloc: {nbytes} bytes at {addr:#x} exceed the simulated DRAM of "
                              f"{self.dram_bytes} bytes; pass a larger dram_bytes")
        self._next = addr + nbytes
        return addr

    @property
    def allocated_end(self) -> int:
        """The first address past everything :meth:`alloc` handed out."""
        return self._next

    def _op(self, op, convert=None):
        self.ops.append(op)
        if convert is None:
            return None
        return self._result(convert, len(self.ops) - 1)

    def _result(self, convert, *indices) -> Pending:
        p = Pending(convert, *indices)
        self._pending.append(p)
        return p

    def write_bytes(self, addr: int, blob: bytes) -> None:
        if addr < 0 or addr + len(blob) > self.dram_bytes:
            raise ValueError(f"write of {len(blob)} bytes at {addr:#x} is outside the DRAM "
                             f"({self.dram_bytes} bytes)")
        self._op({"op": "mem_write", "addr": addr, "hex": bytes(blob).hex()})

    def read_bytes(self, addr: int, length: int) -> Pending:
        if addr < 0 or addr + length > self.dram_bytes:
            raise ValueError(f"read of {length} bytes at {addr:#x} is outside the DRAM")
        return self._op({"op": "mem_read", "addr": addr, "length": length},
                        lambda r: bytes.fromhex(r["hex"]))

    def write_tensor(self, addr: int, array) -> None:
        """Store `array` row-major, little-endian, at `addr`."""
        a = np.ascontiguousarray(array)
        if a.dtype.name not in DTYPES:
            raise TypeError(f"write_tensor: dtype {a.dtype} is not one of {', '.join(DTYPES)}")
        self.write_bytes(addr, a.astype(a.dtype.newbyteorder("<")).tobytes())

    def read_tensor(self, addr: int, shape, dtype: str) -> Pending:
        if dtype not in DTYPES:
            raise TypeError(f"read_tensor: dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        dt = np.dtype(DTYPES[dtype]).newbyteorder("<")
        n = int(np.prod(shape)) * dt.itemsize
        if addr < 0 or addr + n > self.dram_bytes:
            raise ValueError(f"read of {n} bytes at {addr:#x} is outside the DRAM")
        self._op({"op": "mem_read", "addr": addr, "length": n})
        return self._result(lambda r: np.frombuffer(bytes.fromhex(r["hex"]), dtype=dt)
                            .astype(DTYPES[dtype]).reshape(shape), len(self.ops) - 1)

    # -- CSRs ----------------------------------------------------------------------------
    def csr_write(self, reg: str, value: int) -> None:
        if reg not in self.csr_map:
            raise KeyError(f"no CSR named {reg!r}")
        self._op({"op": "csr_write", "reg": reg, "value": int(value)})

    def csr_read(self, reg: str) -> Pending:
        if reg not in self.csr_map:
            raise KeyError(f"no CSR named {reg!r}")
        return self._op({"op": "csr_read", "reg": reg}, lambda r: r["value"])

    # -- configuration and runs ------------------------------------------------------------
    def load_config(self, bitstream: bytes, *, addr: int | None = None, defer: bool = False,
                    timeout: int | None = None) -> Pending:
        """DMA `bitstream` from DRAM into the loader. With `defer`, a good
        bitstream is held in the shadow registers until :meth:`switch`.
        Result: {accepted, error, config_cycles, config_read_bytes, ended}."""
        bb = self.beat_bytes
        if len(bitstream) % bb:
            bitstream = bytes(bitstream) + bytes(bb - len(bitstream) % bb)
        if addr is None:
            addr = self.alloc(len(bitstream), align=bb)
        if addr % bb:
            raise ValueError(f"a bitstream address must be {bb}-byte aligned, got {addr:#x}")
        beats = len(bitstream) // bb
        self.write_bytes(addr, bitstream)
        self.csr_write("config_addr", addr)
        self.csr_write("config_len", max(beats, 1))
        self.csr_write("config_mode", int(bool(defer)))
        self.csr_write("load", 1)
        self._op({"op": "wait", "signal": "load_done", "timeout": timeout or 64 * beats + 2000})
        for reg in ("status", "config_cycles", "config_read_bytes"):
            self._op({"op": "csr_read", "reg": reg})
        n = len(self.ops)
        err = STATUS_BITS["error_shift"]

        def report(w, s, c, b):
            s, c, b = s["value"], c["value"], b["value"]
            return {"ended": w["ok"], "accepted": bool(w["ok"]) and (s >> err) & 0xF == 0,
                    "error": (s >> err) & 0xF, "pending": bool(s >> STATUS_BITS["pending"] & 1),
                    "config_cycles": c, "config_read_bytes": b}
        return self._result(report, n - 4, n - 3, n - 2, n - 1)

    def switch(self) -> None:
        """Commit a bitstream loaded with ``defer=True``."""
        self.csr_write("switch", 1)

    def start(self) -> None:
        self.csr_write("start", 1)

    def wait(self, timeout: int = 10_000_000) -> Pending:
        """Wait for ``done``; result {ok, cycles} (cycles seen by the wait)."""
        return self._op({"op": "wait", "signal": "run_done", "timeout": int(timeout)},
                        lambda r: {"ok": r["ok"], "cycles": r["cycles"]})

    def read_counters(self) -> Pending:
        """Every CSR (status, cycle and byte counters, per-unit perf counters)."""
        return self._op({"op": "counters"}, lambda r: r["values"])

    def snapshot(self) -> Pending:
        return self._op({"op": "snapshot"}, lambda r: r["active"])

    def idle(self, cycles: int) -> None:
        self._op({"op": "idle", "cycles": int(cycles)})

    def soft_reset(self) -> None:
        self.csr_write("soft_reset", 1)

    # -- execution -------------------------------------------------------------------------
    def run(self, sim: str = "verilator", *, progress=None, wave=None,
            threads: int = 1) -> HostRunResult:
        """Run the recorded operations on `sim`; `wave` (a .fst or .vcd path)
        also writes the waveform of the whole run there; `threads` > 1 runs a
        multi-threaded Verilator model."""
        from .backends import get_backend
        res = get_backend(sim).run_host(self.params, self.ops, dram_bytes=self.dram_bytes,
                                        progress=progress, wave=wave, threads=threads)
        for p in self._pending:
            p._resolve(res.results)
        return res
