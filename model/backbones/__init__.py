"""Backbones by name: `get_backbone(name, feature_config, tasks, **kwargs)`.

A module ``model/backbones/<name>.py`` registers its class with ``@register("<name>")``; it is
imported on first use. A named configuration of another backbone (``cgc2``: PLE with the
released DRGrad's arguments) is registered by that backbone's module, listed in
`NAMED_CONFIGURATIONS`.
"""
import importlib

from drgrad.model.registry import Registry

_BACKBONES = Registry("backbone", __name__, __path__, "backbone_name")
register = _BACKBONES.register
#: ``{name: module registering it}`` for names without a module of their own.
NAMED_CONFIGURATIONS = {"cgc2": "ple"}


def get_backbone_class(name):
    if name in NAMED_CONFIGURATIONS:
        importlib.import_module(f"{__name__}.{NAMED_CONFIGURATIONS[name]}")
    return _BACKBONES.get_class(name)


def available_backbones():
    return sorted(set(_BACKBONES.available()) | set(NAMED_CONFIGURATIONS))


def get_backbone(name, feature_config, tasks, **kwargs):
    return get_backbone_class(name)(feature_config=feature_config, tasks=tasks, **kwargs)
