"""`drgrad export`: a standalone run published in TF Serving layout serves exactly what the
in-process model predicts, from raw tf.Examples (the preprocessor travels inside)."""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from drgrad import data  # noqa: E402
from drgrad.model import build_model  # noqa: E402
from drgrad.training.run_dir import save_trained  # noqa: E402
from drgrad.training.train import feature_config_for  # noqa: E402
from drgrad.cli import main as cli  # noqa: E402


def _examples(frame, spec):
    out = []
    for _, row in frame.iterrows():
        feature = {}
        for name in spec.features:
            kind = spec.raw_dtypes[name]
            if kind == "int":
                feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(row[name])]))
            elif kind == "float":
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[row[name]]))
            else:
                feature[name] = tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[str(row[name]).encode()]))
        out.append(tf.train.Example(features=tf.train.Features(feature=feature))
                   .SerializeToString())
    return tf.constant(out)


def test_export_serves_the_in_process_predictions(tmp_path, capsys):
    spec = data.get_spec("synthetic")
    frames = data.load_frames("synthetic", rows=300, seed=0)
    preprocessor = data.FeaturePreprocessor(spec).fit(frames["train"])
    model = build_model(feature_config_for(spec, preprocessor), spec.tasks, seed=0,
                        backbone_args={"num_experts": 2, "expert_units": 8, "tower_units": [4]})
    train = preprocessor.to_dataset(frames["train"], batch_size=64, shuffle=True, seed=0)
    model.fit(train, epochs=1, verbose=0)
    run_dir = tmp_path / "run"
    save_trained(model, str(run_dir), preprocessor)

    base = tmp_path / "serving"
    assert cli.main(["export", "--run-dir", str(run_dir), "--model-base", str(base),
                     "--model-name", "syn", "--version", "7"]) == 0
    assert "exported" in capsys.readouterr().out
    version_dir = base / "syn" / "7"
    assert (version_dir / "saved_model.pb").is_file()
    assert (base / "models.config").is_file()

    rows = frames["test"].head(16)
    served = tf.saved_model.load(str(version_dir)).signatures["serving_default"](
        examples=_examples(rows, spec))
    expected = model(preprocessor.transform(rows))
    assert sorted(served) == sorted(spec.tasks)
    for task in spec.tasks:
        np.testing.assert_allclose(tf.reshape(served[task], [-1]).numpy(),
                                   expected[task].numpy(), atol=1e-5)


def test_export_of_a_missing_run_is_a_one_line_error(tmp_path, capsys):
    code = cli.main(["export", "--run-dir", str(tmp_path / "nope"), "--model-base",
                     str(tmp_path / "base")])
    assert code == 1
    err = capsys.readouterr().err
    assert "drgrad export: error:" in err and "Traceback" not in err
