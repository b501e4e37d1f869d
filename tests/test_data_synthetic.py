"""Tests for data.synthetic: determinism, shapes and how the two tasks relate."""
import numpy as np
import pytest

from drgrad.data import synthetic
from drgrad.data.specs import SYNTHETIC


@pytest.fixture(scope="module")
def angle_frames():
    return {regime: synthetic.load(seed=0, regime=regime)
            for regime in ("cooperate", "conflict")}


def _agreement(frame):
    return float((frame["label1"] == frame["label2"]).mean())


def test_shapes_and_columns(angle_frames):
    frames = angle_frames["cooperate"]
    assert {split: len(frame) for split, frame in frames.items()} == {
        "train": 100_000, "eval": 10_000, "test": 10_000}
    assert list(frames["train"].columns) == list(SYNTHETIC.columns)
    assert len(SYNTHETIC.features) == 32 and len(SYNTHETIC.categorical) == 6
    for column in SYNTHETIC.categorical:
        ids = frames["train"][column]
        assert ids.dtype == np.int64
        assert ids.min() == 0 and ids.max() == synthetic.DEFAULT_SPARSE_BUCKETS - 1
    for column in SYNTHETIC.numeric:
        assert frames["train"][column].dtype == np.float64


def test_labels_binarized_at_train_median(angle_frames):
    train = angle_frames["conflict"]["train"]
    for task in SYNTHETIC.tasks:
        assert train[task].isin((0, 1)).all()
        assert train[task].mean() == pytest.approx(0.5, abs=1e-4)


def test_deterministic_under_seed():
    first = synthetic.load(seed=3, rows=500)
    again = synthetic.load(seed=3, rows=500)
    other = synthetic.load(seed=4, rows=500)
    for split in first:
        assert first[split].equals(again[split])
    assert not first["train"].equals(other["train"])


def test_rows_subsamples_without_changing_values(angle_frames):
    small = synthetic.load(seed=0, rows=1000)
    full = angle_frames["cooperate"]["train"]
    assert len(small["train"]) == 1000 and len(small["test"]) == 1000
    # Rows are a subset of the full split, with identical labels and features.
    merged = small["train"].merge(full, how="left", indicator=True)
    assert (merged["_merge"] == "both").all()


@pytest.mark.parametrize("cos", [0.9, 0.5, -0.5, -0.9])
def test_angle_label_correlation_follows_cos(cos):
    frame, continuous = synthetic.generate(seed=1, cos_theta=cos)
    correlation = np.corrcoef(continuous[:100_000].T)[0, 1]
    # label_k = w_k.f + noise(20 % of std): corr = cos / (1 + 0.2**2) when the z-scored terms are
    # uncorrelated; they are correlated through the row norms, so allow a loose band.
    expected = cos / (1 + synthetic.DEFAULT_NOISE ** 2)
    assert np.sign(correlation) == np.sign(cos)
    assert abs(correlation - expected) < 0.2
    # Binary agreement of a bivariate Gaussian split at the medians: 1/2 + arcsin(rho)/pi.
    agreement = _agreement(frame.iloc[:100_000])
    assert agreement == pytest.approx(0.5 + np.arcsin(correlation) / np.pi, abs=0.03)


def test_conflict_agrees_less_than_cooperate_but_is_no_mirror(angle_frames):
    cooperate = _agreement(angle_frames["cooperate"]["train"])
    conflict = _agreement(angle_frames["conflict"]["train"])
    assert cooperate > 0.6
    assert conflict < cooperate - 0.2
    assert 0.2 < conflict < 0.45  # Not complements: the labels still agree on many rows.


def test_paper_generator_conflict_is_exact_mirror_image():
    """The finding recorded in the paper generator's docstring (docs/REFERENCE.md)."""
    conflict = synthetic.load(seed=0, generator="paper", regime="conflict")
    cooperate = synthetic.load(seed=0, generator="paper", regime="cooperate")
    for split in ("train", "test"):
        # NOT label1 except for rows whose label1 is within the tiny noise of the median.
        assert _agreement(conflict[split]) < 0.001
        assert _agreement(cooperate[split]) > 0.999
    assert int((conflict["train"]["label1"] == conflict["train"]["label2"]).sum()) == 12


def test_paper_formula_by_hand():
    # One row: x = (1, 2): ||x^2|| = sqrt(1 + 16), ||x|| = sqrt(5).
    x = np.array([[1.0, 2.0]])
    expected = [4 * 1 / np.sqrt(17) + 5 * np.exp(1 / np.sqrt(5)) + 6 * np.sin(1.0),
                4 * 4 / np.sqrt(17) + 5 * np.exp(2 / np.sqrt(5)) + 6 * np.sin(2.0)]
    np.testing.assert_allclose(synthetic.feature_terms(x)[0], expected, rtol=1e-12)


def test_sparse_values_follow_the_printed_ranges():
    values = synthetic.sparse_values(np.random.RandomState(0), 20_000)
    for i in range(1, 7):
        # e^(u*k) in [1, e^(i+2)], u * k^(i/2+1) in [0, (i+2)^(i/2+1)].
        upper = np.exp(i + 2) + (i + 2) ** (i / 2 + 1)
        assert values[:, i - 1].min() >= 1.0 and values[:, i - 1].max() <= upper


def test_angle_weights_are_unit_vectors_at_the_angle():
    w1, w2 = synthetic.angle_weights(np.random.RandomState(0), 32, -0.5)
    assert np.linalg.norm(w1) == pytest.approx(1.0)
    assert np.linalg.norm(w2) == pytest.approx(1.0)
    assert w1 @ w2 == pytest.approx(-0.5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(regime="war"), "regime must be one of"),
    (dict(cos=1.5), r"cos must be in \[-1, 1\]"),
    (dict(cos=float("nan")), r"cos must be in \[-1, 1\]"),
    (dict(regime="conflict", cos=-0.5), "not both"),
    (dict(generator="gan"), "generator must be one of"),
    (dict(sparse_buckets=1), "sparse_buckets"),
    (dict(source="/tmp"), "takes no --source"),
    (dict(rows=0), "rows must be a positive integer"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthetic.load(**kwargs)
