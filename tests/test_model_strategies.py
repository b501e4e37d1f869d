"""Strategy registry and argument checks (no model builds: fast)."""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import pytest  # noqa: E402

from drgrad.model.strategies import available_strategies, get_strategy, register  # noqa: E402
from drgrad.model.strategies.base import GradientStrategy  # noqa: E402
from drgrad.model.strategies.drgrad import DRGrad  # noqa: E402


def test_registry():
    assert {"drgrad", "equal_weight"} <= set(available_strategies())
    strategy = get_strategy("drgrad", gamma=2.0, variant="paired", updater="ema")
    assert isinstance(strategy, DRGrad)
    assert strategy.get_config()["gamma"] == 2.0
    assert DRGrad.from_config(strategy.get_config()).get_config() == strategy.get_config()
    assert get_strategy("equal_weight").groups == ()
    with pytest.raises(ValueError, match="unknown strategy"):
        get_strategy("no_such_strategy")
    with pytest.raises(ValueError, match="unknown strategy"):
        get_strategy("../etc")
    with pytest.raises(ValueError):
        register("Bad Name")


def test_register_conflict():
    @register("test_conflict_a")
    class First(GradientStrategy):
        pass

    with pytest.raises(ValueError, match="already registered"):
        @register("test_conflict_a")
        class Second(GradientStrategy):  # noqa: F841  pylint: disable=unused-variable
            pass
    assert get_strategy("test_conflict_a").__class__ is First


@pytest.mark.parametrize("kwargs", [
    {"gamma": 0}, {"gamma": True}, {"variant": "x"}, {"router": "yes"}, {"updater": "sum"},
    {"ema_decay": 1.0}, {"temperature": 0.0}, {"eps": 0.0}])
def test_drgrad_argument_checks(kwargs):
    with pytest.raises(ValueError):
        DRGrad(**kwargs)
