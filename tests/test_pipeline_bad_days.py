"""Bad data days through the data half of the pipeline (`data_only=True`: ExampleGen ->
StatisticsGen -> ImportSchemaGen -> ExampleValidator -> ValidationGate [-> Transform]).

One small clean span per dataset (300 rows per split) is built once; each day is a copy of it
with defects injected into the train split, each defect in its own column so one run proves
several kinds and the gate's message must name every column:

* census day 1: a new column `tip`; 30 % nulls in the feature `education`; nulls in the label
  `income`; label 2 in `marital`;
* census day 2: label -1 in `income`; label 0.5 in `marital`;
* census day 3: an empty span (the CSV header only, in train and eval);
* synthetic day 1 (census has only integer numerics): NaN in the float `dense_0`, inf in
  `dense_1`.

The census days share one pipeline root and MLMD store (a span per day, as the daily runs do).
Every run must fail before Transform, record no Transform execution in MLMD, and leave a
pre-existing serving directory byte-for-byte unchanged.

Four data-half runs instead of nine: the whole module took 129 s alone on the 2-core dev
machine, 33 s after another e2e module in the same session (`pytest --durations`).
"""
import csv
import hashlib
import os
import shutil

import pytest

pytestmark = pytest.mark.e2e

ROWS = 300
OPTIONS = dict(data_only=True, enable_cache=True)


def _copy_span(clean_root, data_root, span, edit, edited_splits=("train",)):
    """`<data_root>/span-<span>` = the clean span-1, the rows of `edited_splits` passed through
    `edit` (`edit(rows, columns) -> columns`, editing `rows` in place)."""
    for split in ("train", "eval"):
        source = os.path.join(clean_root, "span-1", split, "part-00000.csv")
        target = os.path.join(data_root, f"span-{span}", split, "part-00000.csv")
        os.makedirs(os.path.dirname(target))
        if split not in edited_splits:
            shutil.copyfile(source, target)
            continue
        with open(source, newline="") as handle:
            rows = list(csv.DictReader(handle))
        columns = edit(rows, list(rows[0]))
        with open(target, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)


def _census_day_1(rows, columns):
    """New column `tip`; `education` null in 3 rows of 10; `income` null in 1 of 50; a 2 in
    `marital`."""
    for i, row in enumerate(rows):
        row["tip"] = str(i % 7)
        if i % 10 < 3:
            row["education"] = ""
        if i % 50 == 0:
            row["income"] = ""
    rows[5]["marital"] = "2"
    return columns + ["tip"]


def _census_day_2(rows, columns):
    """A -1 in the label `income`, a 0.5 in the label `marital`."""
    rows[7]["income"] = "-1"
    rows[8]["marital"] = "0.5"
    return columns


def _empty(rows, columns):
    """The header only (applied to every split: an empty span)."""
    rows.clear()
    return columns


def _synthetic_day_1(rows, columns):
    """A NaN in the float `dense_0`, an inf in `dense_1`."""
    rows[4]["dense_0"] = "nan"
    rows[9]["dense_1"] = "inf"
    return columns


def _tree_digest(directory):
    """`{relative path: sha256}` of every file under `directory`."""
    digest = {}
    for parent, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(parent, name)
            with open(path, "rb") as handle:
                digest[os.path.relpath(path, directory)] = hashlib.sha256(
                    handle.read()).hexdigest()
    return digest


def _fake_serving_version(paths):
    version = os.path.join(paths.serving_model_dir, "1")
    os.makedirs(version)
    with open(os.path.join(version, "saved_model.pb"), "wb") as handle:
        handle.write(b"a model pushed on a good day")
    return _tree_digest(paths.serving_dir)


def _run(data_root, paths, dataset):
    """Runs the data half, which must fail with the gate's `DataValidationError`; returns (its
    message, {node: [execution state, ...]} from MLMD)."""
    from drgrad.pipeline import local_runner
    from drgrad.pipeline.validation_gate import DataValidationError

    with pytest.raises(DataValidationError) as failure:
        local_runner.run(data_root, paths.root, dataset, **OPTIONS)
    states = {node: [state for state, _ in runs]
              for node, runs in local_runner.component_timings(paths).items()}
    return str(failure.value), states


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    from drgrad.data.datasets import build
    from drgrad.data.specs import get_spec
    from drgrad.pipeline import local_runner

    tmp = tmp_path_factory.mktemp("bad_days")
    record = {}
    for dataset, edits in (("census", [_census_day_1, _census_day_2, _empty]),
                           ("synthetic", [_synthetic_day_1])):
        clean = build(dataset, str(tmp / "clean" / dataset), rows=ROWS)["path"]
        data_root = str(tmp / "data" / dataset)
        paths = local_runner.RunPaths(root=str(tmp / "run" / dataset),
                                      model_name=get_spec(dataset).name)
        before = _fake_serving_version(paths)
        for span, edit in enumerate(edits, start=1):
            _copy_span(clean, data_root, span, edit,
                       edited_splits=("train", "eval") if edit is _empty else ("train",))
            record[(dataset, span)] = _run(data_root, paths, dataset)
        record[dataset] = (before, _tree_digest(paths.serving_dir))
    return record


@pytest.mark.parametrize("day, column, problem", [
    (("census", 1), "tip", "New column (column in data but not in schema)"),
    # 30 % nulls in a feature, nulls in a label: presence 100 % and `shape {}`.
    (("census", 1), "education", "The feature has a shape, but it's not always present"),
    (("census", 1), "income", "The feature has a shape, but it's not always present"),
    (("census", 1), "marital", "Unexpectedly large value: 2."),  # int_domain {0, 1}
    (("census", 2), "income", "Unexpectedly small value: -1."),
    (("census", 2), "marital", "Expected data of type: INT but got FLOAT"),  # label 0.5
    (("synthetic", 1), "dense_0", "Float feature has NaN values."),  # disallow_nan
    (("synthetic", 1), "dense_1", "Float feature has Inf values."),  # disallow_inf
])
def test_bad_day_stops_at_the_gate_naming_the_column(days, day, column, problem):
    message, states = days[day]
    assert f"data span {day[1]} failed validation" in message
    assert f"  [train] {column}: {problem}" in message, message
    assert states["ValidationGate"][-1] == "FAILED"
    assert not states.get("Transform")


def test_empty_span_stops_before_transform_naming_the_span(days):
    message, states = days[("census", 3)]
    assert "data span 3 has no examples in split(s) eval, train" in message, message
    assert states["ValidationGate"][-1] == "FAILED"
    assert not states.get("Transform")


@pytest.mark.parametrize("dataset", ["census", "synthetic"])
def test_serving_directory_is_byte_for_byte_unchanged(days, dataset):
    before, after = days[dataset]
    assert before and after == before
