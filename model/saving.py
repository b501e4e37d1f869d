"""A trained model on disk: the one layout that `drgrad train`, the TFX Trainer, warm start and
`drgrad export` write and read.

    <dir>/model_config.json   the `ModelConfig`: rebuilds exactly the same network
    <dir>/weights/model.*     TF checkpoint of the model's variables (+ optimizer slots)
    <dir>/vocabularies.json   optional: ``{categorical column: [value of id 0, 1, ...]}``, what
                              warm start needs to move embedding rows with their values
    <dir>/preprocessor/       optional: the standalone `FeaturePreprocessor` (`drgrad train`);
                              written and read by its owner through `preprocessor_dir`, since
                              the model layer does not know data code

Variables are named by their checkpoint object path (`variable_paths`), e.g.
``backbone/embedding/tables/user/embeddings``: the same in every process and every rebuild of
a config, unlike Keras' ``Variable.name``, which is made unique per process
(``multi_task_model_1/split_m_mo_e_1/...``) and repeats across layers.
"""
import collections
import json
import os
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from drgrad.model.builder import build_from_config
from drgrad.model.config import ModelConfig

CONFIG_FILE = "model_config.json"
WEIGHTS_DIR = "weights"
WEIGHTS_PREFIX = os.path.join(WEIGHTS_DIR, "model")
VOCABULARIES_FILE = "vocabularies.json"
PREPROCESSOR_DIR = "preprocessor"

# Checkpoint keys of plain variables end in this suffix (tf.train.list_variables).
_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def config_path(directory: str) -> str:
    return os.path.join(directory, CONFIG_FILE)


def weights_prefix(directory: str) -> str:
    return os.path.join(directory, WEIGHTS_PREFIX)


def vocabularies_path(directory: str) -> str:
    return os.path.join(directory, VOCABULARIES_FILE)


def preprocessor_dir(directory: str) -> str:
    return os.path.join(directory, PREPROCESSOR_DIR)


def is_trained_model(directory: str) -> bool:
    """True when `directory` holds a config and a complete weight checkpoint."""
    return (tf.io.gfile.exists(config_path(directory))
            and tf.io.gfile.exists(weights_prefix(directory) + ".index"))


def write_config(config: ModelConfig, directory: str) -> None:
    """Writes ``model_config.json`` (also used to label an exported SavedModel)."""
    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(config_path(directory), "w") as handle:
        handle.write(config.to_json() + "\n")


def save(model, directory: str, vocabularies: Optional[Mapping[str, Sequence[str]]] = None,
         preprocessor=None) -> None:
    """Writes `model` (built by `build_model`) in the layout of the module docstring.

    Args:
      model: a `MultiTaskModel` that records its `ModelConfig`.
      directory: local path or any `tf.io.gfile` URL; created if missing.
      vocabularies: ``{column: [value in id order]}``, or None.
      preprocessor: anything with ``save(path)`` (the standalone `FeaturePreprocessor`), or None.
    """
    if getattr(model, "model_config", None) is None:
        raise ValueError("saving needs a model made by build_model (it records a ModelConfig)")
    write_config(model.model_config, directory)
    model.save_weights(weights_prefix(directory))
    if vocabularies is not None:
        with tf.io.gfile.GFile(vocabularies_path(directory), "w") as handle:
            json.dump({column: list(values) for column, values in vocabularies.items()}, handle,
                      indent=1, sort_keys=True)
            handle.write("\n")
    if preprocessor is not None:
        preprocessor.save(preprocessor_dir(directory))


def read_config(directory: str) -> ModelConfig:
    path = config_path(directory)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} not found: not a trained-model directory")
    with tf.io.gfile.GFile(path) as handle:
        return ModelConfig.from_dict(json.load(handle))


def read_vocabularies(directory: str) -> Optional[Dict[str, list]]:
    """The saved vocabularies, or None when the model was saved without them."""
    path = vocabularies_path(directory)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def load(directory: str, compile_model: bool = True):
    """Rebuilds the model saved in `directory` and restores every one of its variables."""
    config = read_config(directory)
    if not tf.io.gfile.exists(weights_prefix(directory) + ".index"):
        raise FileNotFoundError(f"no weights under {os.path.join(directory, WEIGHTS_DIR)}")
    model = build_from_config(config, compile_model=compile_model)
    model.load_weights(weights_prefix(directory)).expect_partial()
    return model


def variable_paths(model) -> Dict[str, tf.Variable]:
    """``{checkpoint object path: variable}`` of every variable reachable from `model`.

    The path is the one a TF checkpoint of `model` stores the variable under (breadth-first,
    first path found, local names escaped as TF escapes them), so it names the variable's role
    in the network, not the Python object: `read_weights` of a checkpoint has the same keys.
    """
    view = tf.train.TrackableView(model)
    paths, seen = {}, {id(model)}
    queue = collections.deque([(model, "")])
    while queue:
        parent, prefix = queue.popleft()
        for name, child in view.children(parent).items():
            if id(child) in seen:
                continue
            seen.add(id(child))
            local = name.replace(".", "..").replace("/", ".S")
            path = f"{prefix}/{local}" if prefix else local
            if isinstance(child, tf.Variable):
                paths[path] = child
            queue.append((child, path))
    return paths


def read_weights(directory: str) -> Dict[str, np.ndarray]:
    """``{checkpoint object path: value}`` of the variables saved in `directory`."""
    prefix = weights_prefix(directory)
    reader = tf.train.load_checkpoint(prefix)
    return {key[:-len(_VALUE_SUFFIX)]: reader.get_tensor(key)
            for key, _ in tf.train.list_variables(prefix) if key.endswith(_VALUE_SUFFIX)}
