import pytest

from tessera.sim.backends import available


@pytest.fixture
def need_sim():
    """Skip (with the reason) when a simulator is not installed here."""
    def check(sim):
        ok, why = available(sim)
        if not ok:
            pytest.skip(f"{sim} unavailable: {why}")
    return check
