"""Tiny models for the serving tests: a two-task stand-in for `MultiTaskModel`, a Keras
preprocessing layer, a `half_plus_two` contract model (TF Serving's own test model), and
helpers to export them once per test session and run a loopback server.
"""
import atexit
import contextlib
import functools
import os
import shutil
import tempfile

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

TASKS = ("ctr", "cvr")
RAW_FEATURE_SPEC = {
    "user": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "item": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    "age": tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
}
USERS = ("u1", "u2", "u3")
_TMP = tempfile.mkdtemp(prefix="drgrad-serving-tests-")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)


class TinyPreprocessor(tf.keras.layers.Layer):
    """Raw features -> model inputs: vocabulary ids (0 = unknown), z-scored age."""

    def __init__(self, users=USERS, **kwargs):
        super().__init__(**kwargs)
        self.users = tuple(users)
        self.lookup = tf.keras.layers.StringLookup(vocabulary=list(self.users), num_oov_indices=1)

    def call(self, raw):
        return {
            "user": tf.cast(self.lookup(raw["user"]), tf.int64),
            "item": tf.math.floormod(tf.cast(raw["item"], tf.int64), 16),
            "age": (tf.cast(raw["age"], tf.float32) - 40.0) / 10.0,
        }

    def get_config(self):
        return {**super().get_config(), "users": list(self.users)}


class TinyMultiTaskModel(tf.keras.Model):
    """Shared bottom + one sigmoid head per task; mixes heads with a non-trainable `mu`
    (read-only in `call`, as DRGrad's mu' / mu'' are)."""

    def __init__(self, tasks=TASKS, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.tasks = tuple(tasks)
        init = tf.keras.initializers.GlorotUniform(seed=seed)
        self.user_embedding = tf.keras.layers.Embedding(len(USERS) + 1, 4,
                                                        embeddings_initializer=init)
        self.item_embedding = tf.keras.layers.Embedding(16, 4, embeddings_initializer=init)
        self.hidden = tf.keras.layers.Dense(8, activation="relu", kernel_initializer=init,
                                            bias_initializer="ones")
        self.heads = {t: tf.keras.layers.Dense(1, kernel_initializer=init,
                                               name=f"head_{t}") for t in self.tasks}
        self.mu = tf.Variable(0.25 + 0.5 * (seed % 2), trainable=False, name="mu_logit")

    def call(self, features, training=False):
        x = tf.concat([self.user_embedding(features["user"]),
                       self.item_embedding(features["item"]),
                       tf.expand_dims(features["age"], -1)], axis=-1)
        h = self.hidden(x)
        logits = {t: tf.squeeze(self.heads[t](h), -1) for t in self.tasks}
        first = self.tasks[0]
        logits[first] = logits[first] + self.mu * logits[self.tasks[-1]]
        return {t: tf.sigmoid(v) for t, v in logits.items()}


def sample_rows(n, seed=0):
    """Raw feature rows, as a JSON client would send them (one unknown user included)."""
    rng = np.random.default_rng(seed)
    users = list(USERS) + ["stranger"]
    return [{"user": users[int(rng.integers(len(users)))], "item": int(rng.integers(100)),
             "age": float(np.round(rng.uniform(18, 80), 2))} for _ in range(n)]


def rows_to_tensors(rows):
    return {"user": tf.constant([r["user"] for r in rows]),
            "item": tf.constant([r["item"] for r in rows], tf.int64),
            "age": tf.constant([r["age"] for r in rows], tf.float32)}


def rows_to_examples(rows):
    serialized = []
    for row in rows:
        example = tf.train.Example()
        example.features.feature["user"].bytes_list.value.append(row["user"].encode())
        example.features.feature["item"].int64_list.value.append(row["item"])
        example.features.feature["age"].float_list.value.append(row["age"])
        serialized.append(example.SerializeToString())
    return serialized


def build_tiny(seed=0):
    """(model, transform) with built weights."""
    model, transform = TinyMultiTaskModel(seed=seed), TinyPreprocessor()
    model(transform(rows_to_tensors(sample_rows(2))))
    return model, transform


def in_process(model, transform, rows):
    """The reference predictions: `{task: np.ndarray}`."""
    outputs = model(transform(rows_to_tensors(rows)), training=False)
    return {t: v.numpy() for t, v in outputs.items()}


def tiny_export(seed=0):
    """Exports the tiny model once per session; returns (export_dir, model, transform)."""
    return _tiny_export(int(seed))


@functools.lru_cache(maxsize=None)
def _tiny_export(seed):
    from drgrad.serving.export import export_saved_model

    model, transform = build_tiny(seed)
    export_dir = os.path.join(_TMP, f"tiny-{seed}")
    export_saved_model(model, transform, RAW_FEATURE_SPEC, TASKS, export_dir)
    return export_dir, model, transform


class HalfPlusTwo(tf.Module):
    """TF Serving's `half_plus_two` test model, with extra signatures for the contract tests."""

    def __init__(self):
        super().__init__()
        self.a = tf.Variable(0.5)
        self.b = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def predict(self, x):
        return {"y": self.a * x + self.b}

    def _parse(self, serialized):
        return tf.io.parse_example(serialized, {
            "x": tf.io.FixedLenFeature([], tf.float32, default_value=0.0)})["x"]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        return {"outputs": self.a * self._parse(inputs) + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        y = self.a * self._parse(inputs) + self.b
        batch = tf.shape(y)[0]
        return {"classes": tf.tile(tf.constant([["low", "high"]]), [batch, 1]),
                "scores": tf.stack([1.0 - y / 10.0, y / 10.0], axis=1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="a"),
                                  tf.TensorSpec([None, 2], tf.int64, name="b"),
                                  tf.TensorSpec([None], tf.string, name="text_bytes")])
    def multi(self, a, b, text_bytes):
        return {"sum": a + tf.cast(tf.reduce_sum(b, axis=1), tf.float32),
                "echo_bytes": text_bytes,
                "length": tf.strings.length(text_bytes)}


@functools.lru_cache(maxsize=None)
def half_plus_two_export():
    module = HalfPlusTwo()
    export_dir = os.path.join(_TMP, "half_plus_two")
    tf.saved_model.save(module, export_dir, signatures={
        "serving_default": module.predict.get_concrete_function(),
        "regress_x": module.regress.get_concrete_function(),
        "classify_x": module.classify.get_concrete_function(),
        "multi": module.multi.get_concrete_function(),
    })
    return export_dir


def new_base_dir():
    return tempfile.mkdtemp(prefix="base-", dir=_TMP)


@contextlib.contextmanager
def running_server(model_base, **kwargs):
    """A loopback ModelServer on ephemeral ports; yields it and stops it after."""
    from drgrad.serving.server.app import ModelServer

    kwargs.setdefault("rest_port", 0)
    kwargs.setdefault("grpc_port", 0)
    kwargs.setdefault("poll_seconds", 0.1)
    server = ModelServer.from_model_base(model_base, host="127.0.0.1", **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()
