"""Tessera: an open reconfigurable dataflow accelerator (see README.md)."""

from .api import gemm

__all__ = ["gemm"]
