"""draw(): a PNG of the placed and routed grid (Agg canvas, no display);
draw_activity(): the measured unit activity on the same grid."""

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


def test_draw_activity_colours_units_by_measured_activity(tmp_path):
    import matplotlib

    from tessera.compiler.draw import draw_activity
    params = preset("small")
    full = matplotlib.colormaps["viridis"](1.0)[:3]        # 100% active
    idle = {f"{params.unit_kind(r, c)}_{r}_{c}": {"active": 0, "starved": 100, "stalled": 0}
            for r in range(params.rows) for c in range(params.cols)}
    idle.update({f"agcu_{k}": {"active": 0, "starved": 0, "stalled": 100}
                 for k in range(params.agcus)})
    out = draw_activity(params, idle, 100, tmp_path / "idle.png")
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    busy = dict(idle, pcu_0_0={"active": 100, "starved": 0, "stalled": 0})
    out2 = draw_activity(params, busy, 100, tmp_path / "busy.png")
    # the colour bar holds every colour; crop it off by looking at the grid part
    from matplotlib.image import imread
    w = imread(out2).shape[1]
    import numpy as np
    grid_busy = imread(out2)[:, : int(w * 0.7), :3]
    grid_idle = imread(out)[:, : int(w * 0.7), :3]
    near = lambda img: bool((np.abs(img - np.asarray(full)).max(axis=-1) < 0.02).any())
    assert near(grid_busy) and not near(grid_idle)


def test_draw_activity_rejects_a_bad_cycle_count(tmp_path):
    import pytest

    from tessera.compiler.draw import draw_activity
    with pytest.raises(ValueError, match="cycles must be a positive int"):
        draw_activity(preset("tiny"), {}, 0, tmp_path / "x.png")
