"""The unfused attention's softmax and normalization programs, run on the
PCU golden model unit by unit (the fabric's links in between as lists), equal
the fixed-point golden model bit for bit; the lowering's user errors."""

import numpy as np
import pytest

from tessera.compiler.attention import (compile_attention_unfused, plan_normalize,
                                        plan_softmax)
from tessera.compiler.attention_model import (T_MASK, AttentionFormats, _logits, _Ranges,
                                              _visible, attention_unfused_fixed, exp2_fixed)
from tessera.compiler.errors import DoesNotFit, ShapeError
from tessera.compiler.pathfinder import check_routes
from tessera.hw.params import preset
from tessera.sim.attention import random_qkv
from tessera.sim.pcu_model import PCUModel

P = preset("default")
L = P.lanes


def _vecs(model, rows):
    return [model.pack("vec", r) for r in rows]


def _data(model, words):
    return np.array([model.unpack("vec", w)[0] for w in words], dtype=np.int64)


@pytest.mark.parametrize("N,M,d,causal", [(5, 13, 16, False), (6, 20, 32, True),
                                          (3, 3, 64, True), (9, 8, 32, False),
                                          (4, 40, 16, True)])
def test_programs_on_unit_models(N, M, d, causal):
    q8, k8, v8, sc = random_qkv(N, M, d, seed=N + M)
    fm = AttentionFormats.for_inputs(q8, k8, sc)
    Mk = -(-M // L) * L
    model = PCUModel(P)
    k = plan_softmax(P, fm, N=N, M=M, causal=causal, s_addr=0, s_pitch=Mk, p_addr=0,
                     p_pitch=Mk, l_addr=0).programs
    S = np.zeros((N, Mk), dtype=np.int64)
    S[:, :M] = q8.astype(np.int64) @ k8.astype(np.int64).T
    s16 = model.run(k["x1"], {"i_vec[0]": _vecs(model, S.reshape(-1, L))}).outputs["o_vec[0]"]
    t = model.run(k["x2"], {"i_vec[0]": s16}).outputs["o_vec[0]"]
    m = model.run(k["x3a"], {"i_vec[0]": t}).outputs["o_scal[0]"]
    assert len(m) == N
    p = model.run(k["x3b"], {"i_vec[0]": t, "i_scal[0]": m}).outputs["o_vec[0]"]
    lv = _data(model, model.run(k["x4"], {"i_vec[0]": p}).outputs["o_vec[0]"])
    pm = _data(model, p).reshape(N, Mk)
    # the golden model's p and l (attention_unfused_fixed's steps 2-10)
    tg = _logits(S[:, :M], fm, _Ranges())
    tg = np.where(np.arange(M)[None, :] < _visible(N, M, causal)[:, None], tg, T_MASK)
    pg = exp2_fixed(tg - ((tg.max(axis=1) >> 16) << 16)[:, None], fm.p_shift)
    assert np.array_equal(pm[:, :M], pg) and (pm[:, M:] == 0).all()
    assert np.array_equal(lv, np.repeat(pg.sum(axis=1)[:, None], L, axis=1))

    n = plan_normalize(P, fm, N=N, d=d, o_addr=0, o_pitch=d, l_addr=0, out_addr=0).programs
    o = pg.astype(np.int64) @ v8.astype(np.int64)
    lvec = _vecs(model, lv)
    c = model.run(n["g"], {"i_vec[0]": lvec}).outputs["o_scal[0]"]
    h = model.run(n["h"], {"i_vec[0]": _vecs(model, o.reshape(-1, L)), "i_vec[1]": lvec,
                           "i_scal[0]": c}).outputs
    out = model.run(n["i"], {"i_vec[0]": h["o_vec[0]"], "i_scal[0]": h["o_scal[0]"]})
    out = (_data(model, out.outputs["o_vec[0]"]).reshape(N, d) + 2 ** 15) % 2 ** 16 - 2 ** 15
    gold = attention_unfused_fixed(q8, k8, v8, sc, causal, formats=fm).out
    assert np.array_equal(out, gold)


def test_compiles_and_routes_legally():
    q8, k8, v8, sc = random_qkv(256, 256, 32)
    fm = AttentionFormats.for_inputs(q8, k8, sc)
    att = compile_attention_unfused(P, 256, 256, 32, fm, causal=True)
    assert len(att.bitstreams) == 4
    for name, kernel in (("softmax", att.softmax), ("normalize", att.normalize)):
        routing = att.routings[name]
        nets = att.placements[name].physical_nets()
        assert check_routes(P, routing.config, nets) == []
    # DRAM regions in order, no overlap
    sp, vp = att.scores.plan, att.values.plan
    assert sp.dram_end <= vp.a_addr and vp.dram_end <= att.l_addr < att.out_addr
    assert vp.Kp == 256 and vp.T == 1


def test_user_errors():
    q8, k8, v8, sc = random_qkv(8, 8, 16)
    fm = AttentionFormats.for_inputs(q8, k8, sc)
    with pytest.raises(ShapeError, match="head dim"):
        compile_attention_unfused(P, 8, 8, 24, fm)
    with pytest.raises(ShapeError, match="without a visible key"):
        compile_attention_unfused(P, 9, 8, 16, fm, causal=True)
    with pytest.raises(ShapeError, match="exceeds 512"):
        compile_attention_unfused(P, 600, 8, 16, fm)
    with pytest.raises(DoesNotFit, match="8 lanes"):
        compile_attention_unfused(preset("small"), 8, 8, 16, fm)
