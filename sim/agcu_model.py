"""Bit-accurate Python model of the AGCU (``hw/agcu.py``).

The AGCU walks an affine tile pattern per stream: a chain of
``AGCU_COUNTERS`` counters (innermost first) with a ``count`` and a byte
``stride`` each, plus a ``base`` byte address. Every iteration moves one
vector of ``lanes`` 32-bit words, contiguous in DRAM at
``base + sum(c_i * stride_i)`` (modulo 2**32; the address must be 4-aligned).

This module gives, for a pattern:

* :func:`vector_addresses`: the vector addresses and ``last`` flags, in order;
* :meth:`AGCUModel.read`: the vectors the read stream yields from a byte image;
* :meth:`AGCUModel.write`: the byte image after the write stream stores vectors;
* :meth:`AGCUModel.bursts`: the AXI INCR bursts ``(byte address, beats)`` that
  the coalescer issues, in order (the same rule as the RTL, see below);
* :func:`agcu_config`: the value of ``AGCU.config_layout(params)`` as a dict,
  for ``layout.const(...)``.

Coalescing rule (RTL and model alike). A vector covers beats ``f .. l`` (beat =
``beat_bytes`` aligned bytes). If ``f`` equals the previous vector's last beat
``l'``, that beat is *shared* (the read side keeps it, the write side merges
both vectors' bytes into one beat); the vector then adds beats ``l'+1 .. l``.
Added beats join the open burst when they continue it (``f`` is ``l'`` or
``l'+1``) and the burst holds fewer than ``max_vectors`` vectors; otherwise the
open burst is closed first. A burst is closed as soon as it holds 16 beats or
reaches the end of a 4 KiB page, so bursts are greedy, never cross a page, and
one vector's beats may straddle two bursts.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ..hw.agcu import AGCU_COUNTERS, COUNT_BITS, MAX_BURST, MAX_VECTORS, PAGE_BYTES

__all__ = ["AGCU_COUNTERS", "COUNT_BITS", "MAX_BURST", "MAX_VECTORS", "PAGE_BYTES",
           "Pattern", "vector_addresses", "AGCUModel", "agcu_config"]

_MASK32 = 0xFFFF_FFFF


@dataclass(frozen=True)
class Pattern:
    """One stream's affine pattern.

    ``counts``/``strides`` are innermost first and padded to
    ``AGCU_COUNTERS`` with count 1. ``last_on`` (read stream only): 0 never
    marks ``last``; ``k`` in 1..3 marks it on every vector where counter
    ``k-1`` wraps (counters ``0..k-1`` all at their final value), e.g. 1 is
    end of row and 3 is end of stream. A disabled pattern (``en=False``) or a
    zero count moves nothing.
    """

    base: int
    counts: tuple = (1,)
    strides: tuple = (0,)
    last_on: int = 0
    en: bool = True

    def __post_init__(self):
        counts = tuple(int(c) for c in self.counts)
        strides = tuple(int(s) for s in self.strides)
        if len(counts) != len(strides):
            raise ValueError(f"Pattern: {len(counts)} counts but {len(strides)} strides")
        if len(counts) > AGCU_COUNTERS:
            raise ValueError(f"Pattern: at most {AGCU_COUNTERS} counters, got {len(counts)}")
        pad = AGCU_COUNTERS - len(counts)
        counts += (1,) * pad
        strides += (0,) * pad
        for c in counts:
            if not 0 <= c < 1 << COUNT_BITS:
                raise ValueError(f"Pattern: count {c} outside 0..{(1 << COUNT_BITS) - 1}")
        for s in strides:
            if not -(1 << 31) <= s < 1 << 31:
                raise ValueError(f"Pattern: stride {s} does not fit a signed 32-bit field")
            if s % 4:
                raise ValueError(f"Pattern: stride {s} is not a multiple of 4 bytes")
        if self.base % 4 or not 0 <= self.base <= _MASK32:
            raise ValueError(f"Pattern: base {self.base:#x} must be a 4-aligned 32-bit address")
        if not 0 <= self.last_on <= AGCU_COUNTERS:
            raise ValueError(f"Pattern: last_on must be 0..{AGCU_COUNTERS}, got {self.last_on}")
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "strides", strides)

    @property
    def vectors(self) -> int:
        if not self.en:
            return 0
        return int(np.prod(self.counts))

    def as_config(self, *, read: bool) -> dict:
        d = {"en": int(self.en), "base": self.base, "count": list(self.counts),
             "stride": list(self.strides)}
        if read:
            d["last_on"] = self.last_on
        return d


def vector_addresses(pattern: Pattern) -> list[tuple[int, bool]]:
    """(byte address, last) of every vector, in stream order."""
    if pattern.vectors == 0:
        return []
    out = []
    # the outermost counter varies slowest
    for idx in itertools.product(*(range(c) for c in reversed(pattern.counts))):
        idx = idx[::-1]
        addr = (pattern.base + sum(i * s for i, s in zip(idx, pattern.strides))) & _MASK32
        at_max = [i == c - 1 for i, c in zip(idx, pattern.counts)]
        last = pattern.last_on > 0 and all(at_max[:pattern.last_on])
        out.append((addr, last))
    return out


@dataclass
class AGCUModel:
    """The AGCU's data movement and coalescing, for ``lanes`` 32-bit words per
    vector over a bus of ``beat_bytes`` per beat."""

    lanes: int
    beat_bytes: int = 16
    max_burst: int = MAX_BURST
    max_vectors: int = MAX_VECTORS
    page_bytes: int = PAGE_BYTES
    _vb: int = field(init=False)

    def __post_init__(self):
        self._vb = 4 * self.lanes

    @property
    def vector_bytes(self) -> int:
        return self._vb

    # -- data ------------------------------------------------------------------------
    def read(self, pattern: Pattern, mem) -> list[tuple[np.ndarray, bool]]:
        """The read stream: (uint32 lane words, last) per vector, read from the
        little-endian byte image `mem` (bytes, bytearray or uint8 array)."""
        image = bytes(mem)
        out = []
        for addr, last in vector_addresses(pattern):
            raw = image[addr:addr + self._vb]
            if len(raw) != self._vb:
                raise ValueError(f"vector at {addr:#x} lies outside the {len(image)}-byte image")
            out.append((np.frombuffer(raw, dtype="<u4").copy(), last))
        return out

    def write(self, pattern: Pattern, mem: bytearray, vectors) -> bytearray:
        """Store `vectors` (each `lanes` uint32 words) through the write
        pattern into `mem` in place (later vectors win where they overlap);
        returns `mem`. Extra vectors are ignored; missing ones are an error."""
        addrs = vector_addresses(pattern)
        if len(vectors) < len(addrs):
            raise ValueError(f"write pattern needs {len(addrs)} vectors, got {len(vectors)}")
        for (addr, _), vec in zip(addrs, vectors):
            raw = np.asarray(vec, dtype="<u4").tobytes()
            if addr + self._vb > len(mem):
                raise ValueError(f"vector at {addr:#x} lies outside the {len(mem)}-byte image")
            mem[addr:addr + self._vb] = raw
        return mem

    # -- bursts ----------------------------------------------------------------------
    def bursts(self, pattern: Pattern) -> list[tuple[int, int]]:
        """The INCR bursts (byte address, beats) issued for `pattern`, in order."""
        bb = self.beat_bytes
        page = self.page_bytes // bb
        bursts = []
        cur = None                        # [first beat, beats, vectors]
        prev_l = None
        for addr, _ in vector_addresses(pattern):
            f = addr // bb
            l = (addr + self._vb - 1) // bb
            share = prev_l is not None and f == prev_l
            contig = prev_l is not None and f == prev_l + 1
            if cur is not None and (not (share or contig) or cur[2] == self.max_vectors):
                bursts.append(cur)
                cur = None
            if cur is not None:
                cur[2] += 1
            for b in range(prev_l + 1 if share else f, l + 1):
                if cur is None:
                    cur = [b, 0, 1]
                cur[1] += 1
                if cur[1] == self.max_burst or (b + 1) % page == 0:
                    bursts.append(cur)
                    cur = None
            prev_l = l
        if cur is not None:
            bursts.append(cur)
        return [((b * bb) & _MASK32, n) for b, n, _ in bursts]

    def beats(self, pattern: Pattern) -> int:
        """AXI data beats the stream moves (its bus traffic is ``beats * beat_bytes``)."""
        return sum(n for _, n in self.bursts(pattern))


def agcu_config(read: Pattern | None = None, write: Pattern | None = None) -> dict:
    """The value of ``AGCU.config_layout(params)``: ``rd`` and ``wr`` patterns
    (a missing one is disabled)."""
    off = Pattern(base=0, en=False)
    return {"rd": (read or off).as_config(read=True),
            "wr": (write or off).as_config(read=False)}
