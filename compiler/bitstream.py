"""Bitstream encoder and decoder.

The format is defined in :mod:`tessera.hw.config`; the per-unit fields come
straight from each unit's ``data.StructLayout`` (packed with
``layout.const(...).as_bits()``, unpacked with ``layout.from_bits(...)``), so
there is no second hand-written table. :func:`decode` performs exactly the
checks of the RTL loader, in the same order, and raises :class:`BitstreamError`
carrying the same :class:`~tessera.hw.config.LoadError` code: it is the
loader's golden model.
"""

from __future__ import annotations

import struct
import zlib

from amaranth.hdl import Shape
from amaranth.lib import data

from ..hw.config import CONFIG_WORD, FORMAT_VERSION, HEADER_WORDS, MAGIC, LoadError
from ..hw.params import FabricParams
from ..hw.topology import Topology

__all__ = ["FabricConfig", "BitstreamError", "encode", "decode", "layout_to_python",
           "check_value", "bytes_to_words"]


class BitstreamError(ValueError):
    def __init__(self, code: LoadError, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code


def layout_to_python(layout, value):
    """Turn a ``data.Const`` (or int bits) of `layout` into plain dicts/lists/ints."""
    if not isinstance(layout, (data.StructLayout, data.ArrayLayout)):
        return int(value)
    if isinstance(value, int):
        value = layout.from_bits(value)
    if isinstance(layout, data.StructLayout):
        return {name: layout_to_python(field.shape, value[name]) for name, field in layout}
    if isinstance(layout, data.ArrayLayout):
        return [layout_to_python(layout.elem_shape, value[i]) for i in range(layout.length)]


def check_value(layout, value, where: str):
    """Raise ValueError naming the field when `value` does not fit `layout`
    (``layout.const`` would silently truncate it)."""
    if isinstance(layout, data.StructLayout):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a dict of {list(dict(layout).keys())}, got {value!r}")
        for key, sub in value.items():
            try:
                field = layout[key]
            except KeyError:
                raise ValueError(f"{where}: no field {key!r}; fields are "
                                 f"{[name for name, _ in layout]}") from None
            check_value(field.shape, sub, f"{where}.{key}")
    elif isinstance(layout, data.ArrayLayout):
        if not isinstance(value, (list, tuple)) or len(value) > layout.length:
            raise ValueError(f"{where}: expected a list of at most {layout.length} items")
        for i, sub in enumerate(value):
            check_value(layout.elem_shape, sub, f"{where}[{i}]")
    else:
        shape = Shape.cast(layout)
        lo = -(1 << (shape.width - 1)) if shape.signed else 0
        hi = (1 << (shape.width - 1)) - 1 if shape.signed else (1 << shape.width) - 1
        if isinstance(layout, range):
            lo, hi = layout.start, layout.stop - 1
        if not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"{where}: {value!r} is outside {lo}..{hi}")


class FabricConfig:
    """The configuration of every config unit of a fabric, as Python values.

    ``units[name]`` is a dict (or nested dicts/lists) accepted by the unit's
    layout's ``const()``; a unit not mentioned is all zeros (disabled).
    """

    def __init__(self, params: FabricParams, units: dict | None = None):
        self.params = params
        self.topology = Topology(params)
        self.units = {}
        for name, value in (units or {}).items():
            self.set(name, value)

    def set(self, name: str, value):
        try:
            cu = self.topology.config_unit(name)
        except KeyError:
            raise ValueError(f"no config unit named {name!r} in preset "
                             f"{self.params.name!r}") from None
        # Validate now, so that a bad value names its unit and field.
        check_value(cu.layout, value, name)
        self.units[name] = value

    def unit_bits(self, name: str) -> int:
        cu = self.topology.config_unit(name)
        return cu.layout.const(self.units.get(name, {})).as_bits()

    def normalized(self) -> dict:
        """Every unit's configuration, zeros included, as plain Python values."""
        return {cu.name: layout_to_python(cu.layout, self.unit_bits(cu.name))
                for cu in self.topology.config_units}

    def __eq__(self, other):
        return (isinstance(other, FabricConfig) and self.params == other.params
                and self.normalized() == other.normalized())

    def payload(self) -> list[int]:
        words = []
        mask = (1 << CONFIG_WORD) - 1
        for cu in self.topology.config_units:
            bits = self.unit_bits(cu.name)
            words.extend((bits >> (CONFIG_WORD * k)) & mask for k in range(cu.words))
        return words


def _pack(words) -> bytes:
    return struct.pack(f"<{len(words)}I", *words)


def encode(config: FabricConfig) -> bytes:
    payload = config.payload()
    header = [MAGIC, FORMAT_VERSION, config.params.hash32, len(payload)]
    body = _pack(header + payload)
    return body + struct.pack("<I", zlib.crc32(body))


def bytes_to_words(blob: bytes) -> list[int]:
    """Little-endian 32-bit words of `blob`, zero-padding a partial last word;
    an empty blob is one zero word. That is how the host streams an arbitrary
    file into the loader, which needs at least one word to see ``last``."""
    if not blob:
        blob = bytes(4)
    if len(blob) % 4:
        blob = blob + bytes(4 - len(blob) % 4)
    return list(struct.unpack(f"<{len(blob) // 4}I", blob))


def decode(blob: bytes, params: FabricParams) -> FabricConfig:
    """Check and decode a bitstream; raise BitstreamError with the code the
    RTL loader would report."""
    words = bytes_to_words(blob)
    topo = Topology(params)
    total = HEADER_WORDS + topo.payload_words
    expect = [(MAGIC, LoadError.BAD_MAGIC, "magic"),
              (FORMAT_VERSION, LoadError.BAD_VERSION, "format version"),
              (params.hash32, LoadError.BAD_PARAMS_HASH, "FabricParams hash"),
              (topo.payload_words, LoadError.BAD_LENGTH, "payload length")]
    for i, word in enumerate(words[:total + 1]):
        last = i == len(words) - 1
        if i < HEADER_WORDS:
            want, code, what = expect[i]
            if word != want:
                raise BitstreamError(code, f"{what} is {word:#x}, expected {want:#x} "
                                           f"(preset {params.name!r})")
        elif i == total:
            crc = zlib.crc32(_pack(words[:total]))
            if word != crc:
                raise BitstreamError(LoadError.BAD_CRC, f"CRC is {word:#010x}, computed {crc:#010x}")
        if last and i < total:
            raise BitstreamError(LoadError.TRUNCATED, f"bitstream ends after {len(words)} words; "
                                                      f"{total + 1} expected")
    if len(words) > total + 1:
        raise BitstreamError(LoadError.OVERRUN, f"{len(words) - total - 1} words follow the CRC")
    config = FabricConfig(params)
    payload = words[HEADER_WORDS:total]
    for cu in topo.config_units:
        bits = 0
        for k in range(cu.words):
            bits |= payload[cu.base + k] << (CONFIG_WORD * k)
        value = layout_to_python(cu.layout, bits)
        config.units[cu.name] = value
    return config
