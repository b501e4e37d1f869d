"""Backbones by name: `get_backbone(name, feature_config, tasks, **kwargs)`.

A module ``model/backbones/<name>.py`` registers its class with ``@register("<name>")``; it is
imported on first use.
"""
from drgrad.model.registry import Registry

_BACKBONES = Registry("backbone", __name__, __path__, "backbone_name")
register = _BACKBONES.register
get_backbone_class = _BACKBONES.get_class
available_backbones = _BACKBONES.available


def get_backbone(name, feature_config, tasks, **kwargs):
    return get_backbone_class(name)(feature_config=feature_config, tasks=tasks, **kwargs)
