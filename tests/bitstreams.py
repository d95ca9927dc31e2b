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


def _recrc(words, B):
    """Fix the CRC (word 0 of the last beat) so that only the intended fault remains."""
    body = _blob(words[:-B])
    return _blob(words[:-B] + [zlib.crc32(body)] + words[len(words) - B + 1:])


def corruptions(blob: bytes, beat_words: int) -> dict:
    """{LoadError: corrupted copy of `blob`} covering every error code."""
    w = _words(blob)
    B = beat_words
    out = {}
    bad = list(w); bad[0] ^= 0x1
    out[LoadError.BAD_MAGIC] = _recrc(bad, B)
    bad = list(w); bad[1] += 1
    out[LoadError.BAD_VERSION] = _recrc(bad, B)
    bad = list(w); bad[2] ^= 0x8000_0000
    out[LoadError.BAD_PARAMS_HASH] = _recrc(bad, B)
    bad = list(w); bad[3] += 1
    out[LoadError.BAD_LENGTH] = _recrc(bad, B)
    bad = list(w); bad[len(w) // 2] ^= 0x0001_0000      # one payload bit
    out[LoadError.BAD_CRC] = _blob(bad)
    out[LoadError.TRUNCATED] = _blob(w[:-2 * B])        # lose the CRC beat and one more
    out[LoadError.OVERRUN] = _blob(w + [0xDEADBEEF] * B)
    return out


def loader_session_script(params):
    """A script that loads route A, then every corruption of A (with a
    snapshot of the active configuration after each), then route B.
    Returns (config A, config B, error codes in order, script)."""
    from tessera.compiler.bitstream import bytes_to_beats, encode
    from tessera.compiler.route import compile_route

    a = compile_route(params, 3).config
    b = compile_route(params, 4).config
    B = params.config_beat_words
    bad = corruptions(encode(a), B)
    script = [{"op": "snapshot"}, {"op": "load", "beats": bytes_to_beats(encode(a), B)},
              {"op": "snapshot"}]
    for blob in bad.values():
        script += [{"op": "load", "beats": bytes_to_beats(blob, B)}, {"op": "snapshot"}]
    script += [{"op": "load", "beats": bytes_to_beats(encode(b), B)}, {"op": "snapshot"}]
    return a, b, list(bad), script


def check_loader_session(a, b, codes, results):
    """The assertions shared by every backend's loader test."""
    def active(config):
        return {cu.name: config.unit_bits(cu.name) for cu in config.topology.config_units}

    assert active(a) != active(b)
    assert set(results[0]["active"].values()) == {0}, "fabric not unconfigured after reset"
    assert results[1]["accepted"] and results[1]["error"] == 0
    assert results[2]["active"] == active(a)
    assert set(codes) == set(LoadError) - {LoadError.OK}
    for i, code in enumerate(codes):
        load, snap = results[3 + 2 * i], results[4 + 2 * i]
        assert load["ended"], f"{code.name}: the loader never ended the bitstream"
        assert not load["accepted"], f"{code.name}: accepted"
        assert LoadError(load["error"]) == code
        assert snap["active"] == active(a), f"{code.name} changed the active configuration"
    load, snap = results[3 + 2 * len(codes)], results[4 + 2 * len(codes)]
    assert load["accepted"]
    assert snap["active"] == active(b)
