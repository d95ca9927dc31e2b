"""Route compiler: exact hop counts, simple paths, clear errors."""

import pytest

from tessera.compiler.route import RouteError, compile_route
from tessera.hw.params import preset


@pytest.mark.parametrize("name,hops", [("tiny", 3), ("tiny", 5), ("small", 6), ("small", 12),
                                       ("default", 6), ("default", 40)])
def test_route_has_exact_hops(name, hops):
    r = compile_route(preset(name), hops)
    assert len(r.path) == hops
    used = [(tile, k) for tile, _, k in r.path]
    assert len(used) == len(set(used)), "a link is used twice"


def test_route_is_deterministic():
    a = compile_route(preset("default"), 9)
    b = compile_route(preset("default"), 9)
    assert a.path == b.path and a.config == b.config


def test_impossible_route_is_a_clear_error():
    with pytest.raises(RouteError, match="no route of 60 switch hops"):
        compile_route(preset("tiny"), 60)
    with pytest.raises(RouteError, match="positive integer"):
        compile_route(preset("tiny"), 0)
