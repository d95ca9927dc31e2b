"""Every loader error code on the compiled models, with the active
configuration read back after each rejection."""

import pytest

from tessera.hw.params import preset
from tessera.sim.backends import get_backend

from ..bitstreams import check_loader_session, loader_session_script


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_loader_codes_and_state_kept(need_sim, sim):
    need_sim(sim)
    params = preset("small")
    a, b, codes, script = loader_session_script(params)
    check_loader_session(a, b, codes, get_backend(sim).run(params, script).results)
