"""Hot swap: a new version copied into the base directory under a steady request stream
takes the traffic with zero failed requests; ModelService reloads configs."""
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


def _expected(seed, rows):
    _, model, transform = fx.tiny_export(seed)
    return fx.in_process(model, transform, rows)


def test_new_version_takes_traffic_with_zero_failures():
    base = fx.new_base_dir()
    write_model_version(base, "tiny", fx.tiny_export(0)[0], version=1)
    v2_dir = fx.tiny_export(1)[0]
    rows = fx.sample_rows(4, seed=9)
    expected = {1: _expected(0, rows), 2: _expected(1, rows)}
    assert not np.allclose(expected[1]["ctr"], expected[2]["ctr"], atol=1e-3)

    with fx.running_server(base, poll_seconds=0.1) as server:
        client = client_lib.connect(f"grpc://127.0.0.1:{server.grpc_port}", "tiny")
        seen, failures, stop = [], [], threading.Event()

        def stream():
            deadline = time.monotonic() + 120
            for _ in range(20000):              # bounded: a stream, not an endless loop
                if stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    response = client.predict_response(rows)
                    version = response.model_spec.version.value
                    ctr = client_lib._tensor_values(response.outputs["ctr"])
                    np.testing.assert_allclose(ctr, expected[version]["ctr"], atol=1e-5)
                    seen.append(version)
                except Exception as error:  # pylint: disable=broad-except
                    failures.append(error)

        thread = threading.Thread(target=stream)
        thread.start()
        try:
            deadline = time.monotonic() + 60
            while len(seen) < 5 and time.monotonic() < deadline and thread.is_alive():
                time.sleep(0.01)
            write_model_version(base, "tiny", v2_dir, version=2)
            while time.monotonic() < deadline and thread.is_alive():
                if seen and seen[-1] == 2 and seen.count(2) >= 5:
                    break
                time.sleep(0.01)
        finally:
            stop.set()
            thread.join()
        assert failures == []
        assert seen[0] == 1 and seen[-1] == 2
        switch = seen.index(2)
        assert set(seen[:switch]) == {1} and set(seen[switch:]) == {2}   # never back to 1
        status = client.status()["model_version_status"]
        assert [(s["version"], s["state"]) for s in status] == [("2", "AVAILABLE"),
                                                                ("1", "END")]
        client.close()


def test_handle_reload_config_request():
    base = fx.new_base_dir()
    write_model_version(base, "tiny", fx.tiny_export(0)[0], version=1)
    write_model_version(base, "half_plus_two", fx.half_plus_two_export(), version=1)
    with fx.running_server(base, poll_seconds=0) as server:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        config = model_config.read_server_config(f"{base}/models.config")
        del config.model_config_list.config[:1]          # keep half_plus_two only
        assert [m.name for m in config.model_config_list.config] == ["half_plus_two"]
        response = stub.HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(config=config), timeout=60)
        assert response.status.error_code == 0
        rest = client_lib.RestClient("127.0.0.1", server.rest_port, "tiny")
        with pytest.raises(client_lib.ServingClientError) as error:
            rest.predict_json({"instances": [{"b64": ""}]})
        assert error.value.code == 404
        assert rest.status()["model_version_status"][0]["state"] == "END"

        bad = model_management_pb2.ReloadConfigRequest()
        bad.config.custom_model_config.type_url = "x"
        with pytest.raises(grpc.RpcError) as rpc_error:
            stub.HandleReloadConfigRequest(bad, timeout=30)
        assert rpc_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        channel.close()
