"""Name -> class registries for backbones and strategies (config-driven, EasyRec style).

A module ``<package>/<name>.py`` registers its class with ``@registry.register("<name>")``;
`get_class(name)` imports ``<package>.<name>`` on first use, so adding a backbone or a
strategy is one new file and no edit elsewhere.
"""
import importlib
import pkgutil
import re

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Registry:
    """Classes of one kind (``"backbone"`` or ``"strategy"``) by name, found in ``package``."""

    def __init__(self, kind, package, path, name_attribute):
        self.kind = kind
        self._package = package
        self._path = path
        self._name_attribute = name_attribute
        self._classes = {}

    def register(self, name):
        """Class decorator: makes ``cls`` available as ``name`` (sets ``cls.<kind>_name``)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"{self.kind} name must match {_NAME.pattern}, got {name!r}")

        def decorator(cls):
            existing = self._classes.get(name)
            # A re-import of the same module may register a new class object; another class
            # under a taken name is a mistake.
            if existing is not None and (existing.__module__, existing.__qualname__) != (
                    cls.__module__, cls.__qualname__):
                raise ValueError(f"{self.kind} {name!r} is already registered by {existing!r}")
            self._classes[name] = cls
            setattr(cls, self._name_attribute, name)
            return cls

        return decorator

    def get_class(self, name):
        """The class registered as ``name``; a clear ValueError listing the known names."""
        well_formed = isinstance(name, str) and bool(_NAME.match(name))
        if well_formed and name not in self._classes:
            try:
                importlib.import_module(f"{self._package}.{name}")
            except ModuleNotFoundError as error:
                if error.name != f"{self._package}.{name}":
                    raise
        if not well_formed or name not in self._classes:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.available())}")
        return self._classes[name]

    def available(self):
        """Registered names plus the modules present in the package (not yet imported)."""
        names = set(self._classes)
        for module in pkgutil.iter_modules(self._path):
            if module.name != "base" and not module.name.startswith("_"):
                names.add(module.name)
        return sorted(names)
