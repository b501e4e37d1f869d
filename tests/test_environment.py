"""The stack the project promises: Keras 2 through tf.keras, and every named library imports."""
import os
import subprocess
import sys

import pytest


def test_legacy_keras_flag_is_set_for_the_test_process():
    assert os.environ["TF_USE_LEGACY_KERAS"] == "1"


def test_tf_keras_is_tf_keras_2_16():
    import tensorflow as tf
    import tf_keras

    assert tf_keras.__version__.startswith("2.16."), tf_keras.__version__
    # tf.keras resolves to the tf_keras package, not Keras 3.
    assert tf.keras.Model is tf_keras.Model
    assert tf.__version__ == "2.16.2"


@pytest.mark.parametrize("module", [
    "tensorflow_recommenders",
    "tensorflow_io",
    "tfx.v1",
    "tensorflow_serving.apis.prediction_service_pb2_grpc",
    "tensorflow_transform",
    "tensorflow_model_analysis",
    "apache_beam",
])
def test_stack_module_imports(module):
    __import__(module)


def test_pins_match_the_installed_versions():
    from importlib import metadata

    expected = {
        "tfx": "1.16.0", "tensorflow": "2.16.2", "tf-keras": "2.16.0",
        "tensorflow-transform": "1.16.0", "tensorflow-data-validation": "1.16.1",
        "tensorflow-model-analysis": "0.47.1", "tfx-bsl": "1.16.1", "ml-metadata": "1.16.0",
        "apache-beam": "2.67.0", "tensorflow-io": "0.37.1", "tensorflow-serving-api": "2.16.1",
        "tensorflow-recommenders": "0.7.7", "kfp": "2.5.0", "protobuf": "3.20.3",
    }
    installed = {name: metadata.version(name) for name in expected}
    assert installed == expected
    assert int(metadata.version("setuptools").split(".")[0]) < 81
    assert int(metadata.version("pip").split(".")[0]) < 25


def test_package_init_sets_legacy_keras_before_tensorflow(tmp_path):
    # A fresh interpreter with the variable unset: importing any project package sets it.
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    code = ("import model, os; assert os.environ['TF_USE_LEGACY_KERAS'] == '1'; "
            "import tensorflow as tf, tf_keras; assert tf.keras.Model is tf_keras.Model; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(__file__)), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_find_python_rejects_a_wrong_interpreter(repo_root):
    script = repo_root / "scripts" / "find_python.sh"
    bad = subprocess.run(["bash", str(script)], env={**os.environ, "PYTHON": "/bin/true"},
                         capture_output=True, text=True)
    assert bad.returncode != 0
    assert "not a Python 3.10" in bad.stderr
    good = subprocess.run(["bash", str(script)], env={**os.environ, "PYTHON": sys.executable},
                          capture_output=True, text=True)
    assert good.returncode == 0 and good.stdout.strip()


@pytest.mark.parametrize("argv, message", [
    (["no-such-command"], "invalid choice"),
    ([], "required"),
])
def test_cli_bad_arguments_give_a_message_not_a_traceback(argv, message):
    out = subprocess.run([sys.executable, "-m", "drgrad.cli", *argv], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr
