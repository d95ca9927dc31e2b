"""Run a Yosys script in a test's directory (the tests' SAT proofs)."""

import subprocess


def run_yosys_script(tmp_path, script: str, timeout: int = 600):
    """Write `script` to equiv.ys in `tmp_path` and run it with Yosys; fail
    the test with the tool's output if it exits non-zero."""
    from tessera.hw.synth import find_tool
    (tmp_path / "equiv.ys").write_text(script)
    r = subprocess.run(find_tool("yosys") + ["-q", "-s", "equiv.ys"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
