"""The config loader on Amaranth's simulator: a good bitstream is committed;
every corrupted one is rejected with its own error code and leaves the
active configuration exactly as it was; the Python decoder (the loader's
golden model) reports the same codes."""

import pytest

from tessera.compiler.bitstream import BitstreamError, decode, encode
from tessera.compiler.route import compile_route
from tessera.hw.params import preset
from tessera.sim.backends import get_backend

from ..bitstreams import check_loader_session, corruptions, loader_session_script

PARAMS = preset("tiny")


def test_loader_codes_and_state_kept_pysim():
    a, b, codes, script = loader_session_script(PARAMS)
    results = get_backend("pysim").run(PARAMS, script).results
    check_loader_session(a, b, codes, results)
    # One beat per cycle: the loader is busy for exactly the bitstream's beats.
    assert results[1]["config_cycles"] == len(encode(a)) // (4 * PARAMS.config_beat_words)


def test_decoder_model_agrees_with_codes():
    a = compile_route(PARAMS, 3).config
    for code, blob in corruptions(encode(a), PARAMS.config_beat_words).items():
        with pytest.raises(BitstreamError) as e:
            decode(blob, PARAMS)
        assert e.value.code == code
