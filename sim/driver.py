"""The testbench script: what a host does to a SimTop, written once and run
by every simulator backend.

A script is a list of operations (plain JSON-able dicts):

``{"op": "load", "beats": [...]}``
    preload the boot memory through the backdoor, pulse ``load_start`` and
    wait for the loader to end the bitstream. Result: accepted, error,
    config_cycles.
``{"op": "stream", "src": i, "dst": j, "words": n, "seed": s,
   "gen_stall": a, "chk_stall": b, "timeout": cycles}``
    stream n generated vector words into edge input i and check them at edge
    output j. Result: sent, received, mismatches, first, last, run_cycles,
    timed_out.
``{"op": "snapshot"}``
    read back the active configuration of every config unit (through
    simulator visibility, not a bus). Result: active = {unit: bits}.

Each backend supplies the primitives (:class:`Primitives`); waiting for a
done signal is one simulator-side wait, not a Python loop per cycle, on the
compiled backends.
"""

from __future__ import annotations

__all__ = ["Primitives", "run_script", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 1_000_000


class Primitives:
    """What a backend must provide to run a script."""

    async def write_boot(self, beats: list) -> None: ...
    def set(self, name: str, value: int) -> None: ...
    def get(self, name: str) -> int: ...
    async def tick(self, n: int = 1) -> None: ...
    async def wait_high(self, name: str, timeout: int) -> bool:
        """Wait until `name` is 1 at a clock edge; False on timeout (cycles)."""
    def snapshot(self) -> dict:
        """{config unit name: active configuration bits}."""


async def _pulse(prims, name):
    prims.set(name, 1)
    await prims.tick()
    prims.set(name, 0)


async def run_script(prims: Primitives, script: list) -> list:
    results = []
    for op in script:
        kind = op["op"]
        if kind == "load":
            beats = list(op["beats"]) or [0]
            await prims.write_boot(beats)
            prims.set("boot_len", len(beats))
            await _pulse(prims, "load_start")
            ok = await prims.wait_high("load_done", op.get("timeout", 16 * len(beats) + 1000))
            error = prims.get("load_error")
            results.append({
                "op": "load", "ended": ok, "accepted": bool(ok and error == 0),
                "error": error, "config_cycles": prims.get("load_cycles"),
                "commits": prims.get("commits"),
            })
        elif kind == "stream":
            for name, key, default in (("run_src", "src", 0), ("run_dst", "dst", 0),
                                       ("run_words", "words", 0), ("run_seed", "seed", 0),
                                       ("gen_stall", "gen_stall", 0), ("chk_stall", "chk_stall", 0)):
                prims.set(name, int(op.get(key, default)))
            await _pulse(prims, "run_start")
            ok = await prims.wait_high("run_done", op.get("timeout", DEFAULT_TIMEOUT))
            results.append({
                "op": "stream", "timed_out": not ok,
                "sent": prims.get("run_sent"), "received": prims.get("run_received"),
                "mismatches": prims.get("run_mismatches"), "first": prims.get("run_first"),
                "last": prims.get("run_last"), "run_cycles": prims.get("run_cycles"),
            })
        elif kind == "snapshot":
            # The active configuration of every config unit, as integers.
            results.append({"op": "snapshot", "active": prims.snapshot()})
        elif kind == "idle":
            await prims.tick(int(op.get("cycles", 1)))
            results.append({"op": "idle"})
        else:
            raise ValueError(f"unknown script operation {kind!r}")
    return results
