"""The name -> class registries behind `get_backbone` / `get_strategy`."""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import pytest  # noqa: E402

from drgrad.model.backbones import available_backbones, get_backbone_class  # noqa: E402
from drgrad.model.registry import Registry  # noqa: E402
from drgrad.model.strategies import available_strategies, get_strategy_class  # noqa: E402


def test_every_module_is_listed_and_loads_on_demand():
    assert set(available_backbones()) >= {"shared_bottom", "mmoe", "split_mmoe", "ple", "snr",
                                          "ac_mmoe"}
    assert set(available_strategies()) >= {"equal_weight", "drgrad", "pcgrad", "cagrad",
                                           "nash_mtl", "adatask", "igbv2", "gradcraft"}
    assert get_strategy_class("pcgrad").strategy_name == "pcgrad"
    assert get_backbone_class("snr").backbone_name == "snr"


@pytest.mark.parametrize("name", ["nope", "Bad-Name", 3, None, ["drgrad"]])
def test_unknown_names_are_a_clear_value_error(name):
    with pytest.raises(ValueError, match="unknown strategy .*known: .*drgrad"):
        get_strategy_class(name)


def test_a_taken_name_cannot_be_registered_by_another_class():
    registry = Registry("thing", "drgrad.model.strategies", [], "thing_name")

    @registry.register("one")
    class One:  # pylint: disable=unused-variable
        pass

    with pytest.raises(ValueError, match="already registered"):
        @registry.register("one")
        class Other:  # pylint: disable=unused-variable
            pass

    with pytest.raises(ValueError, match="name must match"):
        registry.register("Not OK")
