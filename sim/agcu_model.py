"""Bit-accurate Python model of the AGCU (``hw/agcu.py``).

The AGCU walks an affine tile pattern per stream: a chain of
``AGCU_COUNTERS`` counters (innermost first) with a ``count`` and a byte
``stride`` each, plus a ``base`` byte address. Every iteration moves one
vector of ``lanes`` elements, contiguous in DRAM at
``base + sum(c_i * stride_i)`` (modulo 2**32). The element width ``elem``
(:data:`ELEM_BYTES`) sets the element size and the alignment of ``base`` and
the strides:

==== ===== ===== =========================== =======================
elem bytes align read: lane i =              write: stores
==== ===== ===== =========================== =======================
0    4     4     the 32-bit word at addr+4i  each lane's 32 bits
1    2     2     int16 at addr+2i, sign-ext. each lane's low 16 bits
2    1     1     int8 at addr+i, sign-ext.   each lane's low 8 bits
3    1     1     uint8 at addr+i, zero-ext.  each lane's low 8 bits
==== ===== ===== =========================== =======================

so a vector is ``lanes * ELEM_BYTES[elem]`` bytes of DRAM.

This module gives, for a pattern:

* :func:`vector_addresses`: the vector addresses and ``last`` flags, in order;
* :meth:`AGCUModel.read`: the vectors the read stream yields from a byte image;
* :meth:`AGCUModel.write`: the byte image after the write stream stores vectors;
* :meth:`AGCUModel.bursts`: the AXI INCR bursts ``(byte address, beats)`` that
  the coalescer issues, in order (the same rule as the RTL, see below);
* :func:`agcu_config`: the value of ``AGCU.config_layout(params)`` as a dict,
  for ``layout.const(...)``.

Coalescing rule (RTL and model alike). A vector covers beats ``f .. l`` (beat =
``beat_bytes`` aligned bytes; ``l`` from the vector's byte size). If ``f`` equals the previous vector's last beat
``l'``, that beat is *shared* (the read side keeps it, the write side merges
both vectors' bytes into one beat); the vector then adds beats ``l'+1 .. l``.
Added beats join the open burst when they continue it (``f`` is ``l'`` or
``l'+1``) and the burst holds fewer than ``max_vectors`` vectors
(:func:`max_vectors`: enough for a 16-beat burst of the smallest vectors);
otherwise the
open burst is closed first. A burst is closed as soon as it holds 16 beats or
reaches the end of a 4 KiB page, so bursts are greedy, never cross a page, and
one vector's beats may straddle two bursts.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..hw.agcu import (AGCU_COUNTERS, COUNT_BITS, ELEM_BYTES, ELEM_INT8, ELEM_INT16,
                       ELEM_INT32, ELEM_UINT8, MAX_BURST, PAGE_BYTES, max_vectors)

__all__ = ["AGCU_COUNTERS", "COUNT_BITS", "ELEM_BYTES", "ELEM_INT32", "ELEM_INT16",
           "ELEM_INT8", "ELEM_UINT8", "MAX_BURST", "PAGE_BYTES", "max_vectors",
           "Pattern", "vector_addresses", "AGCUModel", "agcu_config"]

#: NumPy dtype of a DRAM element per ``elem``.
_ELEM_DTYPE = ("<i4", "<i2", "i1", "u1")

_MASK32 = 0xFFFF_FFFF


@dataclass(frozen=True)
class Pattern:
    """One stream's affine pattern.

    ``counts``/``strides`` are innermost first and padded to
    ``AGCU_COUNTERS`` with count 1. ``last_on`` (read stream only): 0 never
    marks ``last``; ``k`` in 1..3 marks it on every vector where counter
    ``k-1`` wraps (counters ``0..k-1`` all at their final value), e.g. 1 is
    end of row and 3 is end of stream. ``elem`` is the element width (see the
    module docstring); ``base`` and the strides must be multiples of its
    size. A disabled pattern (``en=False``) or a zero count moves nothing.
    """

    base: int
    counts: tuple = (1,)
    strides: tuple = (0,)
    last_on: int = 0
    en: bool = True
    elem: int = ELEM_INT32

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
        if self.elem not in range(len(ELEM_BYTES)):
            raise ValueError(f"Pattern: elem must be 0..{len(ELEM_BYTES) - 1}, got {self.elem!r}")
        es = ELEM_BYTES[self.elem]
        for s in strides:
            if not -(1 << 31) <= s < 1 << 31:
                raise ValueError(f"Pattern: stride {s} does not fit a signed 32-bit field")
            if s % es:
                raise ValueError(f"Pattern: stride {s} is not a multiple of {es} bytes "
                                 f"(elem {self.elem})")
        if self.base % es or not 0 <= self.base <= _MASK32:
            raise ValueError(f"Pattern: base {self.base:#x} must be a {es}-aligned 32-bit "
                             f"address (elem {self.elem})")
        if not 0 <= self.last_on <= AGCU_COUNTERS:
            raise ValueError(f"Pattern: last_on must be 0..{AGCU_COUNTERS}, got {self.last_on}")
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "strides", strides)

    @property
    def vectors(self) -> int:
        if not self.en:
            return 0
        return int(np.prod(self.counts))

    @property
    def elem_bytes(self) -> int:
        return ELEM_BYTES[self.elem]

    def as_config(self, *, read: bool) -> dict:
        d = {"en": int(self.en), "base": self.base, "count": list(self.counts),
             "stride": list(self.strides), "elem": self.elem}
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
    """The AGCU's data movement and coalescing, for ``lanes`` lanes of 32 bits
    per vector over a bus of ``beat_bytes`` per beat. ``max_vectors`` defaults
    to the RTL's :func:`max_vectors` for these lanes and beat."""

    lanes: int
    beat_bytes: int = 16
    max_burst: int = MAX_BURST
    max_vectors: int | None = None
    page_bytes: int = PAGE_BYTES

    def __post_init__(self):
        if self.max_vectors is None:
            self.max_vectors = max_vectors(self.lanes, self.beat_bytes)

    def vector_bytes(self, pattern: Pattern | None = None) -> int:
        """DRAM bytes of one vector of `pattern` (32-bit elements if None)."""
        return self.lanes * (4 if pattern is None else pattern.elem_bytes)

    # -- data ------------------------------------------------------------------------
    def read(self, pattern: Pattern, mem) -> list[tuple[np.ndarray, bool]]:
        """The read stream: (uint32 lane words, last) per vector, read from the
        little-endian byte image `mem` (bytes, bytearray or uint8 array); each
        element sign- or zero-extended to its 32-bit lane per ``pattern.elem``."""
        image = bytes(mem)
        vb = self.vector_bytes(pattern)
        dtype = _ELEM_DTYPE[pattern.elem]
        out = []
        for addr, last in vector_addresses(pattern):
            raw = image[addr:addr + vb]
            if len(raw) != vb:
                raise ValueError(f"vector at {addr:#x} lies outside the {len(image)}-byte image")
            lanes = np.frombuffer(raw, dtype=dtype).astype(np.int64) & 0xFFFF_FFFF
            out.append((lanes.astype(np.uint32), last))
        return out

    def write(self, pattern: Pattern, mem: bytearray, vectors) -> bytearray:
        """Store `vectors` (each `lanes` uint32 words) through the write
        pattern into `mem` in place, each lane truncated to the element width
        (later vectors win where they overlap); returns `mem`. Extra vectors
        are ignored; missing ones are an error."""
        addrs = vector_addresses(pattern)
        vb = self.vector_bytes(pattern)
        es = pattern.elem_bytes
        if len(vectors) < len(addrs):
            raise ValueError(f"write pattern needs {len(addrs)} vectors, got {len(vectors)}")
        for (addr, _), vec in zip(addrs, vectors):
            words = np.asarray(vec, dtype="<u4").reshape(self.lanes)
            raw = words.view(np.uint8).reshape(self.lanes, 4)[:, :es].tobytes()
            if addr + vb > len(mem):
                raise ValueError(f"vector at {addr:#x} lies outside the {len(mem)}-byte image")
            mem[addr:addr + vb] = raw
        return mem

    # -- bursts ----------------------------------------------------------------------
    def bursts(self, pattern: Pattern) -> list[tuple[int, int]]:
        """The INCR bursts (byte address, beats) issued for `pattern`, in order."""
        bb = self.beat_bytes
        vb = self.vector_bytes(pattern)
        page = self.page_bytes // bb
        bursts = []
        cur = None                        # [first beat, beats, vectors]
        prev_l = None
        for addr, _ in vector_addresses(pattern):
            f = addr // bb
            l = (addr + vb - 1) // bb
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
