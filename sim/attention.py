"""Attention on the simulated fabric (issue 7): compile, run on the host top,
compare bit for bit with the fixed-point golden model and report the error
against float64 (:mod:`tessera.compiler.attention_model`)."""

from __future__ import annotations

import time

import numpy as np

from ..compiler.attention_model import (AttentionFormats, attention_float,
                                        attention_unfused_fixed, dequantize, quantize_qkv,
                                        rel_err)
from ..hw.params import FabricParams
from .host import ConfigSequence, _sim_figures, check_dram, mac_figures

__all__ = ["run_attention", "random_qkv"]


def random_qkv(N: int, M: int, d: int, seed: int = 1):
    """Gaussian q, k, v quantized per tensor (``quantize_qkv``)."""
    rng = np.random.default_rng(seed)
    return quantize_qkv(rng.standard_normal((N, d)), rng.standard_normal((M, d)),
                        rng.standard_normal((M, d)))


def run_attention(params: FabricParams, *, seq: int, kv: int, dim: int, causal: bool = False,
                  fused: bool = False, sim: str = "verilator", seed: int = 1, qkv=None,
                  progress=None, return_result: bool = False, wave=None) -> dict:
    """softmax(Q K^T / sqrt(d)) V on the fabric. `qkv` = (q8, k8, v8, scales)
    (default: ``random_qkv``). Reports the GEMM figures plus fused,
    max_abs_err and rel_err (against float64 over the dequantized inputs)
    and score_offchip_bytes: the off-chip bytes beyond reading Q, K, V and
    writing the output once (S, P, l and O in the unfused kernel)."""
    from ..compiler.attention import check_attention_shape, compile_attention_unfused
    from ..compiler.errors import CompileError
    from .host_driver import Host

    t0 = time.perf_counter()
    N, M, d = seq, kv, dim
    check_attention_shape(N, M, d, causal)
    if fused:
        raise CompileError(
            "the fused attention kernel is not built yet: its online rescale needs a "
            "loop-carried row state that the PCU cannot hold (docs/attention.md, 'The fused "
            "kernel'); run with --unfused")
    q8, k8, v8, scales = qkv if qkv is not None else random_qkv(N, M, d, seed)
    formats = AttentionFormats.for_inputs(q8, k8, scales)
    att = compile_attention_unfused(params, N, M, d, formats, causal=causal, seed=seed)
    check_dram(params, att.dram_end, f"unfused attention {N}x{M}x{d} (Q, K, V, S, P, l, O, out)")
    host = Host(params)
    seq_ = ConfigSequence(host, att.bitstreams, below=att.q_addr)
    host.write_tensor(att.q_addr, att.pad_q(q8).astype(np.int8))
    host.write_tensor(att.scores.plan.b_addr, att.pack_k(k8).astype(np.int8))
    host.write_tensor(att.values.plan.b_addr, att.pack_v(v8).astype(np.int8))
    sp, vp = att.scores.plan, att.values.plan
    work = max(sp.Mp * sp.Np * sp.Kt, vp.Mp * vp.Np * vp.Kt) // params.lanes
    seq_.run_all(timeout=4 * work + 200_000)
    out = host.read_tensor(att.out_addr, (N, d), "int16")
    res = host.run(sim, progress=progress, wave=wave)

    golden = attention_unfused_fixed(q8, k8, v8, scales, causal, formats=formats)
    got = out.value
    ref = attention_float(dequantize(q8, scales.q), dequantize(k8, scales.k),
                          dequantize(v8, scales.v), causal)
    got_f = got.astype(np.float64) * formats.out_scale
    mismatches = int(np.count_nonzero(got != golden.out))
    figures = seq_.figures()
    compulsory = q8.size + k8.size + v8.size + 2 * N * d
    moved = figures["offchip_read_bytes"] + figures["offchip_write_bytes"]
    report = {
        "ok": bool(seq_.ok and mismatches == 0), "job": "attention", "preset": params.name,
        "sim": sim, "seq": N, "kv": M, "dim": d, "heads": 1, "causal": causal, "fused": False,
        "mismatches": mismatches,
        "max_abs_err": float(np.abs(got_f - ref).max()),
        "rel_err": rel_err(got_f, ref),
        **mac_figures(params, macs=2 * N * M * d, compulsory_bytes=compulsory,
                      cycles=figures["cycles"]),
        "score_offchip_bytes": moved - compulsory,
        "kernels": ["scores Q K^T", "softmax", "values P V", "normalize"],
        "formats": {"rs": formats.rs, "C": formats.C, "qs": formats.qs,
                    "s_bound": formats.s_bound, "out_scale": formats.out_scale},
        "bitstream_bytes": sum(len(b) for b in att.bitstreams),
        "compile_seconds": round(att.compile_seconds, 3),
        **figures,
        **_sim_figures(res, t0),
    }
    if return_result:
        report["result"] = got
        report["golden"] = golden.out
    return report
