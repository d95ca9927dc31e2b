"""The `tessera` command as a user runs it."""

import json
import subprocess
import sys

import pytest

from tessera.compiler.bitstream import FabricConfig, encode
from tessera.compiler.route import compile_route
from tessera.hw.params import preset


def tessera(*args):
    return subprocess.run([sys.executable, "-m", "tessera.cli", *args],
                          capture_output=True, text=True, timeout=900)


def tessera_json(*args) -> dict:
    """`tessera ARGS --json`, which must succeed: its report."""
    r = tessera(*args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_run_route_json(need_sim):
    need_sim("verilator")
    report = tessera_json("run", "route", "--hops", "7", "--preset", "small", "--words", "3000")
    for key in ("ok", "cycles", "words", "throughput", "config_cycles", "sim", "preset"):
        assert key in report
    assert report["ok"] and report["words"] == 3000 and report["throughput"] >= 0.99
    assert report["sim"] == "verilator" and report["preset"] == "small"


def test_run_route_human(need_sim):
    need_sim("verilator")
    r = tessera("run", "route", "--hops", "3", "--preset", "small", "--words", "100")
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout and "throughput" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["run", "route", "--preset", "huge"], "unknown preset 'huge'"),
    (["run", "route", "--hops", "2", "--preset", "small"], "--hops must be >= 3"),
    (["run", "route", "--hops", "80", "--preset", "tiny", "--sim", "pysim"], "no route of 80"),
    (["load", "/nonexistent/file.bit", "--preset", "small"], "cannot read /nonexistent/file.bit"),
    (["run", "attention", "--seq", "8", "--kv", "8", "--dim", "24"], "head dim d=24"),
    (["compile", "gemm", "--m", "4", "-o", "/tmp/never.bit"], "compile gemm needs --n, --k"),
    (["compile", "attention", "--dim", "8", "-o", "/tmp/never.bit"], "head dim d=8"),
])
def test_user_errors_are_one_line(args, message):
    r = tessera(*args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_run_attention_fused_human(need_sim):
    need_sim("verilator")
    r = tessera("run", "attention", "--seq", "6", "--kv", "10", "--dim", "16", "--causal")
    assert r.returncode == 0, r.stderr
    assert "(fused)" in r.stdout and "OK (bit-exact" in r.stdout and "rel_err" in r.stdout


@pytest.mark.parametrize("kind", ["good", "garbage", "empty", "other_preset", "huge"])
def test_load_any_file(need_sim, tmp_path, kind):
    need_sim("verilator")
    p = preset("small")
    blob = {
        "good": encode(compile_route(p, 4).config),
        "garbage": bytes(range(256)) * 3,
        "empty": b"",
        "other_preset": encode(FabricConfig(preset("tiny"))),
        "huge": bytes(1 << 20),
    }[kind]
    f = tmp_path / "x.bit"
    f.write_bytes(blob)
    r = tessera("load", str(f), "--preset", "small", "--json")
    if kind == "huge":
        assert r.returncode == 2 and "do not fit" in r.stderr and "Traceback" not in r.stderr
        return
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert set(report) >= {"accepted", "error", "config_cycles"}
    assert report["accepted"] == (kind == "good")
    assert report["model_agrees"], report
    expected = {"good": "OK", "garbage": "BAD_MAGIC", "empty": "BAD_MAGIC",
                "other_preset": "BAD_PARAMS_HASH"}[kind]
    assert report["error"] == expected


def test_run_gemm_heatmap(need_sim, tmp_path):
    """--heatmap writes a PNG of the RTL's per-unit counters and names it."""
    need_sim("verilator")
    png = tmp_path / "activity.png"
    report = tessera_json("run", "gemm", "--m", "16", "--n", "16", "--k", "16",
                          "--preset", "small", "--heatmap", str(png))
    assert report["ok"] and report["heatmap"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    busy = [u for u, perf in report["unit_perf"].items() if perf["active"] > 0]
    assert any(u.startswith("pcu") for u in busy)


def _vcd_scopes(path):
    scopes = set()
    with open(path) as f:
        for line in f:
            if line.startswith("$enddefinitions"):
                break
            if "$scope module" in line:
                scopes.add(line.split()[2])
    return scopes


def test_run_gemm_wave_pysim(tmp_path):
    """--wave on pysim: a VCD of the whole run, the units' scopes inside."""
    vcd = tmp_path / "run.vcd"
    report = tessera_json("run", "gemm", "--m", "4", "--n", "4", "--k", "4", "--preset", "tiny",
                          "--sim", "pysim", "--wave", str(vcd))
    assert report["ok"] and report["wave"] == str(vcd)
    assert {"fabric", "pcu_0_0", "pmu_0_1"} <= _vcd_scopes(vcd)


def test_run_gemm_wave_verilator(need_sim, tmp_path):
    """--wave on Verilator: a traced model (built once, cached apart), the
    same result, a VCD with the whole hierarchy."""
    need_sim("verilator")
    vcd = tmp_path / "run.vcd"
    report = tessera_json("run", "gemm", "--m", "8", "--n", "8", "--k", "8",
                          "--preset", "small", "--wave", str(vcd))
    assert report["ok"]
    assert {"tessera_host_top", "fabric", "pcu_0_0", "pcu_1_1", "agcu_0"} <= _vcd_scopes(vcd)
    assert vcd.stat().st_size > 100_000


@pytest.mark.parametrize("name, sim, message", [
    ("run.txt", "pysim", "use a .fst or .vcd name"),
    ("run.fst", "pysim", "the pysim backend writes VCD waveforms"),
    ("run.vcd", "icarus", "not by icarus"),
])
def test_run_gemm_wave_errors(tmp_path, name, sim, message):
    r = tessera("run", "gemm", "--m", "4", "--n", "4", "--k", "4", "--preset", "tiny",
                "--sim", sim, "--wave", str(tmp_path / name))
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("job,args", [
    ("gemm", ["--m", "20", "--n", "24", "--k", "40"]),
    ("attention", ["--seq", "16", "--kv", "20", "--dim", "32", "--causal"]),
])
def test_compile_writes_bitstream_and_picture(tmp_path, job, args):
    """`tessera compile`: a bitstream the loader accepts and a PNG of the
    placement and routes, on the default preset."""
    from tessera.compiler.bitstream import decode
    bit, png = tmp_path / "job.bit", tmp_path / "job.png"
    report = tessera_json("compile", job, *args, "--preset", "default", "-o", str(bit),
                          "--draw", str(png))
    assert report["ok"] and report["output"] == str(bit) and report["draw"] == str(png)
    decode(bit.read_bytes(), preset("default"))           # raises if malformed
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if job == "attention":
        assert report["units"] == {"pcu": 8, "pmu": 5, "agcu": 3} and report["kv_resident"]
