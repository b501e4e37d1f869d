"""Export round trip, signature contract, model-version publishing and graph inspection."""
import os

import numpy as np
import pytest
import tensorflow as tf

import serving_fixtures as fx
from drgrad.serving import export as export_lib
from drgrad.serving import model_config


@pytest.fixture(scope="module")
def exported():
    return fx.tiny_export()


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported[0])


def test_signature_names_inputs_and_outputs(loaded):
    signatures = loaded.signatures
    assert set(signatures) == {"serving_default", "predict_raw", "transform_features",
                               "regress_ctr", "regress_cvr"}
    _, inputs = signatures["serving_default"].structured_input_signature
    assert {k: (v.dtype, v.shape.as_list()) for k, v in inputs.items()} == {
        "examples": (tf.string, [None])}
    assert set(signatures["serving_default"].structured_outputs) == {"ctr", "cvr"}
    _, raw = signatures["predict_raw"].structured_input_signature
    assert {k: (v.dtype, v.shape.as_list()) for k, v in raw.items()} == {
        "user": (tf.string, [None]), "item": (tf.int64, [None]), "age": (tf.float32, [None])}
    for task in fx.TASKS:
        _, regress_inputs = signatures[f"regress_{task}"].structured_input_signature
        assert list(regress_inputs) == ["inputs"]
        assert list(signatures[f"regress_{task}"].structured_outputs) == ["outputs"]


def test_regress_signatures_carry_the_regress_method_name(exported):
    from drgrad.serving.server.servable import read_signature_defs

    defs = read_signature_defs(exported[0])
    assert defs["regress_ctr"].method_name == "tensorflow/serving/regress"
    assert defs["serving_default"].method_name == "tensorflow/serving/predict"


def test_serving_default_equals_in_process_model(exported, loaded):
    _, model, transform = exported
    rows = fx.sample_rows(7, seed=3)
    expected = fx.in_process(model, transform, rows)
    got = loaded.signatures["serving_default"](examples=tf.constant(fx.rows_to_examples(rows)))
    raw = loaded.signatures["predict_raw"](**fx.rows_to_tensors(rows))
    for task in fx.TASKS:
        np.testing.assert_allclose(got[task].numpy(), expected[task], atol=1e-5)
        np.testing.assert_allclose(raw[task].numpy(), expected[task], atol=1e-5)
        regress = loaded.signatures[f"regress_{task}"](
            inputs=tf.constant(fx.rows_to_examples(rows)))
        np.testing.assert_allclose(regress["outputs"].numpy(), expected[task], atol=1e-5)


def test_missing_features_take_the_spec_defaults(exported, loaded):
    _, model, transform = exported
    empty = tf.train.Example().SerializeToString()
    got = loaded.signatures["serving_default"](examples=tf.constant([empty]))
    expected = fx.in_process(model, transform, [{"user": "", "item": 0, "age": 0.0}])
    np.testing.assert_allclose(got["ctr"].numpy(), expected["ctr"], atol=1e-5)


def test_transform_features_matches_the_transform(exported, loaded):
    _, _, transform = exported
    rows = fx.sample_rows(4, seed=5)
    got = loaded.signatures["transform_features"](examples=tf.constant(fx.rows_to_examples(rows)))
    expected = transform(fx.rows_to_tensors(rows))
    assert set(got) == set(expected)
    # user ids: u1 -> 1, u2 -> 2, u3 -> 3, unknown -> 0; age z-scored by hand.
    ids = {"u1": 1, "u2": 2, "u3": 3}
    np.testing.assert_array_equal(got["user"].numpy(), [ids.get(r["user"], 0) for r in rows])
    np.testing.assert_allclose(got["age"].numpy(), [(r["age"] - 40) / 10 for r in rows],
                               rtol=1e-6)


def test_export_is_hermetic_after_the_transform_is_gone(exported, tmp_path):
    """The vocabulary travels inside the SavedModel (TFT census test pattern)."""
    _, model, transform = exported
    export_dir = str(tmp_path / "hermetic")
    export_lib.export_saved_model(model, fx.TinyPreprocessor(), fx.RAW_FEATURE_SPEC, fx.TASKS,
                                  export_dir)
    assert os.listdir(os.path.join(export_dir, "assets")) or os.path.isdir(
        os.path.join(export_dir, "variables"))
    reloaded = tf.saved_model.load(export_dir)
    rows = [{"user": "u2", "item": 3, "age": 30.0}, {"user": "zzz", "item": 3, "age": 30.0}]
    got = reloaded.signatures["predict_raw"](**fx.rows_to_tensors(rows))
    np.testing.assert_allclose(got["cvr"].numpy(), fx.in_process(model, transform, rows)["cvr"],
                               atol=1e-5)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"tasks": []}, ValueError, "non-empty"),
    ({"tasks": ["ctr", "ctr"]}, ValueError, "unique"),
    ({"tasks": ["ctr", "bad task"]}, ValueError, "task name"),
    ({"tasks": ["ctr", "image_bytes"]}, ValueError, "_bytes"),
    ({"raw_feature_spec": {"bad name": tf.io.FixedLenFeature([], tf.float32)}}, ValueError,
     "valid signature input name"),
    ({"raw_feature_spec": {"x": tf.io.RaggedFeature(tf.float32)}}, ValueError,
     "FixedLenFeature"),
    ({"raw_feature_spec": {"x": tf.io.FixedLenFeature([2], tf.float32)}}, ValueError,
     "scalar"),
    ({"raw_feature_spec": {"x": tf.io.FixedLenFeature([], tf.int32)}}, ValueError, "dtype"),
    ({"transform": "not callable"}, ValueError, "callable"),
    ({"model": object()}, ValueError, "tf.keras model"),
])
def test_export_rejects_bad_arguments_before_writing(exported, tmp_path, kwargs, error, match):
    _, model, transform = exported
    args = {"model": model, "transform": transform, "raw_feature_spec": fx.RAW_FEATURE_SPEC,
            "tasks": fx.TASKS, "export_dir": str(tmp_path / "out")}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        export_lib.export_saved_model(**args)
    assert not os.path.exists(tmp_path / "out")


def test_export_refuses_a_non_empty_directory(exported, tmp_path):
    _, model, transform = exported
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        export_lib.export_saved_model(model, transform, fx.RAW_FEATURE_SPEC, fx.TASKS,
                                      str(tmp_path))
    assert (tmp_path / "keep.txt").read_text() == "x"


# ------------------------------------------------------------------------- model versions
def test_write_model_version_layout_config_and_warmup(exported, tmp_path):
    from drgrad.serving.server.servable import Servable
    from tensorflow_serving.apis import prediction_log_pb2

    base = str(tmp_path)
    rows = fx.sample_rows(3)
    first = export_lib.write_model_version(base, "tiny", exported[0], version=7,
                                           warmup_examples=rows)
    assert first == os.path.join(base, "tiny", "7")
    assert sorted(os.listdir(os.path.join(base, "tiny"))) == ["7"]   # no temporary left over
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in
               tf.data.TFRecordDataset(os.path.join(first, export_lib.WARMUP_RELPATH))]
    assert [r.predict_log.request.model_spec.signature_name for r in records] == [
        "serving_default", "serving_default", "predict_raw"]
    assert [r.predict_log.request.inputs["examples"].tensor_shape.dim[0].size
            for r in records[:2]] == [1, 3]
    assert Servable("tiny", 7, first).warmup() == 3

    config = model_config.read_server_config(os.path.join(base, "models.config"))
    (entry,) = config.model_config_list.config
    assert (entry.name, entry.base_path, entry.model_platform) == (
        "tiny", os.path.join(base, "tiny"), "tensorflow")
    assert entry.model_version_policy.latest.num_versions == 1
    assert model_config.BatchingParameters.read(
        os.path.join(base, "batching_parameters.txt")) == model_config.BatchingParameters()

    # Auto version: newer than every existing one; labels and policy land in models.config.
    second = export_lib.write_model_version(base, "tiny", exported[0], num_latest=2,
                                            labels={"stable": 7})
    assert int(os.path.basename(second)) > 7
    entry = model_config.read_server_config(
        os.path.join(base, "models.config")).model_config_list.config[0]
    assert entry.model_version_policy.latest.num_versions == 2
    assert dict(entry.version_labels) == {"stable": 7}


def test_write_model_version_default_warmup_uses_predict_raw(exported, tmp_path):
    version_dir = export_lib.write_model_version(str(tmp_path), "tiny", exported[0], version=1)
    records = list(tf.data.TFRecordDataset(os.path.join(version_dir, export_lib.WARMUP_RELPATH)))
    assert len(records) == 3


def test_write_model_version_failures_leave_nothing_behind(exported, tmp_path):
    base = str(tmp_path)
    export_lib.write_model_version(base, "tiny", exported[0], version=5)
    with pytest.raises(FileExistsError):
        export_lib.write_model_version(base, "tiny", exported[0], version=5)

    def broken_export(path):
        os.makedirs(path)
        open(os.path.join(path, "variables.partial"), "w").close()
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        export_lib.write_model_version(base, "tiny", broken_export, version=6)
    assert sorted(os.listdir(os.path.join(base, "tiny"))) == ["5"]
    with pytest.raises(FileNotFoundError):
        export_lib.write_model_version(base, "tiny", str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="model name"):
        export_lib.write_model_version(base, ".hidden", exported[0])


# ------------------------------------------------------------------------- graph inspection
_TRAINING_ONLY = ("router", "drgrad", "updater", "optimizer", "adam")
_WRITES = ("AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
           "ResourceApplyAdam", "ResourceScatterUpdate")


def assert_inference_only_graph(export_dir, mu_name=None):
    """No op from training-only code, no variable writes; mu (if named) only read."""
    ops = export_lib.graph_ops(export_dir)
    assert ops, "empty graph"
    offending = [(f, n, op) for f, n, op in ops
                 if any(word in n.lower() or word in op.lower() or word in f.lower()
                        for word in _TRAINING_ONLY)]
    assert offending == []
    writes = [(f, n, op) for f, n, op in ops if op in _WRITES]
    assert writes == []
    return ops


def test_exported_graph_is_inference_only(exported):
    ops = assert_inference_only_graph(exported[0])
    op_types = {op for _, _, op in ops}
    # The walk reaches into the model: its matmuls and variable reads are there.
    assert {"MatMul", "ReadVariableOp", "ParseExampleV2"} <= op_types
    # mu is captured as a variable and only read (ReadVariableOp), never assigned.
    loaded = tf.saved_model.load(exported[0])
    names = [v.name for v in loaded.model_variables]
    assert any("mu_logit" in n for n in names)


def test_graph_inspection_catches_a_training_op(tmp_path):
    """The inspection can fail: a module that assigns a variable in its signature."""

    class Updater(tf.Module):
        def __init__(self):
            super().__init__()
            self.mu = tf.Variable(0.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            self.mu.assign_add(1.0)
            return {"y": x * self.mu}

    module = Updater()
    tf.saved_model.save(module, str(tmp_path), signatures=module.serve.get_concrete_function())
    with pytest.raises(AssertionError):
        assert_inference_only_graph(str(tmp_path))


def _drgrad_builder():
    try:
        from drgrad import model as model_pkg
        return getattr(model_pkg, "build_model"), getattr(model_pkg, "FeatureConfig")
    except (ImportError, AttributeError):
        return None


@pytest.mark.skipif(_drgrad_builder() is None,
                    reason="model.build_model is not available in this checkout yet")
def test_exported_drgrad_model_has_no_router_ops(tmp_path):
    build_model, feature_config_cls = _drgrad_builder()
    feature_config = feature_config_cls(categorical={"user": 4, "item": 16}, numeric=("age",),
                                        personalization=("user",), embedding_dim=4)
    model = build_model(feature_config, list(fx.TASKS), backbone="split_mmoe",
                        strategy="drgrad", seed=0)
    transform = fx.TinyPreprocessor()
    rows = fx.sample_rows(6)
    expected = {k: v.numpy() for k, v in
                model(transform(fx.rows_to_tensors(rows)), training=False).items()}
    export_dir = str(tmp_path / "drgrad")
    export_lib.export_saved_model(model, transform, fx.RAW_FEATURE_SPEC, fx.TASKS, export_dir)
    assert_inference_only_graph(export_dir)
    got = tf.saved_model.load(export_dir).signatures["predict_raw"](**fx.rows_to_tensors(rows))
    for task in fx.TASKS:
        np.testing.assert_allclose(got[task].numpy(), expected[task], atol=1e-5)


def test_schema_gen_shapes_and_optional_features_serve_one_value_per_row(tmp_path):
    """SchemaGen declares features [1]-shaped, or VarLen when examples may lack them: the
    signatures still take one value per row, and an example without the optional feature is
    served with it missing (the transform sees an empty sparse row)."""
    class Transform(tf.Module):
        def __call__(self, raw):
            assert raw["x"].shape.as_list() == [None, 1] and isinstance(raw["c"], tf.SparseTensor)
            bonus = tf.sparse.to_dense(tf.sparse.reorder(raw["c"]), default_value=-1.0)
            return {"x": tf.reshape(raw["x"], [-1]) + tf.reshape(bonus, [-1])}

    inputs = {"x": tf.keras.Input([], name="x")}
    model = tf.keras.Model(inputs, {"t": tf.keras.layers.Activation("sigmoid")(inputs["x"])})
    export_dir = str(tmp_path / "m")
    raw_spec = {"x": tf.io.FixedLenFeature([1], tf.float32), "c": tf.io.VarLenFeature(tf.float32)}
    export_lib.export_saved_model(model, Transform(), raw_spec, ["t"], export_dir)
    loaded = tf.saved_model.load(export_dir)
    raw = loaded.signatures["predict_raw"](x=tf.constant([0.5, 1.0]), c=tf.constant([2.0, 0.0]))
    np.testing.assert_allclose(raw["t"].numpy(), 1 / (1 + np.exp(-np.array([2.5, 1.0]))),
                               rtol=1e-6)

    def example(**values):
        return tf.train.Example(features=tf.train.Features(feature={
            k: tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
            for k, v in values.items()})).SerializeToString()

    served = loaded.signatures["serving_default"](examples=tf.constant(
        [example(x=0.5, c=2.0), example(x=1.0)]))
    np.testing.assert_allclose(served["t"].numpy(), 1 / (1 + np.exp(-np.array([2.5, 0.0]))),
                               rtol=1e-6)
