"""Version lifecycle of `drgrad serve` (issue 17), on a live loopback server, with the status
API (REST and gRPC) checked in every case:

* a version that is incomplete when first seen loads once it is completed, after the manager
  has used up its immediate retries;
* deleting the newest version falls back to the newest one left on disk;
* `HandleReloadConfigRequest` can remove a model and add it back;
* base paths outside the roots the server was started with are refused;
* a swap (and the rollback after it) under sustained load from several clients loses 0
  requests.
"""
import os
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc

import serving_fixtures as fx
from drgrad.serving import client as client_lib
from drgrad.serving import model_config
from drgrad.serving.export import write_model_version

pytestmark = pytest.mark.e2e
ROWS = fx.sample_rows(4, seed=5)


def _expected(seed):
    _, model, transform = fx.tiny_export(seed)
    return fx.in_process(model, transform, ROWS)["ctr"]


def wait_for(predicate, timeout=60.0):
    """Polls `predicate` (bounded) until it returns a truthy value; returns that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def versions(client):
    """`[(version, state, error_message)]` as the status API reports them."""
    return [(int(s["version"]), s["state"], s["status"]["error_message"])
            for s in client.status()["model_version_status"]]


def both_status(server, model="tiny"):
    """REST and gRPC status must agree; returns the REST one. The file-system poller may
    change a state between the two calls, so they are compared on a state that REST reports
    the same before and after the gRPC call (bounded retries)."""
    rest = client_lib.RestClient("127.0.0.1", server.rest_port, model)
    grpc_client = client_lib.GrpcClient("127.0.0.1", server.grpc_port, model)
    try:
        for _ in range(100):
            before, grpc_versions, after = versions(rest), versions(grpc_client), versions(rest)
            if before == after:
                assert before == grpc_versions
                return before
    finally:
        rest.close()
        grpc_client.close()
    raise AssertionError("the status kept changing during 100 reads")


def test_version_completed_after_the_retries_loads():
    base = fx.new_base_dir()
    write_model_version(base, "tiny", fx.tiny_export(0)[0], version=1)
    complete = fx.tiny_export(1)[0]
    half = os.path.join(base, "tiny", "2")
    with fx.running_server(base, poll_seconds=0.05) as server:
        manager = server.manager
        assert both_status(server) == [(1, "AVAILABLE", "")]
        os.makedirs(half)
        shutil.copy(os.path.join(complete, "saved_model.pb"), half)     # no variables yet
        wait_for(lambda: 2 in manager._models.get("tiny", {})
                 and manager._models["tiny"][2].failures >= manager._max_load_retries)
        status = both_status(server)
        assert status[1] == (1, "AVAILABLE", "")
        # Failed for now (or being retried after its backoff), with the load error reported.
        assert status[0][0] == 2 and status[0][1] in ("END", "LOADING") and status[0][2]
        for name in os.listdir(complete):
            if name != "saved_model.pb":
                source = os.path.join(complete, name)
                (shutil.copytree if os.path.isdir(source) else shutil.copy)(
                    source, os.path.join(half, name))
        wait_for(lambda: [(v, s) for v, s, _ in both_status(server)] == [(2, "AVAILABLE"),
                                                                         (1, "END")])
        assert both_status(server)[0] == (2, "AVAILABLE", "")
        client = client_lib.GrpcClient("127.0.0.1", server.grpc_port, "tiny")
        response = client.predict_response(ROWS)
        assert response.model_spec.version.value == 2
        np.testing.assert_allclose(client_lib._tensor_values(response.outputs["ctr"]),
                                   _expected(1), atol=1e-5)
        client.close()


def test_deleting_the_newest_versions_falls_back_to_the_newest_left():
    base = fx.new_base_dir()
    for version, seed in ((1, 0), (2, 1), (3, 0)):
        write_model_version(base, "tiny", fx.tiny_export(seed)[0], version=version)
    with fx.running_server(base, poll_seconds=0.05) as server:
        assert [(v, s) for v, s, _ in both_status(server)] == [(3, "AVAILABLE")]
        shutil.rmtree(os.path.join(base, "tiny", "3"))
        wait_for(lambda: [(v, s) for v, s, _ in both_status(server)] == [(3, "END"),
                                                                         (2, "AVAILABLE")])
        rest = client_lib.RestClient("127.0.0.1", server.rest_port, "tiny")
        np.testing.assert_allclose(rest.predict(ROWS)["ctr"], _expected(1), atol=1e-5)
        shutil.rmtree(os.path.join(base, "tiny", "2"))
        wait_for(lambda: [(v, s) for v, s, _ in both_status(server)] == [
            (3, "END"), (2, "END"), (1, "AVAILABLE")])
        np.testing.assert_allclose(rest.predict(ROWS)["ctr"], _expected(0), atol=1e-5)
        rest.close()


def _reload(server, config):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    try:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        return stub.HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(config=config), timeout=60)
    finally:
        channel.close()


def test_reload_config_removes_and_adds_back_a_model():
    base = fx.new_base_dir()
    write_model_version(base, "tiny", fx.tiny_export(0)[0], version=1)
    write_model_version(base, "half_plus_two", fx.half_plus_two_export(), version=1)
    full = model_config.read_server_config(os.path.join(base, "models.config"))
    with fx.running_server(base, poll_seconds=0) as server:
        without_tiny = model_config.read_server_config(os.path.join(base, "models.config"))
        del without_tiny.model_config_list.config[:1]
        assert _reload(server, without_tiny).status.error_code == 0
        assert both_status(server) == [(1, "END", "")]
        rest = client_lib.RestClient("127.0.0.1", server.rest_port, "tiny")
        with pytest.raises(client_lib.ServingClientError) as error:
            rest.predict(ROWS)
        assert error.value.code == 404
        assert _reload(server, full).status.error_code == 0
        assert both_status(server) == [(1, "AVAILABLE", "")]
        np.testing.assert_allclose(rest.predict(ROWS)["ctr"], _expected(0), atol=1e-5)
        rest.close()


def test_reload_config_refuses_base_paths_outside_the_model_base():
    base = fx.new_base_dir()
    write_model_version(base, "tiny", fx.tiny_export(0)[0], version=1)
    elsewhere = fx.new_base_dir()
    write_model_version(elsewhere, "tiny", fx.tiny_export(1)[0], version=7)
    with fx.running_server(base, poll_seconds=0) as server:
        for path in (os.path.join(elsewhere, "tiny"),
                     os.path.join(base, "..", os.path.basename(elsewhere), "tiny")):
            config = model_config.new_server_config()
            model_config.upsert_model(config, "tiny", path)
            with pytest.raises(grpc.RpcError) as error:
                _reload(server, config)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert path in error.value.details()
        assert both_status(server) == [(1, "AVAILABLE", "")]     # nothing changed
        inside = model_config.new_server_config()
        model_config.upsert_model(inside, "tiny", os.path.join(base, "tiny"))
        assert _reload(server, inside).status.error_code == 0


def test_swap_and_rollback_under_load_lose_no_request():
    """Four clients (two REST, two gRPC) keep sending while version 2 is published and then
    deleted again; every request must succeed with the outputs of the version it hit."""
    base = fx.new_base_dir()
    write_model_version(base, "tiny", fx.tiny_export(0)[0], version=1)
    expected = [_expected(0), _expected(1)]
    assert not np.allclose(expected[0], expected[1], atol=1e-3)
    with fx.running_server(base, poll_seconds=0.05) as server:
        stop, failures, hits = threading.Event(), [], []

        def load(make_client):
            client = make_client()
            try:
                for _ in range(5000):                   # bounded
                    if stop.is_set():
                        return
                    try:
                        ctr = client.predict(ROWS)["ctr"]
                        hits.append(next(i for i, want in enumerate(expected)
                                         if np.allclose(ctr, want, atol=1e-5)))
                    except Exception as error:  # pylint: disable=broad-except
                        failures.append(repr(error))
            finally:
                client.close()

        makers = [lambda: client_lib.RestClient("127.0.0.1", server.rest_port, "tiny"),
                  lambda: client_lib.GrpcClient("127.0.0.1", server.grpc_port, "tiny")] * 2
        threads = [threading.Thread(target=load, args=(m,)) for m in makers]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: len(hits) >= 20)
            write_model_version(base, "tiny", fx.tiny_export(1)[0], version=2)
            wait_for(lambda: hits.count(1) >= 20)
            shutil.rmtree(os.path.join(base, "tiny", "2"))
            wait_for(lambda: hits[-8:] == [0] * 8)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        assert failures == []
        assert hits.count(1) >= 20 and hits[-1] == 0
        assert [(v, s) for v, s, _ in both_status(server)] == [(2, "END"), (1, "AVAILABLE")]
