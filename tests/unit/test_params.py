import dataclasses

import pytest

from tessera.hw.params import FabricParams, preset


def test_presets_match_the_architecture():
    table = {"tiny": (1, 2, 1, 1, 2, 4, 4), "small": (2, 2, 2, 2, 4, 4, 4),
             "default": (4, 4, 8, 8, 8, 8, 6), "plasticine": (8, 16, 64, 64, None, 16, 6)}
    for name, (rows, cols, pcus, pmus, agcus, lanes, stages) in table.items():
        p = preset(name)
        assert (p.rows, p.cols, p.num_pcus, p.num_pmus, p.lanes, p.stages) == \
            (rows, cols, pcus, pmus, lanes, stages)
        if agcus is not None:
            assert p.agcus == agcus
        assert (p.dram_bytes_per_cycle, p.dram_latency) == (16, 64)


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset("small").rows = 3


@pytest.mark.parametrize("field,value,message", [
    ("rows", 0, "FabricParams.rows must be >= 1"),
    ("lanes", "4", "FabricParams.lanes must be an int"),
    ("pmu_depth", 100, "FabricParams.pmu_depth must be a power of two"),
    ("word_width", 16, "FabricParams.word_width must be 32"),
    ("pmu_banks", 3, "FabricParams.pmu_banks=3 must equal lanes"),
    ("agcus", 9, "FabricParams.agcus=9 exceeds"),
    ("fifo_depth", 2, "FabricParams.fifo_depth must be >= 3"),
])
def test_validation_names_the_field(field, value, message):
    with pytest.raises((TypeError, ValueError), match=message):
        FabricParams(**{field: value})


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset("huge")
