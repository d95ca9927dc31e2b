"""Errors a user of the compiler can cause.

Every one is a :class:`CompileError` (a ``ValueError``), and its message names
the cause: the node or unit, the shapes or dtypes, the resource counts. The
CLI prints ``str(error)`` as one line; nothing from deep inside the compiler
should reach the user as a traceback.
"""

from __future__ import annotations

__all__ = ["CompileError", "ShapeError", "DTypeError", "UnsupportedOp", "NetlistError",
           "DoesNotFit", "Unroutable"]


class CompileError(ValueError):
    """Base of every user-facing compiler error."""


class ShapeError(CompileError):
    """Operand shapes do not agree (matmul inner dimensions, broadcasting, axes)."""


class DTypeError(CompileError):
    """An operand's dtype is not one the operation (or the hardware) takes."""


class UnsupportedOp(CompileError):
    """An operation the IR or the fabric does not provide."""


class NetlistError(CompileError):
    """A netlist that cannot mean anything: a pin that does not exist, an
    output driving two nets, a sink fed by two nets, a bad pin constraint."""


class DoesNotFit(CompileError):
    """More units of a kind than the fabric has slots for.

    ``asked`` and ``available`` map the unit kind ('pcu', 'pmu', 'agcu') to
    counts."""

    def __init__(self, message: str, *, asked: dict | None = None,
                 available: dict | None = None):
        super().__init__(message)
        self.asked = dict(asked or {})
        self.available = dict(available or {})


class Unroutable(CompileError):
    """The router could not give every net its own wires.

    ``nets`` names the nets still sharing a resource, ``overused`` the
    resources (network, tile, switch output) and how many nets want each."""

    def __init__(self, message: str, *, nets=(), overused=()):
        super().__init__(message)
        self.nets = list(nets)
        self.overused = list(overused)
