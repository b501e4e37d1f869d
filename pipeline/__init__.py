"""DRGrad recommender: `pipeline` package. See docs/ARCHITECTURE.md."""
import os as _os

# tf.keras must be tf-keras 2.16 (Keras 2): TFX 1.16, tensorflow-transform and
# tensorflow-recommenders require it, and the choice is fixed at the first TensorFlow import.
_os.environ["TF_USE_LEGACY_KERAS"] = "1"
