"""The config loader on Amaranth's simulator: a good bitstream is committed;
every corrupted one is rejected with its own error code and leaves the
active configuration exactly as it was; the Python decoder (the loader's
golden model) reports the same codes."""

import pytest

from tessera.compiler.bitstream import BitstreamError, FabricConfig, bytes_to_words, decode, encode
from tessera.compiler.route import compile_route
from tessera.hw.config import LoadError
from tessera.hw.params import preset
from tessera.sim.backends import get_backend

from ..bitstreams import corruptions

PARAMS = preset("tiny")


def expected_active(config: FabricConfig) -> dict:
    return {cu.name: config.unit_bits(cu.name) for cu in config.topology.config_units}


@pytest.fixture(scope="module")
def session():
    """One simulation: load A, then every corruption (snapshot after each),
    then B. Returns (A, B, codes in order, results)."""
    a = compile_route(PARAMS, 3).config
    b = compile_route(PARAMS, 4).config
    assert expected_active(a) != expected_active(b)
    bad = corruptions(encode(a))
    script = [{"op": "snapshot"}, {"op": "load", "words": bytes_to_words(encode(a))},
              {"op": "snapshot"}]
    for code, blob in bad.items():
        script += [{"op": "load", "words": bytes_to_words(blob)}, {"op": "snapshot"}]
    script += [{"op": "load", "words": bytes_to_words(encode(b))}, {"op": "snapshot"}]
    res = get_backend("pysim").run(PARAMS, script)
    return a, b, list(bad), res.results


def test_unconfigured_fabric_is_all_zero(session):
    _, _, _, results = session
    assert set(results[0]["active"].values()) == {0}


def test_good_bitstream_is_committed(session):
    a, _, _, results = session
    assert results[1]["accepted"] and results[1]["error"] == 0
    assert results[2]["active"] == expected_active(a)


def test_every_error_code_and_state_is_kept(session):
    a, _, codes, results = session
    assert set(codes) == set(LoadError) - {LoadError.OK}
    for i, code in enumerate(codes):
        load, snap = results[3 + 2 * i], results[4 + 2 * i]
        assert load["ended"], f"{code.name}: loader never ended the bitstream"
        assert not load["accepted"]
        assert LoadError(load["error"]) == code
        assert snap["active"] == expected_active(a), f"{code.name} changed the configuration"


def test_next_good_bitstream_after_rejections(session):
    _, b, codes, results = session
    load, snap = results[3 + 2 * len(codes)], results[4 + 2 * len(codes)]
    assert load["accepted"]
    assert snap["active"] == expected_active(b)


def test_decoder_model_agrees_with_codes():
    a = compile_route(PARAMS, 3).config
    for code, blob in corruptions(encode(a)).items():
        with pytest.raises(BitstreamError) as e:
            decode(blob, PARAMS)
        assert e.value.code == code


def test_config_cycles_measured(session):
    a, _, _, results = session
    words = len(encode(a)) // 4
    # one word per cycle: the loader is busy for exactly the bitstream's words
    assert results[1]["config_cycles"] == words
