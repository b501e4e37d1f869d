"""A `drgrad train` run directory: a trained model in `drgrad.model.saving`'s layout plus the
`FeaturePreprocessor` it was trained with (``preprocessor/``, which holds its own vocabularies)
and, written by `train`, ``metrics.json``, ``checkpoints/`` and ``logs/``."""
import tensorflow as tf

from drgrad.data.preprocessing import FeaturePreprocessor
from drgrad.model import saving


def save_trained(model, run_dir, preprocessor=None):
    """Writes the model (config, weights) and the preprocessor."""
    saving.save(model, run_dir, preprocessor=preprocessor)


def load_trained(run_dir, compile_model=True):
    """Rebuilds a trained model from a run directory: ``(model, preprocessor, config)``.

    ``preprocessor`` is None when the run saved none.
    """
    model = saving.load(run_dir, compile_model=compile_model)
    preprocessor = None
    if tf.io.gfile.isdir(saving.preprocessor_dir(run_dir)):
        preprocessor = FeaturePreprocessor.load(saving.preprocessor_dir(run_dir))
    return model, preprocessor, model.model_config
