"""DRGrad recommender: `data` package. See docs/ARCHITECTURE.md."""
import os as _os

# tf.keras must be tf-keras 2.16 (Keras 2): TFX 1.16, tensorflow-transform and
# tensorflow-recommenders require it, and the choice is fixed at the first TensorFlow import.
_os.environ["TF_USE_LEGACY_KERAS"] = "1"

# Public API, imported lazily (PEP 562) so `drgrad --help` and `import data` stay instant and
# pandas / TensorFlow load only when a builder or the preprocessor is used.
_EXPORTS = {
    "DatasetSpec": "drgrad.data.specs",
    "SPECS": "drgrad.data.specs",
    "get_spec": "drgrad.data.specs",
    "load_frames": "drgrad.data.datasets",
    "build": "drgrad.data.datasets",
    "split_days": "drgrad.data.datasets",
    "FeaturePreprocessor": "drgrad.data.preprocessing",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'data' has no attribute {name!r}")
