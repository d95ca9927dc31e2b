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

from ..hw.config import CONFIG_WORD, FORMAT_VERSION, MAGIC, BitstreamFormat, LoadError
from ..hw.params import FabricParams
from ..hw.topology import Topology

__all__ = ["FabricConfig", "BitstreamError", "encode", "decode", "layout_to_python",
           "check_value", "bytes_to_words", "bytes_to_beats"]


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

    def copy(self) -> "FabricConfig":
        """A copy whose units can be set without changing this one."""
        new = FabricConfig(self.params)
        new.units = dict(self.units)
        return new

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


def _pad(words: list, beat_words: int) -> list:
    return words + [0] * (-len(words) % beat_words)


def encode(config: FabricConfig) -> bytes:
    fmt = BitstreamFormat.for_params(config.params)
    B = fmt.beat_words
    payload = config.payload()
    header = [MAGIC, FORMAT_VERSION, config.params.hash32, len(payload)]
    body = _pack(_pad(header, B) + _pad(payload, B))
    return body + _pack(_pad([zlib.crc32(body)], B))


def bytes_to_words(blob: bytes, beat_words: int = 1) -> list[int]:
    """Little-endian 32-bit words of `blob`, zero-padded to whole beats of
    `beat_words` words; an empty blob is one zero beat. That is how the host
    streams an arbitrary file into the loader, which needs at least one beat
    to see ``last``."""
    if not blob:
        blob = bytes(4)
    blob = blob + bytes(-len(blob) % (4 * beat_words))
    return list(struct.unpack(f"<{len(blob) // 4}I", blob))


def bytes_to_beats(blob: bytes, beat_words: int) -> list[int]:
    """The beats (as integers, word 0 in the low bits) the host streams."""
    words = bytes_to_words(blob, beat_words)
    return [sum(w << (CONFIG_WORD * k) for k, w in enumerate(words[i:i + beat_words]))
            for i in range(0, len(words), beat_words)]


def decode(blob: bytes, params: FabricParams) -> FabricConfig:
    """Check and decode a bitstream; raise BitstreamError with the code the
    RTL loader would report (the loader's golden model)."""
    fmt = BitstreamFormat.for_params(params)
    B = fmt.beat_words
    words = bytes_to_words(blob, B)
    beats = [words[i:i + B] for i in range(0, len(words), B)]
    expect = [(MAGIC, LoadError.BAD_MAGIC, "magic"),
              (FORMAT_VERSION, LoadError.BAD_VERSION, "format version"),
              (params.hash32, LoadError.BAD_PARAMS_HASH, "FabricParams hash"),
              (fmt.payload_words, LoadError.BAD_LENGTH, "payload length")]
    for b, beat in enumerate(beats[:fmt.total_beats + 1]):
        last = b == len(beats) - 1
        if b < fmt.header_beats:
            for w, (want, code, what) in enumerate(expect):
                if w // B == b and beat[w % B] != want:
                    raise BitstreamError(code, f"{what} is {beat[w % B]:#x}, expected {want:#x} "
                                               f"(preset {params.name!r})")
        elif b == fmt.crc_beat:
            crc = zlib.crc32(_pack(words[:fmt.crc_beat * B]))
            if beat[0] != crc:
                raise BitstreamError(LoadError.BAD_CRC, f"CRC is {beat[0]:#010x}, "
                                                        f"computed {crc:#010x}")
        elif b == fmt.total_beats:
            raise BitstreamError(LoadError.OVERRUN, f"{len(beats) - fmt.total_beats} beats "
                                                    f"follow the CRC beat")
        if last and b < fmt.crc_beat:
            raise BitstreamError(LoadError.TRUNCATED, f"bitstream ends after {len(beats)} beats "
                                                      f"of {B} words; {fmt.total_beats} expected")
    config = FabricConfig(params)
    payload = words[fmt.header_beats * B:fmt.header_beats * B + fmt.payload_words]
    for cu in config.topology.config_units:
        bits = 0
        for k in range(cu.words):
            bits |= payload[cu.base + k] << (CONFIG_WORD * k)
        config.units[cu.name] = layout_to_python(cu.layout, bits)
    return config
