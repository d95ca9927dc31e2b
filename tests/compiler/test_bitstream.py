"""Bitstream encode/decode round trip over random configurations, and the
header/CRC contract."""

import random
import struct
import zlib

import pytest
from amaranth.hdl import Shape
from amaranth.lib import data

from tessera.compiler.bitstream import BitstreamError, FabricConfig, decode, encode
from tessera.hw.config import FORMAT_VERSION, MAGIC, BitstreamFormat, LoadError
from tessera.hw.params import PRESETS, preset


def random_value(layout, rng):
    """A random value that fits `layout` (ranges respected)."""
    if isinstance(layout, data.StructLayout):
        return {name: random_value(field.shape, rng) for name, field in layout}
    if isinstance(layout, data.ArrayLayout):
        return [random_value(layout.elem_shape, rng) for _ in range(layout.length)]
    if isinstance(layout, range):
        return rng.randrange(layout.start, layout.stop)
    shape = Shape.cast(layout)
    v = rng.getrandbits(shape.width)
    return v - (1 << shape.width) if shape.signed and v >> (shape.width - 1) else v


@pytest.mark.parametrize("name", ["tiny", "small", "default", "plasticine"])
def test_round_trip_random(name):
    p = preset(name)
    rng = random.Random(name)
    for _ in range(3):
        config = FabricConfig(p)
        for cu in config.topology.config_units:
            if rng.random() < 0.7:
                config.set(cu.name, random_value(cu.layout, rng))
        blob = encode(config)
        assert decode(blob, p) == config
        assert encode(decode(blob, p)) == blob


def test_header_fields():
    p = preset("small")
    blob = encode(FabricConfig(p))
    magic, version, h, length = struct.unpack("<4I", blob[:16])
    assert (magic, version, h) == (MAGIC, FORMAT_VERSION, p.hash32)
    fmt = BitstreamFormat.for_params(p)
    beat = 4 * p.config_beat_words
    assert length == fmt.payload_words
    assert len(blob) == beat * fmt.total_beats == beat * (1 + -(-length // 4) + 1)
    assert struct.unpack("<I", blob[-beat:-beat + 4])[0] == zlib.crc32(blob[:-beat])
    assert blob[-beat + 4:] == bytes(beat - 4)      # CRC beat padding


def test_bitstream_for_other_preset_is_rejected():
    blob = encode(FabricConfig(preset("small")))
    with pytest.raises(BitstreamError) as e:
        decode(blob, preset("default"))
    assert e.value.code == LoadError.BAD_PARAMS_HASH
    assert "hash" in str(e.value)


def test_bad_unit_value_names_the_unit():
    config = FabricConfig(preset("tiny"))
    with pytest.raises(ValueError, match="sw_0_0"):
        config.set("sw_0_0", {"vec": [{"sel": 999}]})
    with pytest.raises(ValueError, match="no config unit named 'sw_9_9'"):
        config.set("sw_9_9", {})


def test_params_hashes_differ():
    hashes = {p.hash32 for p in PRESETS.values()}
    assert len(hashes) == len(PRESETS)
