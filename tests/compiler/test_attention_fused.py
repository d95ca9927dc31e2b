"""The fused attention's unit programs (compiler/attention.py, plan_fused),
run on the PCU golden model unit by unit with the PMUs' replays done in
NumPy (the orders their address generators are configured for), equal the
fused fixed-point golden model (attention_fixed) bit for bit; the kernel
compiles, places and routes on the default preset; its user errors."""

import numpy as np
import pytest

from tessera.compiler.attention import compile_attention_fused, plan_fused
from tessera.compiler.attention_model import AttentionFormats, attention_fixed
from tessera.compiler.errors import DoesNotFit, ShapeError
from tessera.compiler.pathfinder import check_routes
from tessera.hw.params import preset
from tessera.sim.attention import random_qkv
from tessera.sim.pcu_model import PCUModel

P = preset("default")
L = P.lanes


def _data(model, net, words):
    if net == "vec":
        return np.array([model.unpack("vec", w)[0] for w in words], dtype=np.int64)
    return np.array([model.unpack("scal", w)[0] for w in words], dtype=np.int64)


@pytest.mark.parametrize("N,M,d,causal", [(5, 13, 16, False), (6, 20, 32, True),
                                          (3, 3, 64, True), (9, 8, 32, False),
                                          (4, 40, 16, True), (7, 64, 32, False)])
def test_programs_on_unit_models(N, M, d, causal):
    q8, k8, v8, sc = random_qkv(N, M, d, seed=N + M)
    fm = AttentionFormats.for_inputs(q8, k8, sc)
    G, Mk = d // L, -(-M // L) * L
    nb = Mk // L
    model = PCUModel(P)
    vec = lambda rows: [model.pack("vec", r) for r in np.asarray(rows).reshape(-1, L)]
    scal = lambda xs: [model.pack("scal", int(x)) for x in np.asarray(xs).reshape(-1)]
    k = plan_fused(P, fm, N=N, M=M, d=d, causal=causal, q_addr=0, k_addr=0, v_addr=0,
                   out_addr=0).programs
    kp = np.zeros((Mk, d), dtype=np.int64)
    kp[:M] = k8
    vp = np.zeros((Mk, d), dtype=np.int64)
    vp[:M] = v8
    kt = kp.reshape(nb, L, d).transpose(0, 2, 1)               # (b, c, j)
    # PMU K replays K^T per row; PMU Q replays row i's q[i, c] per block
    a_in = {"i_vec[0]": vec(np.broadcast_to(kt, (N, nb, d, L))),
            "i_scal[0]": scal(np.broadcast_to(q8[:, None, :], (N, nb, d)))}
    s16 = model.run(k["a"], a_in).outputs["o_vec[0]"]
    t = model.run(k["b"], {"i_vec[0]": s16}).outputs["o_vec[0]"]
    out_d = model.run(k["d"], {"i_vec[0]": t}).outputs
    p = _data(model, "vec", out_d["o_vec[0]"]).reshape(N, nb, L)
    mb = _data(model, "scal", out_d["o_scal[0]"]).reshape(N, nb)
    # PMU P: for g, b, j the scalar p[i, b, j]; PMU V: V[b*L + j, g]; PMU M: M_b per (g, b)
    e_in = {"i_vec[0]": vec(np.broadcast_to(
                vp.reshape(nb, L, G, L).transpose(2, 0, 1, 3), (N, G, nb, L, L))),
            "i_scal[0]": scal(np.broadcast_to(p[:, None], (N, G, nb, L)))}
    out_e = model.run(k["e"], e_in).outputs
    f_in = {"i_vec[0]": out_e["o_vec[0]"], "i_scal[0]": out_e["o_scal[0]"],
            "i_scal[1]": scal(np.broadcast_to(mb[:, None], (N, G, nb)))}
    out_f = model.run(k["f"], f_in).outputs
    lg = out_f["o_scal[0]"]
    c = model.run(k["g"], {"i_scal[0]": lg}).outputs["o_scal[0]"]
    out_h = model.run(k["h"], {"i_vec[0]": out_f["o_vec[0]"], "i_scal[0]": c,
                               "i_scal[1]": lg}).outputs
    out = model.run(k["i"], {"i_vec[0]": out_h["o_vec[0]"],
                             "i_scal[0]": out_h["o_scal[0]"]}).outputs["o_vec[0]"]
    got = _data(model, "vec", out).reshape(N, d)
    got = ((got + 0x8000) & 0xFFFF) - 0x8000             # the AGCU stores int16
    want = attention_fixed(q8, k8, v8, sc, causal, formats=fm).out
    np.testing.assert_array_equal(got, want)


def test_compiles_and_routes_legally():
    N, M, d = 16, 24, 32
    q8, k8, v8, sc = random_qkv(N, M, d, seed=2)
    att = compile_attention_fused(P, N, M, d, AttentionFormats.for_inputs(q8, k8, sc))
    assert check_routes(P, att.routing.config, att.placement.physical_nets()) == []
    assert len(att.bitstreams) == 1
    assert sum(1 for u in att.kernel.netlist.units.values() if u.kind == "pcu") == P.num_pcus


def test_k_and_v_larger_than_a_pmu_stream_from_dram():
    """M x d beyond a PMU: no K/V PMUs; AGCUs 1 and 2 feed A and E directly,
    K and V read once per query row."""
    q8, k8, v8, sc = random_qkv(4, 512, 64, seed=1)
    att = compile_attention_fused(P, 4, 512, 64, AttentionFormats.for_inputs(q8, k8, sc))
    assert not att.resident and "pmuK" not in att.kernel.netlist.units
    assert att.tensor_bytes == 4 * 64 + 4 * 2 * 512 * 64 + 2 * 4 * 64
    assert check_routes(P, att.routing.config, att.placement.physical_nets()) == []
    small = compile_attention_fused(P, 4, 128, 64, AttentionFormats.for_inputs(
        q8, k8[:128], sc))
    assert small.resident and "pmuK" in small.kernel.netlist.units


def test_user_errors():
    q8, k8, v8, sc = random_qkv(8, 8, 16, seed=1)
    fm = AttentionFormats.for_inputs(q8, k8, sc)
    with pytest.raises(DoesNotFit, match="8 lanes"):
        compile_attention_fused(preset("small"), 8, 8, 16, fm)
    with pytest.raises(ShapeError, match="formats are for d=16"):
        compile_attention_fused(P, 8, 8, 32, fm)


WIDE = P.replace(name="wide", cols=8)      # 16 PCUs, 16 PMUs, 8 AGCUs: two heads


def test_heads_side_by_side():
    """Two heads in one configuration on a 4 x 8 grid: each head's units under
    its own prefix, the same programs as a head alone, legal routes; default
    holds one head, and more heads than fit is a clear error."""
    from tessera.compiler.attention import compile_attention_fused_heads, fused_heads_per_config
    assert fused_heads_per_config(P, 64, 32) == 1
    assert fused_heads_per_config(WIDE, 64, 32) == 2
    fms = []
    for h in range(3):
        q8, k8, v8, sc = random_qkv(8, 16, 32, seed=h)
        fms.append(AttentionFormats.for_inputs(q8, k8, sc))
    atts = compile_attention_fused_heads(WIDE, 8, 16, 32, fms[:2])
    assert len(atts) == 2 and atts[0].bitstreams and not atts[1].bitstreams
    assert atts[0].dram_end <= atts[1].q_addr
    units = atts[0].kernel.netlist.units
    assert sum(u.kind == "pcu" for u in units.values()) == 16
    assert {n[3:] for n in units if n.startswith("h1_")} == \
        {n[3:] for n in units if n.startswith("h0_")}
    alone = compile_attention_fused(WIDE, 8, 16, 32, fms[1], base=atts[1].q_addr).kernel.programs
    assert {k[3:]: v for k, v in atts[1].kernel.programs.items() if k.startswith("h1_")} == alone
    assert check_routes(WIDE, atts[0].routing.config, atts[0].placement.physical_nets()) == []
    with pytest.raises(DoesNotFit, match="3 fused attention heads side by side; preset 'wide' "
                                         "holds 2"):
        compile_attention_fused_heads(WIDE, 8, 16, 32, fms)
