"""`drgrad.training`: standalone training on a dataset, without TFX (`drgrad train`).

Above `drgrad.model` and `drgrad.data`, below `drgrad.pipeline` (docs/ARCHITECTURE.md):
`train` (data -> FeaturePreprocessor -> model -> fit -> metrics.json and a saved model),
`callbacks` (early stopping on the exact validation AUC, per-step strategy statistics to
TensorBoard), `metrics` (exact ROC AUC), `cli` (the `drgrad train` sub-command).
"""
import os as _os

# tf.keras must be tf-keras 2.16 (Keras 2); the choice is fixed at the first TensorFlow import.
_os.environ["TF_USE_LEGACY_KERAS"] = "1"
