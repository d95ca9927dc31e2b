"""draw(): a PNG of the placed and routed grid (Agg canvas, no display)."""

import struct

from tessera.compiler.draw import draw
from tessera.compiler.pathfinder import route
from tessera.compiler.place import place
from tessera.hw.params import preset

from .test_place import pipeline_netlist

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_draw_writes_a_png_of_placement_and_routes(tmp_path):
    params = preset("small")
    nl = pipeline_netlist(1)
    pl = place(params, nl, seed=0)
    r = route(pl)
    out = draw(params, pl, r, tmp_path / "map.png")
    assert out.stat().st_size > 1000
    w, h = png_size(out)
    assert w > 200 and h > 200
    # The same drawing from the routes dict, and a placement-only drawing.
    out2 = draw(params, pl, r.routes, tmp_path / "map2.png")
    assert png_size(out2) == (w, h)
    out3 = draw(params, pl, None, tmp_path / "place.png")
    assert out3.read_bytes()[:8] == PNG_SIGNATURE


def test_draw_an_empty_fabric(tmp_path):
    out = draw(preset("tiny"), None, None, tmp_path / "empty.png")
    assert out.read_bytes()[:8] == PNG_SIGNATURE and out.stat().st_size > 0
