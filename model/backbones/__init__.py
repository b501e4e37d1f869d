"""Backbones by name: `get_backbone(name, feature_config, tasks, **kwargs)`.

A module ``model/backbones/<name>.py`` registers its class with ``@register("<name>")``; it is
imported on first use.
"""
import importlib
import re

_REGISTRY = {}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def register(name):
    """Class decorator: makes a `Backbone` subclass available as ``name``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"backbone name must match {_NAME.pattern}, got {name!r}")

    def decorator(cls):
        _REGISTRY[name] = cls
        cls.backbone_name = name
        return cls

    return decorator


def available_backbones():
    import pkgutil  # pylint: disable=g-import-not-at-top
    names = set(_REGISTRY)
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base" and not module.name.startswith("_"):
            names.add(module.name)
    return sorted(names)


def get_backbone_class(name):
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(available_backbones())}")
    if name not in _REGISTRY:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(available_backbones())}")
    return _REGISTRY[name]


def get_backbone(name, feature_config, tasks, **kwargs):
    return get_backbone_class(name)(feature_config=feature_config, tasks=tasks, **kwargs)
