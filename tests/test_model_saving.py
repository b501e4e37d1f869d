"""Saving: `.keras` files, TF checkpoints and `save_trained`/`load_trained` give the same
predictions, μ and strategy state included."""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from drgrad.model import FeatureConfig, ModelConfig, build_model  # noqa: E402
from drgrad.training.run_dir import load_trained, save_trained  # noqa: E402

FC = FeatureConfig(categorical={"c": 5, "user": 7}, numeric=("x",), personalization=("user",),
                   embedding_dim=3)
TASKS = ["click", "like"]
TINY = {"num_experts": 3, "expert_units": 4, "tower_units": [4]}


def data(n=64, seed=0):
    rng = np.random.RandomState(seed)
    features = {"c": rng.randint(0, 5, n), "user": rng.randint(0, 7, n),
                "x": rng.randn(n).astype(np.float32)}
    labels = {"click": (features["x"] > 0).astype(np.float32),
              "like": (features["c"] > 2).astype(np.float32)}
    return features, labels


@pytest.fixture(scope="module")
def trained():
    model = build_model(FC, TASKS, backbone_args=TINY, seed=1)
    features, labels = data()
    model.fit(features, labels, batch_size=16, epochs=2, verbose=0)
    assert model.backbone.use_ppnet  # personalization configured -> PPNet present
    assert not np.allclose(model.mixer.mu.numpy(), [0.5, 0.5])
    return model


def assert_same_predictions(a, b, features):
    pa, pb = a(features), b(features)
    assert sorted(pa) == sorted(pb) == sorted(TASKS)
    for task in TASKS:
        assert pa[task].dtype == tf.float32 and pa[task].shape == (len(features["x"]),)
        np.testing.assert_allclose(pa[task].numpy(), pb[task].numpy(), rtol=1e-6, atol=1e-7)


def test_keras_file_round_trip(trained, tmp_path):
    path = str(tmp_path / "model.keras")
    trained.save(path)
    loaded = tf.keras.models.load_model(path)
    assert_same_predictions(trained, loaded, data(seed=5)[0])
    np.testing.assert_allclose(loaded.mixer.mu.numpy(), trained.mixer.mu.numpy())
    np.testing.assert_allclose(loaded.strategy.sigma.numpy(), trained.strategy.sigma.numpy())


def test_checkpoint_round_trip(trained, tmp_path):
    prefix = str(tmp_path / "ckpt" / "model")
    trained.save_weights(prefix)
    fresh = build_model(**trained.model_config.build_kwargs())
    fresh.load_weights(prefix)
    assert_same_predictions(trained, fresh, data(seed=6)[0])
    np.testing.assert_allclose(fresh.mixer.mu.numpy(), trained.mixer.mu.numpy())


def test_save_and_load_trained(trained, tmp_path):
    save_trained(trained, str(tmp_path))
    model, preprocessor, config = load_trained(str(tmp_path))
    assert preprocessor is None and isinstance(config, ModelConfig)
    assert config.to_dict() == trained.model_config.to_dict()
    assert_same_predictions(trained, model, data(seed=7)[0])


def test_load_trained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_config.json"):
        load_trained(str(tmp_path))
    ModelConfig(feature_config=FC, tasks=TASKS).save(str(tmp_path / "model_config.json"))
    with pytest.raises(FileNotFoundError, match="no weights"):
        load_trained(str(tmp_path))


def test_feature_order_does_not_change_the_rebuilt_model(tmp_path):
    # Regression: model_config.json sorts its keys; a model built from an unsorted feature dict
    # must still load back with identical predictions (same embedding layout).
    unsorted = FeatureConfig(categorical={"user": 7, "c": 5}, numeric=("x",),
                             personalization=("user",), embedding_dim=3)
    assert list(unsorted.categorical) == ["c", "user"]
    model = build_model(unsorted, TASKS, backbone_args=TINY, seed=3)
    features, labels = data(seed=4)
    model.fit(features, labels, batch_size=16, epochs=1, verbose=0)
    save_trained(model, str(tmp_path))
    loaded, _, _ = load_trained(str(tmp_path))
    np.testing.assert_allclose(loaded(features)["click"].numpy(), model(features)["click"].numpy(),
                               atol=1e-6)


def test_variables_are_named_by_checkpoint_path_the_same_in_every_rebuild(trained, tmp_path):
    from drgrad.model import saving  # pylint: disable=g-import-not-at-top

    saving.save(trained, str(tmp_path), vocabularies={"c": list("abcd"), "user": list("uvwxyz")})
    paths = saving.variable_paths(trained)
    saved = saving.read_weights(str(tmp_path))
    assert set(paths) == set(saved)          # every variable, optimizer slots included
    assert "backbone/embedding/tables/user/embeddings" in paths
    assert "mixer/mu" in paths
    for path, variable in paths.items():
        np.testing.assert_array_equal(saved[path], variable.numpy())
    # A second model in the same process gets other Keras names ("multi_task_model_1/...")
    # but the same paths.
    rebuilt = saving.load(str(tmp_path))
    assert [v.name for v in rebuilt.variables] != [v.name for v in trained.variables]
    assert set(saving.variable_paths(rebuilt)) == set(paths)
    assert saving.read_vocabularies(str(tmp_path))["c"] == list("abcd")
    assert saving.read_config(str(tmp_path)).to_dict() == trained.model_config.to_dict()
