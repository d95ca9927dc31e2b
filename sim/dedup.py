"""One Verilog module per distinct unit: merge the identical modules that
Amaranth writes once per instance.

Amaranth names every module after its place in the hierarchy
(``top.core.fabric.pcu_0_0``, ``top.core.fabric.pcu_1_1``, ...), so the eight
identical PCUs of the ``default`` fabric are eight modules, and Verilator
generates (and the CPU fetches) eight copies of the per-cycle code. This pass
rewrites the Verilog that ``amaranth.back.verilog`` produced so that each
group of identical modules is one module, instantiated where each copy was:
the per-cycle code shrinks by the number of copies and the hierarchy (the
instance names the testbench walks) is unchanged.

Two modules are identical when their bodies are the same text after
(a) renaming, consistently, every identifier that carries a number from
Yosys' or Amaranth's global counters (``\\port$29330$0``, ``\\$auto$...$43``:
they differ between copies but name nothing outside the module), (b)
replacing each instantiated module by its group and each named connection's
port by that child's renamed port. Groups are formed bottom-up, so two PCUs
are one module once their FIFOs, hops and SFU lanes are. The kept module of
a group is its first in the file, with its original names; an instance of
another member of the group has its connection names translated to the kept
module's ports (each port maps to the port with the same renamed name).

The pass only reads what ``write_verilog`` emits (one module statement per
line, instantiations as ``type name (`` ... ``);`` with one ``.port(expr)``
per line); anything else raises :class:`DedupError`, and a module it cannot
parse is simply not merged. Simulation only: synthesis flattens anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["dedup_verilog", "DedupError"]

_MODULE = re.compile(r"^module\s+(\\\S+|[A-Za-z_][\w$]*)\s*\(")
_TOKEN = re.compile(r"\\\S+|[A-Za-z_][\w$]*")
_COUNTED = re.compile(r"\$\d")
_CONN = re.compile(r"^(\s*)\.(\\\S+ |[A-Za-z_][\w$]*)(\s*\(.*)$")
_INST = re.compile(r"^(\s+)(\\\S+|[A-Za-z_][\w$]*)(\s+)(\\\S+ |[A-Za-z_][\w$]*)(\s*\($)")


class DedupError(ValueError):
    """The Verilog is not laid out as Yosys' write_verilog lays it out."""


@dataclass
class _Module:
    name: str
    pre: list            # attribute lines before `module`
    header: str          # the `module ...(...);` line(s)
    body: list           # the lines after it, `endmodule` included
    canon: str = ""      # canonical body (see the module docstring)
    ports: dict = field(default_factory=dict)   # port name -> canonical name
    group: int = -1


def _split(text: str):
    """Preamble text and the modules, in file order."""
    lines = text.split("\n")
    preamble, modules, pending, cur = [], [], [], None
    for line in lines:
        if cur is None:
            m = _MODULE.match(line)
            if m:
                cur = _Module(name=m.group(1).rstrip(), pre=pending, header=line, body=[])
                pending = []
            elif line.startswith("(*"):
                pending.append(line)
            else:
                if pending:
                    raise DedupError(f"attributes not followed by a module: {pending[0]!r}")
                preamble.append(line)
        elif not cur.header.rstrip().endswith(");"):
            cur.header += "\n" + line          # a long port list wraps
        else:
            cur.body.append(line)
            if line.startswith("endmodule"):
                modules.append(cur)
                cur = None
    if cur is not None:
        raise DedupError(f"module {cur.name} has no endmodule")
    return preamble + pending, modules


def _port_names(header: str) -> list:
    inside = header[header.index("(") + 1:header.rindex(")")].replace("\n", " ")
    return [p.strip() for p in inside.split(",") if p.strip()]


def _instances(body: list, known: dict):
    """Yield (start line, end line, child module) for each instantiation of a
    module of this file."""
    i = 0
    while i < len(body):
        m = _INST.match(body[i])
        if m and m.group(2) in known:
            j = i + 1
            while j < len(body) and not body[j].strip().startswith(");"):
                j += 1
            if j == len(body):
                raise DedupError(f"unterminated instance of {m.group(2)}")
            yield i, j, known[m.group(2)]
            i = j + 1
        else:
            i += 1


def _canonicalize(mod: _Module, known: dict):
    lines = list(mod.body)
    for i, j, child in _instances(mod.body, known):
        m = _INST.match(lines[i])
        lines[i] = f"{m.group(1)}@G{child.group}{m.group(3)}{m.group(4)}{m.group(5)}"
        for k in range(i + 1, j):
            c = _CONN.match(lines[k])
            if c is None:
                raise DedupError(f"{mod.name}: cannot read connection {lines[k]!r}")
            port = c.group(2).rstrip()
            if port not in child.ports:
                raise DedupError(f"{mod.name}: {child.name} has no port {port}")
            lines[k] = f"{c.group(1)}.@P{child.ports[port]}{c.group(3)}"
    renames = {}

    def rename(t):
        tok = t.group(0)
        if not _COUNTED.search(tok):
            return tok
        key = tok.rstrip()
        if key not in renames:
            renames[key] = f"@N{len(renames)}"
        return renames[key] + tok[len(key):]

    mod.canon = "\n".join(_TOKEN.sub(rename, line) for line in lines)
    mod.ports = {p: renames.get(p, p) for p in _port_names(mod.header)}


def dedup_verilog(text: str) -> tuple[str, dict]:
    """Return (Verilog with identical modules merged, figures)."""
    preamble, modules = _split(text)
    known = {m.name: m for m in modules}
    if len(known) != len(modules):
        raise DedupError("two modules share a name")
    children = {m.name: [c.name for _, _, c in _instances(m.body, known)] for m in modules}

    order, seen = [], set()

    def visit(name, stack=()):
        if name in seen:
            return
        if name in stack:
            raise DedupError(f"module {name} instantiates itself")
        for c in children[name]:
            visit(c, stack + (name,))
        seen.add(name)
        order.append(name)

    for m in modules:
        visit(m.name)

    groups = {}          # canonical text -> group index
    reps = []            # group index -> kept module
    for name in order:
        mod = known[name]
        _canonicalize(mod, known)
        g = groups.get(mod.canon)
        if g is None:
            g = groups[mod.canon] = len(reps)
            reps.append(mod)
        mod.group = g

    out = list(preamble)
    for mod in modules:
        if reps[mod.group] is not mod:
            continue
        body = list(mod.body)
        for i, j, child in _instances(mod.body, known):
            rep = reps[child.group]
            back = {canon: port for port, canon in rep.ports.items()}
            m = _INST.match(body[i])
            body[i] = f"{m.group(1)}{rep.name}{m.group(3)}{m.group(4)}{m.group(5)}"
            for k in range(i + 1, j):
                c = _CONN.match(body[k])
                port = back[child.ports[c.group(2).rstrip()]]
                port = port + " " if port.startswith("\\") else port
                body[k] = f"{c.group(1)}.{port}{c.group(3)}"
        out.extend(mod.pre)
        out.append(mod.header)
        out.extend(body)
    copies = {}
    for mod in modules:
        rep = reps[mod.group]
        copies[rep.name] = copies.get(rep.name, 0) + 1
    figures = {"modules_before": len(modules), "modules_after": len(reps),
               # kept module -> (copies merged into it, lines)
               "merged": {name.lstrip("\\"): (n, len(known[name].body))
                          for name, n in copies.items() if n > 1}}
    return "\n".join(out), figures
