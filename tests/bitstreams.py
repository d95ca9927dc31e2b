"""Corrupted bitstreams, one per loader error code, for the loader tests on
every backend."""

from __future__ import annotations

import struct
import zlib

from tessera.hw.config import LoadError


def _words(blob):
    return list(struct.unpack(f"<{len(blob) // 4}I", blob))


def _blob(words):
    return struct.pack(f"<{len(words)}I", *words)


def _recrc(words):
    """Fix the CRC so that only the intended fault remains."""
    body = _blob(words[:-1])
    return _blob(words[:-1] + [zlib.crc32(body)])


def corruptions(blob: bytes) -> dict:
    """{LoadError: corrupted copy of `blob`} covering every error code."""
    w = _words(blob)
    out = {}
    bad = list(w); bad[0] ^= 0x1
    out[LoadError.BAD_MAGIC] = _recrc(bad)
    bad = list(w); bad[1] += 1
    out[LoadError.BAD_VERSION] = _recrc(bad)
    bad = list(w); bad[2] ^= 0x8000_0000
    out[LoadError.BAD_PARAMS_HASH] = _recrc(bad)
    bad = list(w); bad[3] += 1
    out[LoadError.BAD_LENGTH] = _recrc(bad)
    bad = list(w); bad[4 + (len(w) - 5) // 2] ^= 0x0001_0000      # one payload bit
    out[LoadError.BAD_CRC] = _blob(bad)
    out[LoadError.TRUNCATED] = _blob(w[:-3])
    out[LoadError.OVERRUN] = _blob(w + [0xDEADBEEF])
    return out
