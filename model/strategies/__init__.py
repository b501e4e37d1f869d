"""Gradient strategies by name.

A strategy module ``model/strategies/<name>.py`` registers its class with
``@register("<name>")``. `get_strategy(name, **kwargs)` imports ``model.strategies.<name>`` on
first use, so adding a strategy needs no edit here. See `model.strategies.base` for the
interface.
"""
from drgrad.model.registry import Registry

_STRATEGIES = Registry("strategy", __name__, __path__, "strategy_name")
register = _STRATEGIES.register
get_strategy_class = _STRATEGIES.get_class
available_strategies = _STRATEGIES.available


def get_strategy(name, **kwargs):
    """A new strategy instance: ``get_strategy("drgrad", gamma=2.0)``."""
    return get_strategy_class(name)(**kwargs)
