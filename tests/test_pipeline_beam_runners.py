"""Beam runners of the pipeline's data components: `drgrad pipeline run|compile --runner ...`
turned into Beam arguments (configs.beam_pipeline_args), and the DirectRunner in
`multi_processing` mode with 2 workers giving the same ExampleGen and Transform output as
`in_memory`, record by record."""
import glob
import os

import numpy as np
import pytest

from drgrad.cli.main import main
from drgrad.pipeline import configs

ROWS = 300


@pytest.fixture
def run_calls(tmp_path, monkeypatch):
    """`drgrad pipeline run` with the runner replaced: records what it was given."""
    from drgrad.pipeline import local_runner

    (tmp_path / "data" / "census-income" / "span-1").mkdir(parents=True)
    calls = {}

    def fake_run(data_root, root, dataset, **kwargs):
        calls.update(kwargs)
        return local_runner.RunPaths(root=root, model_name=dataset)

    monkeypatch.setattr(local_runner, "run", fake_run)
    monkeypatch.setattr(local_runner, "latest_outputs", lambda paths: {
        "evaluation": None, "blessing": None, "blessed": None, "pushed": None,
        "pushed_destination": None})

    def run(*flags):
        calls.clear()
        code = main(["pipeline", "run", "--data-root", str(tmp_path / "data"), "--root",
                     str(tmp_path / "run"), *flags])
        return code, calls.get("beam_pipeline_args")
    return run


def test_direct_runner_is_the_default_and_takes_workers(run_calls):
    no_image = f"--sdk_container_image={configs.DIRECT_RUNNER_NO_IMAGE}"
    assert run_calls() == (0, ["--runner=DirectRunner", "--direct_running_mode=in_memory",
                               "--direct_num_workers=1", no_image])
    assert run_calls("--runner", "direct", "--beam-workers", "2")[1] == [
        "--runner=DirectRunner", "--direct_running_mode=multi_processing",
        "--direct_num_workers=2", no_image]


def test_tfx_builds_no_throwaway_sdist_for_the_direct_runner(monkeypatch):
    from tfx.utils import dependency_utils

    def build_ephemeral_package():
        raise AssertionError("TFX built an ephemeral package for the DirectRunner")

    monkeypatch.setattr(dependency_utils, "build_ephemeral_package", build_ephemeral_package)
    for workers in (1, 2):
        args = configs.direct_beam_args_by_workers(workers)
        assert dependency_utils.make_beam_dependency_flags(args) == args
    # Without the flag TFX would build one (what the test above guards against).
    with pytest.raises(AssertionError, match="ephemeral"):
        dependency_utils.make_beam_dependency_flags(["--runner=DirectRunner"])


def test_dataflow_takes_project_region_and_temp_location(run_calls):
    code, args = run_calls("--runner", "dataflow", "--project", "p", "--region",
                           "europe-west4", "--temp-location", "gs://b/tmp",
                           "--worker-image", "gcr.io/p/img:2")
    assert code == 0
    assert args == ["--runner=DataflowRunner", "--project=p", "--region=europe-west4",
                    "--temp_location=gs://b/tmp", "--experiments=use_runner_v2",
                    "--sdk_container_image=gcr.io/p/img:2"]


def test_flink_and_spark_take_a_master_or_a_job_server(run_calls):
    code, args = run_calls("--runner", "flink", "--job-endpoint", "flink-js:8099",
                           "--environment-type", "EXTERNAL", "--environment-config",
                           "localhost:50000")
    assert code == 0
    assert args[:3] == ["--runner=PortableRunner", "--job_endpoint=flink-js:8099",
                        "--parallelism=2"]
    assert "--environment_type=EXTERNAL" in args
    assert "--environment_config=localhost:50000" in args
    code, args = run_calls("--runner", "spark", "--master", "http://spark:6066",
                           "--environment-type", "DOCKER")
    assert code == 0
    assert args[:3] == ["--runner=SparkRunner", "--spark_rest_url=http://spark:6066",
                        "--spark_submit_uber_jar"]
    assert "--environment_config=gcr.io/YOUR_PROJECT/drgrad-pipeline:latest" in args


@pytest.mark.parametrize("flags, message", [
    (["--runner", "dataflow", "--project", "p"], "needs --region, --temp-location"),
    (["--runner", "flink"], "needs a master URL"),
    (["--runner", "spark", "--master", "http://m:6066", "--job-endpoint", "js:8099"],
     "one of them"),
    (["--runner", "flink", "--master", "http://m:8081", "--environment-type", "EXTERNAL"],
     "EXTERNAL needs --environment-config"),
    (["--project", "p", "--master", "http://m:8081"],
     "not used by --runner direct: --master, --project"),
    (["--runner", "dataflow", "--beam-workers", "2"], "not used by --runner dataflow"),
])
def test_missing_or_foreign_runner_options_are_one_line_errors(run_calls, capsys, flags,
                                                               message):
    assert run_calls(*flags) == (1, None)
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error, error


def test_runner_options_are_checked_before_any_data_is_built(tmp_path, capsys):
    assert main(["pipeline", "run", "--root", str(tmp_path / "run"), "--rows", "10",
                 "--runner", "flink"]) == 1
    assert "needs a master URL" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_compile_carries_the_runner_into_the_pipeline(tmp_path, capsys):
    assert main(["pipeline", "compile", "--target", "vertex", "--out", str(tmp_path),
                 "--image", "gcr.io/p/img:1", "--runner", "dataflow", "--project", "p",
                 "--region", "r", "--temp-location", "gs://b/tmp"]) == 0
    compiled = (tmp_path / "pipeline.json").read_text()
    # Dataflow workers default to the pipeline image.
    for arg in ("--runner=DataflowRunner", "--temp_location=gs://b/tmp",
                "--sdk_container_image=gcr.io/p/img:1"):
        assert arg in compiled


def _records(pattern):
    """Every tf.Example of the GZIP TFRecord files matching `pattern`, as
    `{feature: tuple of values}`, sorted by their value tuples."""
    import tensorflow as tf

    files = sorted(glob.glob(pattern))
    assert files, pattern
    records = []
    for serialized in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        example = tf.train.Example.FromString(serialized.numpy())
        records.append({name: tuple(getattr(feature, feature.WhichOneof("kind")).value)
                        for name, feature in example.features.feature.items()})
    # Floats (z-scores) are rounded in the key only: analyzers may sum in another order.
    return sorted(records, key=lambda r: [(k, tuple(round(v, 4) if isinstance(v, float)
                                                    else v for v in r[k])) for k in sorted(r)])


@pytest.fixture(scope="module")
def data_runs(tmp_path_factory):
    """The data half of the pipeline (ExampleGen ... Transform), once per DirectRunner mode."""
    from tfx import v1 as tfx

    from drgrad.data.datasets import build
    from drgrad.pipeline import configs, local_runner

    tmp = tmp_path_factory.mktemp("beam_modes")
    data_root = build("census", str(tmp / "data"), rows=ROWS)["path"]
    roots = {}
    for mode, workers in (("in_memory", 1), ("multi_processing", 2)):
        args = configs.beam_pipeline_args("direct", direct_running_mode=mode,
                                          direct_num_workers=workers)
        pipeline, paths = local_runner.build(data_root, str(tmp / mode), "census",
                                             enable_cache=False, data_only=True,
                                             beam_pipeline_args=args)
        assert pipeline.beam_pipeline_args == args
        tfx.orchestration.LocalDagRunner().run(pipeline)
        roots[mode] = paths.pipeline_root
    return roots


@pytest.mark.e2e
@pytest.mark.parametrize("split", ["train", "eval"])
def test_multi_processing_examples_equal_in_memory(data_runs, split):
    pattern = os.path.join("{}", "CsvExampleGen", "examples", "*", f"Split-{split}", "*")
    single = _records(pattern.format(data_runs["in_memory"]))
    multi = _records(pattern.format(data_runs["multi_processing"]))
    assert len(single) == ROWS
    assert multi == single


@pytest.mark.e2e
@pytest.mark.parametrize("split", ["train", "eval"])
def test_multi_processing_transform_equals_in_memory(data_runs, split):
    pattern = os.path.join("{}", "Transform", "transformed_examples", "*", f"Split-{split}",
                           "*")
    single = _records(pattern.format(data_runs["in_memory"]))
    multi = _records(pattern.format(data_runs["multi_processing"]))
    assert len(single) == len(multi) == ROWS
    assert set(single[0]) >= {"age", "education", "income", "marital"}
    for one, other in zip(single, multi):
        assert one.keys() == other.keys()
        for name, values in one.items():
            if isinstance(values[0], float):
                np.testing.assert_allclose(other[name], values, rtol=1e-5, atol=1e-6,
                                           err_msg=name)
            else:
                assert other[name] == values, name


def test_in_memory_side_inputs_are_not_weighed_during_a_local_run(monkeypatch):
    """Beam's embedded worker weighs each cached side input with objsize (slow with TF loaded);
    `local_runner.unweighed_side_inputs` turns that cache off for the run, and only for it."""
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import worker_handlers
    from apache_beam.runners.worker import statecache

    from drgrad.pipeline import local_runner

    weighed = []
    real_get_deep_size = statecache.get_deep_size
    monkeypatch.setattr(statecache, "get_deep_size",
                        lambda *objs: weighed.append(objs) or real_get_deep_size(*objs))

    from apache_beam.testing.util import assert_that, equal_to

    def run_with_a_side_input():
        with beam.Pipeline(argv=["--runner=DirectRunner",
                                 "--direct_running_mode=in_memory"]) as p:
            offset = p | "Offset" >> beam.Create([10])
            shifted = (p | beam.Create(list(range(20))) | beam.Reshuffle()
                       | beam.Map(lambda x, s: x + s, beam.pvalue.AsSingleton(offset)))
            assert_that(shifted, equal_to(list(range(10, 30))))

    size = worker_handlers.STATE_CACHE_SIZE_MB
    run_with_a_side_input()
    assert weighed    # Beam's default weighs the cached side input
    weighed.clear()
    with local_runner.unweighed_side_inputs():
        run_with_a_side_input()
    assert weighed == [] and worker_handlers.STATE_CACHE_SIZE_MB == size
