"""JSON files through `tf.io.gfile`, so pipeline artifacts on gs:// read and write like local
ones. TensorFlow is imported on first use: `pipeline.daily` runs inside a Kubeflow step that
should not pay for it at import."""
import json
import os


def read_json(path: str):
    """The value stored in the JSON file at ``path`` (local path or gs://)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    with tf.io.gfile.GFile(path) as handle:
        return json.loads(handle.read())


def write_json(path: str, value) -> None:
    """Writes ``value`` as indented, key-sorted JSON, creating the parent folder."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(json.dumps(value, indent=2, sort_keys=True) + "\n")
