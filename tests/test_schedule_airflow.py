"""Tests for the Airflow target: the generated DAG file against a golden file and by AST.

Airflow cannot be installed beside TFX 1.16's pins here, so the file is compiled and inspected,
not imported.
"""
import ast
import datetime
import pathlib

import pytest

from drgrad.pipeline.schedules import airflow, cronexpr

GOLDEN = pathlib.Path(airflow.__file__).parent / "golden"


def make_dag(**overrides):
    args = dict(pipeline_name="drgrad-census", dataset="census", data_root="/data/census",
                run_root="/var/lib/drgrad/census", schedule=cronexpr.daily(2, 0),
                timezone="Europe/Berlin", start_date=datetime.date(2024, 3, 1),
                pipeline_args={"warm_start": True, "min_auc": {"income": 0.6}})
    args.update(overrides)
    return airflow.AirflowDag(**args)


def module_assignments(tree):
    return {target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def test_dag_file_matches_golden_file():
    assert make_dag().render() == (GOLDEN / "drgrad_census_dag.py").read_text()


def test_dag_file_parses_and_sets_schedule_start_date_and_catchup():
    source = make_dag().render()
    compile(source, "drgrad_census_dag.py", "exec")
    tree = ast.parse(source)
    names = module_assignments(tree)
    assert ast.literal_eval(names["PIPELINE_NAME"]) == "drgrad-census"
    assert ast.literal_eval(names["PIPELINE_ARGS"]) == {"warm_start": True,
                                                        "min_auc": {"income": 0.6}}
    config = names["AIRFLOW_DAG_CONFIG"]
    entries = {ast.literal_eval(key): value for key, value in zip(config.keys, config.values)}
    assert ast.literal_eval(entries["schedule_interval"]) == "0 2 * * *"
    assert ast.literal_eval(entries["catchup"]) is False
    assert ast.literal_eval(entries["max_active_runs"]) == 1
    start = entries["start_date"]
    assert ast.unparse(start.func) == "pendulum.datetime"
    assert [ast.literal_eval(arg) for arg in start.args] == [2024, 3, 1]
    assert {kw.arg: ast.literal_eval(kw.value) for kw in start.keywords} == {
        "tz": "Europe/Berlin"}
    # `DAG` is a module-level name (the Airflow scheduler only collects those), built by
    # AirflowDagRunner from AIRFLOW_DAG_CONFIG.
    dag = ast.unparse(names["DAG"])
    assert dag == ("AirflowDagRunner(AirflowPipelineConfig(airflow_dag_config="
                   "AIRFLOW_DAG_CONFIG)).run(_pipeline)")
    imports = {alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
               for alias in node.names}
    assert {"AirflowDagRunner", "AirflowPipelineConfig", "local_runner"} <= imports


def test_dag_file_imports_names_that_exist():
    import importlib.util

    # tfx's runner module imports airflow itself, so check the names in its source.
    spec = importlib.util.find_spec("tfx.orchestration.airflow.airflow_dag_runner")
    tree = ast.parse(pathlib.Path(spec.origin).read_text())
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    assert {"AirflowDagRunner", "AirflowPipelineConfig"} <= classes
    from drgrad.pipeline import local_runner
    assert callable(local_runner.build)


def test_write_uses_python_module_name(tmp_path):
    path = airflow.write(make_dag(), str(tmp_path))
    assert pathlib.Path(path).name == "drgrad_census_dag.py"
    assert pathlib.Path(path).read_text() == make_dag().render()


@pytest.mark.parametrize("overrides,message", [
    ({"pipeline_name": "Drgrad_Census"}, "pipeline name"),
    ({"schedule": "0 0 2 * * *"}, "needs 5"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"data_root": "data/census"}, "absolute path"),
    ({"dataset": "census; import os"}, "registry name"),
    ({"max_active_runs": 0}, "max_active_runs"),
    ({"pipeline_args": {"pipeline_name": "x"}}, "may not set"),
    ({"pipeline_args": {"when": datetime.date(2024, 1, 1)}}, "JSON-serializable"),
])
def test_rejects_bad_input(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_dag(**overrides)
