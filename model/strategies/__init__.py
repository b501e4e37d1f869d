"""Gradient strategies by name.

A strategy module ``model/strategies/<name>.py`` registers its class with
``@register("<name>")``. `get_strategy(name, **kwargs)` imports ``model.strategies.<name>`` on
first use, so adding a strategy needs no edit here. See `model.strategies.base` for the
interface.
"""
import importlib
import re

_REGISTRY = {}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def register(name):
    """Class decorator: makes a `GradientStrategy` subclass available as ``name``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"strategy name must match {_NAME.pattern}, got {name!r}")

    def decorator(cls):
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls and (
                existing.__module__, existing.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"strategy {name!r} is already registered by {existing!r}")
        _REGISTRY[name] = cls
        cls.strategy_name = name
        return cls

    return decorator


def get_strategy_class(name):
    """The class registered as ``name`` (imports ``model.strategies.<name>`` if needed)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(available_strategies())}")
    if name not in _REGISTRY:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
    if name not in _REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(available_strategies())}")
    return _REGISTRY[name]


def get_strategy(name, **kwargs):
    """A new strategy instance: ``get_strategy("drgrad", gamma=2.0)``."""
    return get_strategy_class(name)(**kwargs)


def available_strategies():
    """Names of the registered strategies plus the modules present in this package."""
    import pkgutil  # pylint: disable=g-import-not-at-top
    names = set(_REGISTRY)
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base" and not module.name.startswith("_"):
            names.add(module.name)
    return sorted(names)
