"""Attention on the simulated fabric (issue 7): compile, run on the host top,
compare bit for bit with the fixed-point golden model and report the error
against float64 (:mod:`tessera.compiler.attention_model`)."""

from __future__ import annotations

import time

import numpy as np

from ..compiler.attention_model import (AttentionFormats, attention_fixed, attention_float,
                                        attention_unfused_fixed, dequantize, quantize_qkv,
                                        rel_err)
from ..hw.params import FabricParams
from .host import ConfigSequence, _sim_figures, check_dram, mac_figures

__all__ = ["run_attention", "random_qkv"]

#: DRAM bytes below the first head's tensors for the configurations'
#: bitstreams (grown in steps of this when the heads need more)
BITSTREAM_ROOM = 65536


def random_qkv(N: int, M: int, d: int, seed: int = 1):
    """Gaussian q, k, v quantized per tensor (``quantize_qkv``)."""
    rng = np.random.default_rng(seed)
    return quantize_qkv(rng.standard_normal((N, d)), rng.standard_normal((M, d)),
                        rng.standard_normal((M, d)))


def run_attention(params: FabricParams, *, seq: int, kv: int, dim: int, causal: bool = False,
                  fused: bool = False, sim: str = "verilator", seed: int = 1, qkv=None,
                  heads: int = 1, progress=None, return_result: bool = False,
                  wave=None, threads: int = 1) -> dict:
    """softmax(Q K^T / sqrt(d)) V on the fabric, for `heads` heads. `qkv` =
    (q8, k8, v8, scales), or a list of them, one per head (default:
    ``random_qkv`` with seed ``seed + h`` for head h). The unfused kernel runs
    the heads one after the other: 4 configurations per head, each head with
    its own tensors and formats, in one sequence on one host. Reports the
    GEMM figures plus fused, max_abs_err and rel_err (against float64 over
    the dequantized inputs, over all heads) and score_offchip_bytes: the
    off-chip bytes beyond reading Q, K, V and writing the output once (S, P,
    l and O in the unfused kernel; the fused kernel reads K and V padded to
    whole vectors of keys, and that padding is not counted as scores).

    The fused kernel (`fused`) is one configuration per head that uses every
    PCU of the preset, so the heads run one after the other too; it is
    compared bit for bit with ``attention_fixed``, the unfused one with
    ``attention_unfused_fixed``."""
    from ..compiler.attention import (check_attention_shape, compile_attention_fused_heads,
                                      compile_attention_unfused, fused_heads_per_config)
    from ..compiler.errors import ShapeError
    from .host_driver import Host

    t0 = time.perf_counter()
    N, M, d = seq, kv, dim
    check_attention_shape(N, M, d, causal)
    if not isinstance(heads, int) or heads < 1:
        raise ShapeError(f"heads must be a positive int, got {heads!r}")
    if qkv is None:
        qkv = [random_qkv(N, M, d, seed + h) for h in range(heads)]
    elif heads == 1 and not isinstance(qkv, list):
        qkv = [qkv]
    if len(qkv) != heads:
        raise ShapeError(f"{len(qkv)} sets of Q, K, V for {heads} heads")

    formats = [AttentionFormats.for_inputs(q8, k8, scales) for q8, k8, _, scales in qkv]
    # fused: as many heads side by side per configuration as fit, in order
    per_config = min(heads, max(1, fused_heads_per_config(params, M, d))) if fused else 1

    def compile_heads(base):
        out = []
        for h0 in range(0, heads, per_config):
            group = formats[h0:h0 + per_config]
            if fused:
                atts_ = compile_attention_fused_heads(params, N, M, d, group, causal=causal,
                                                      seed=seed, base=base)
            else:
                atts_ = [compile_attention_unfused(params, N, M, d, group[0], causal=causal,
                                                   seed=seed, base=base)]
            out += atts_
            base = -(-atts_[-1].dram_end // 64) * 64
        return out

    # The bitstreams sit below the first head's tensors: make room for all of them.
    atts = compile_heads(BITSTREAM_ROOM)
    need = sum(-(-len(b) // 64) * 64 for att in atts for b in att.bitstreams)
    if need > BITSTREAM_ROOM:
        atts = compile_heads(-(-need // BITSTREAM_ROOM) * BITSTREAM_ROOM)
    check_dram(params, atts[-1].dram_end,
               f"fused attention, {heads} head(s) of {N}x{M}x{d} (Q, K, V, out)" if fused else
               f"unfused attention, {heads} head(s) of {N}x{M}x{d} (Q, K, V, S, P, l, O, out)")
    host = Host(params)
    seq_ = ConfigSequence(host, [b for att in atts for b in att.bitstreams],
                          below=atts[0].q_addr)
    outs = []
    for att, (q8, k8, v8, _) in zip(atts, qkv):
        for addr, tensor in att.inputs(q8, k8, v8).items():
            host.write_tensor(addr, tensor.astype(np.int8))
    seq_.run_all(timeout=4 * heads * atts[0].iterations + 200_000)
    for att in atts:
        outs.append(host.read_tensor(att.out_addr, (N, d), "int16"))
    res = host.run(sim, progress=progress, wave=wave, threads=threads)

    golden_model = attention_fixed if fused else attention_unfused_fixed
    mismatches, got_all, gold_all, errs, refs = 0, [], [], [], []
    for att, out, (q8, k8, v8, scales) in zip(atts, outs, qkv):
        golden = golden_model(q8, k8, v8, scales, causal, formats=att.formats)
        got = out.value
        ref = attention_float(dequantize(q8, scales.q), dequantize(k8, scales.k),
                              dequantize(v8, scales.v), causal)
        got_f = got.astype(np.float64) * att.formats.out_scale
        mismatches += int(np.count_nonzero(got != golden.out))
        got_all.append(got)
        gold_all.append(golden.out)
        errs.append(got_f)
        refs.append(ref)
    got_f, ref = np.stack(errs), np.stack(refs)
    figures = seq_.figures()
    compulsory = sum(q8.size + k8.size + v8.size for q8, k8, v8, _ in qkv) + 2 * heads * N * d
    moved = figures["offchip_read_bytes"] + figures["offchip_write_bytes"]
    # what the kernel must move besides scores: the fused one reads K and V
    # padded to whole vectors of keys, once (in PMUs) or once per row
    inputs_moved = sum(att.tensor_bytes for att in atts) if fused else compulsory
    fmts = [{"rs": a.formats.rs, "C": a.formats.C, "qs": a.formats.qs,
             "s_bound": a.formats.s_bound, "out_scale": a.formats.out_scale} for a in atts]
    report = {
        "ok": bool(seq_.ok and mismatches == 0), "job": "attention", "preset": params.name,
        "sim": sim, "seq": N, "kv": M, "dim": d, "heads": heads, "causal": causal,
        "fused": bool(fused), "mismatches": mismatches,
        "heads_side_by_side": per_config,
        **({"kv_resident": atts[0].resident} if fused else {}),
        "max_abs_err": float(np.abs(got_f - ref).max()),
        "rel_err": rel_err(got_f, ref),
        **mac_figures(params, macs=2 * heads * N * M * d, compulsory_bytes=compulsory,
                      cycles=figures["cycles"]),
        "score_offchip_bytes": moved - inputs_moved,
        "kernels": (["fused"] if fused else
                    ["scores Q K^T", "softmax", "values P V", "normalize"]),
        "formats": fmts[0] if heads == 1 else fmts,
        "bitstream_bytes": sum(len(b) for att in atts for b in att.bitstreams),
        "compile_seconds": round(sum(att.compile_seconds for att in atts), 3),
        **figures,
        **_sim_figures(res, t0),
    }
    if return_result:
        report["result"] = got_all[0] if heads == 1 else np.stack(got_all)
        report["golden"] = gold_all[0] if heads == 1 else np.stack(gold_all)
    return report
