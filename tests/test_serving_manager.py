"""Model manager: version policies, labels, polling and reference-counted unloading.

A fake loader stands in for SavedModels, so these tests exercise the state machine alone.
"""
import os

import grpc
import pytest

from drgrad.serving import model_config
from drgrad.serving.server.errors import ServingError
from drgrad.serving.server.manager import ModelManager, aspired_versions, list_versions


class FakeServable:
    def __init__(self, name, version, path):
        self.name, self.version, self.path = name, version, path


def _add_version(base, version):
    path = os.path.join(base, str(version))
    os.makedirs(path, exist_ok=True)
    open(os.path.join(path, "saved_model.pb"), "wb").close()
    return path


def _manager(base, unloaded=None, failing=(), **policy):
    config = model_config.new_server_config()
    model_config.upsert_model(config, "m", str(base), **policy)

    def loader(name, version, path):
        if version in failing:
            raise RuntimeError(f"corrupt version {version}")
        return FakeServable(name, version, path)

    return ModelManager(config, loader=loader, max_load_retries=2,
                        on_unload=(unloaded.append if unloaded is not None else None))


def _states(manager):
    return [(v, s) for v, s, _ in manager.status("m")]


def test_list_versions_ignores_temporaries_and_incomplete_dirs(tmp_path):
    _add_version(tmp_path, 3)
    _add_version(tmp_path, 12)
    os.makedirs(tmp_path / ".13.tmp-abcd")
    os.makedirs(tmp_path / "14")                    # no saved_model.pb yet
    (tmp_path / "15").write_text("a file, not a directory")
    os.makedirs(tmp_path / "notes")
    assert list_versions(str(tmp_path)) == [3, 12]
    assert list_versions(str(tmp_path / "missing")) == []


@pytest.mark.parametrize("policy, expected", [
    ({}, [9]),
    ({"num_latest": 2}, [5, 9]),
    ({"specific_versions": [1, 5, 42]}, [1, 5]),
])
def test_aspired_versions_per_policy(policy, expected):
    config = model_config.new_server_config()
    entry = model_config.upsert_model(config, "m", "/x", **policy)
    assert aspired_versions(entry, [1, 2, 5, 9]) == expected


def test_new_version_loads_then_old_unloads_after_its_requests(tmp_path):
    unloaded = []
    manager = _manager(tmp_path, unloaded)
    _add_version(tmp_path, 1)
    manager.poll()
    assert _states(manager) == [(1, "AVAILABLE")]
    with manager.acquire("m") as old:
        assert old.version == 1
        _add_version(tmp_path, 2)
        manager.poll()
        # New requests go to 2; 1 waits for the request in flight.
        assert _states(manager) == [(2, "AVAILABLE"), (1, "UNLOADING")]
        with manager.acquire("m") as new:
            assert new.version == 2
        assert unloaded == []
        with pytest.raises(ServingError) as error:
            manager.acquire("m", version=1).__enter__()
        assert error.value.code == grpc.StatusCode.NOT_FOUND
    assert [s.version for s in unloaded] == [1]
    assert _states(manager) == [(2, "AVAILABLE"), (1, "END")]


def test_failed_load_keeps_the_old_version_and_stops_retrying(tmp_path):
    manager = _manager(tmp_path, failing={2})
    _add_version(tmp_path, 1)
    manager.poll()
    _add_version(tmp_path, 2)
    for _ in range(4):
        manager.poll()
    status = {v: (s, e) for v, s, e in manager.status("m")}
    assert status[1] == ("AVAILABLE", "")
    assert status[2][0] == "END" and "corrupt version 2" in status[2][1]
    assert manager._models["m"][2].failures == 2        # max_load_retries
    assert manager.resolve_version("m") == 1


def test_labels_and_specific_versions(tmp_path):
    for version in (1, 2, 3):
        _add_version(tmp_path, version)
    manager = _manager(tmp_path, specific_versions=[1, 3], labels={"stable": 1, "canary": 3})
    manager.poll()
    assert _states(manager) == [(3, "AVAILABLE"), (1, "AVAILABLE")]
    assert manager.resolve_version("m", label="stable") == 1
    assert manager.resolve_version("m", label="canary") == 3
    assert manager.resolve_version("m") == 3
    with pytest.raises(ServingError, match="Unrecognized servable version label: beta"):
        manager.resolve_version("m", label="beta")
    with pytest.raises(ServingError, match=r"Specific\(m, 2\)"):
        manager.resolve_version("m", version=2)
    with pytest.raises(ServingError, match="Could not find version 2 of model m"):
        manager.status("m", version=2)


def test_reload_config_unloads_models_left_out(tmp_path):
    unloaded = []
    manager = _manager(tmp_path, unloaded)
    _add_version(tmp_path, 4)
    manager.poll()
    other = tmp_path / "other"
    _add_version(other, 1)
    config = model_config.new_server_config()
    model_config.upsert_model(config, "other", str(other))
    manager.reload_config(config)
    assert manager.resolve_version("other") == 1
    assert [s.version for s in unloaded] == [4]
    with pytest.raises(ServingError, match=r"Latest\(m\)"):
        manager.resolve_version("m")


def test_unknown_model_messages(tmp_path):
    manager = _manager(tmp_path)
    manager.poll()
    with pytest.raises(ServingError, match="Could not find any versions of model m"):
        manager.status("m")
    with pytest.raises(ServingError, match=r"Servable not found for request: Latest\(m\)"):
        manager.resolve_version("m")


def test_models_config_round_trip_and_validation(tmp_path):
    path = str(tmp_path / "models.config")
    config = model_config.new_server_config()
    model_config.upsert_model(config, "a", "a_dir", num_latest=2, labels={"stable": 3})
    model_config.write_server_config(path, config)
    text = open(path).read()
    assert 'name: "a"' in text and "num_versions: 2" in text and 'key: "stable"' in text
    # Relative base paths resolve against the config file's directory.
    assert model_config.read_server_config(path).model_config_list.config[0].base_path == str(
        tmp_path / "a_dir")
    for bad in ('model_config_list { config { name: "a" } }',
                'model_config_list { config { name: "a" base_path: "/x" } '
                'config { name: "a" base_path: "/y" } }',
                'model_config_list { config { name: "a" base_path: "/x" '
                'version_labels { key: "no-dash" value: 1 } } }',
                "custom_model_config { }",
                "model_config_list {"):
        with pytest.raises(ValueError):
            model_config.parse_server_config(bad)
