"""drgrad.bench.census_study and drgrad.bench.synthetic_study: the cell lists behind docs/RESULTS.md."""
import importlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from drgrad.bench import harness
from drgrad.bench.presets import GRIDS
from drgrad.data import census
from drgrad.model.config import ModelConfig


def _study(name="census_study"):
    return importlib.import_module(f"drgrad.bench.{name}")


def test_study_cells_cover_table3_variants_and_routing_levels_once():
    study = _study()
    cells = study.study_cells()
    names = [cell.name for cell in cells]
    assert len(names) == len(set(names))
    for preset in ("paper-table3", "drgrad-variants", "upstream"):
        assert {cell.name for cell in GRIDS[preset]} <= set(names), preset
    assert set(study.FIVE_SEED_CELLS) <= set(names)
    per_example = cells[names.index(study.PER_EXAMPLE_UPSTREAM)]
    assert per_example.role == "ours"
    assert per_example.strategy_args == {"variant": "upstream", "upstream_mode": "example"}
    # A name the study's presets share is one configuration (its run dirs serve both).
    for preset in ("paper-table3", "drgrad-variants", "upstream", "gradcraft"):
        for cell in GRIDS[preset]:
            if cell.name in names:
                assert cells[names.index(cell.name)] == cell, (preset, cell.name)
    harness._check_cells(cells, ["income", "marital"])  # every cell builds its strategy


def test_synthetic_study_single_task_references_have_the_narrow_width():
    study = _study("synthetic_study")
    shared_32 = next(c for c in GRIDS["narrow"] if c.name == "shared_bottom_32")
    for k, cell in enumerate(study.NARROW_SINGLE_TASK):
        assert (cell.role, cell.single_task) == ("single_task", k)
        assert cell.backbone_args == shared_32.backbone_args == {"bottom_units": [32]}
        assert cell.task_weights(["label1", "label2"]) == {
            "label1": float(k == 0), "label2": float(k == 1)}
    names = [c.name for c in GRIDS["narrow"] + study.NARROW_SINGLE_TASK]
    assert len(names) == len(set(names))


# --- the authors' protocol (issue #18): streaming AUC, grids, one tiny run ------------------
def test_streaming_auc_hand_computed():
    # Positives 0.9, 0.3025; negatives 0.304, 0.1. Exact AUC: 3 of 4 pairs ordered = 0.75.
    # Thresholds k/199: 0.3025 and 0.304 share the bin (60/199, 61/199] = (0.30151, 0.30653],
    # so the ROC steps (FPR, TPR) = (1, 1) -> (0.5, 1) [0.1 drops] -> (0, 0.5) [both drop]
    # -> (0, 0): trapezoids 0.5·1 + 0.5·(1 + 0.5)/2 = 0.875 (the tie in a bin earns half).
    study = _study()
    labels, scores = [1, 1, 0, 0], [0.9, 0.3025, 0.304, 0.1]
    assert abs(study.streaming_auc(labels, scores) - 0.875) < 1e-5
    # 0.3025 -> 0.29 moves the positive a bin down: no shared bin, the exact 0.75.
    assert abs(study.streaming_auc(labels, [0.9, 0.29, 0.304, 0.1]) - 0.75) < 1e-5


def test_streaming_auc_is_tf1_metrics_auc():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    scores = np.clip(0.3 * labels + rng.uniform(size=500) * 0.7, 0.0, 1.0).astype(np.float32)
    with tf.Graph().as_default():
        auc, update = tf.compat.v1.metrics.auc(tf.constant(labels), tf.constant(scores))
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.local_variables_initializer())
            session.run(update)
            expected = session.run(auc)
    assert abs(_study().streaming_auc(labels, scores) - expected) < 1e-5


def test_released_grids_build():
    cells = GRIDS["drgrad-released"] + GRIDS["drgrad-released-extra"]
    assert [c.name for c in cells] == ["mmoe", "cgc2", "cgc2+drgrad_released", "ple", "drgrad"]
    assert cells[2].role == "ours" and cells[2].paper == "drgrad"
    harness._check_cells(cells, ["income", "marital"])


def test_authors_protocol_run(tmp_path):
    rows = harness.run_bench("census", "cgc2:drgrad_released", str(tmp_path), seeds=1, epochs=1,
                             rows=64, batch_size=32, plots=False, verbose=False,
                             protocol="authors")
    row, = rows
    assert row["status"] == "ok", row["error"]
    for task in ("income", "marital"):
        assert 0.0 <= row[f"test_{task}"] <= 1.0 and 0.0 <= row[f"auc200_{task}"] <= 1.0
    with open(os.path.join(row["run_dir"], "metrics.json")) as f:
        metrics = json.load(f)
    assert (metrics["protocol"], metrics["epochs"], metrics["batch_size"]) == ("authors", 1, 32)
    record_path = os.path.join(os.path.dirname(row["run_dir"]), "cell.json")
    with open(record_path) as f:
        assert json.load(f)["protocol"] == "authors"
    with open(os.path.join(tmp_path, "report.md")) as f:
        assert "- protocol: authors (docs/REFERENCE.md; authors': census 229,285" in f.read()
    # The same --out under the pinned protocol is another protocol: refused before training.
    with pytest.raises(ValueError, match="another configuration or protocol"):
        harness.run_bench("census", "cgc2:drgrad_released", str(tmp_path), seeds=1, epochs=1,
                          rows=64, batch_size=32, plots=False, verbose=False)


@pytest.mark.parametrize("variant,positive_weights,test_rows", [
    ("authors-unweighted", None, 70_000),           # the authors' split, income positives x1
    ("authors-pinned-split", {"income": 3.0}, 49_881),   # the pinned split, positives x3
])
def test_authors_ablations(tmp_path, monkeypatch, variant, positive_weights, test_rows):
    study = _study()
    loaded = {}

    def recording(loader):
        def load(rows):
            loaded.update(loader())     # the full splits, kept to check which split was read
            return {split: frame.head(rows) for split, frame in loaded.items()}
        return load

    monkeypatch.setattr(census, "load", recording(census.load))
    monkeypatch.setattr(census, "load_authors", recording(census.load_authors))
    cell = GRIDS["drgrad-released"][0]           # MMoE: the cheapest cell
    metrics = study.train_authors(str(tmp_path), cell, seed=0, epochs=1, rows=64,
                                  variant=variant)
    assert metrics["protocol"] == variant
    assert len(loaded["test"]) == test_rows
    config = ModelConfig.load(os.path.join(tmp_path, "model_config.json"))
    assert config.positive_weights == positive_weights
    with pytest.raises(ValueError, match="variant must be one of"):
        study.train_authors(str(tmp_path), cell, seed=0, variant="authors-x")


def test_authors_protocol_is_census_only(tmp_path):
    for protocol in ("authors", "authors-pinned-split", "authors-unweighted"):
        with pytest.raises(ValueError, match=f"--protocol {protocol} needs --dataset census"):
            harness.run_bench("synthetic", "quick", str(tmp_path), protocol=protocol)
    with pytest.raises(ValueError, match="protocol must be one of"):
        harness.run_bench("census", "quick", str(tmp_path), protocol="paper")
