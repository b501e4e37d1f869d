"""DRGrad recommender: `model` package. See docs/ARCHITECTURE.md."""
import os as _os

# tf.keras must be tf-keras 2.16 (Keras 2): TFX 1.16, tensorflow-transform and
# tensorflow-recommenders require it, and the choice is fixed at the first TensorFlow import.
_os.environ["TF_USE_LEGACY_KERAS"] = "1"

# Light at import time (`drgrad --help` imports drgrad.training.cli): TensorFlow loads only when
# one of the names below is first used (PEP 562).
from drgrad.model.config import PRESETS, FeatureConfig, ModelConfig  # noqa: E402

__all__ = ["FeatureConfig", "ModelConfig", "PRESETS", "build_model", "MultiTaskModel"]

_LAZY = {
    "build_model": "drgrad.model.builder",
    "MultiTaskModel": "drgrad.model.multitask_model",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib  # pylint: disable=g-import-not-at-top
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'model' has no attribute {name!r}")
