"""`bench/serving_load.py`'s parsers and gRPC framing on canned load-generator output."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import pytest  # noqa: E402

from drgrad.bench import serving_load  # noqa: E402

H2LOAD_OUTPUT = """starting benchmark...
finished in 20.00s, 647.10 req/s, 90.81KB/s
requests: 12943 total, 12943 started, 12943 done, 12940 succeeded, 3 failed, 0 errored, 0 timeout
status codes: 12940 2xx, 0 3xx, 0 4xx, 3 5xx
traffic: 1.77MB (1859711) total, 202.91KB (207780) headers (space savings 95.48%), 1.52MB (1592019) data
"""


def test_h2load_output_and_its_per_request_log(tmp_path):
    log = tmp_path / "h2load.log"
    # start µs, HTTP status, µs to the end of the response: 10, 20, ..., 100 ms
    log.write_text("".join(f"1700000000{i:06d}\t200\t{(i + 1) * 10_000}\n" for i in range(10)))
    result = serving_load.parse_h2load(H2LOAD_OUTPUT, str(log))
    assert result["req_per_s"] == pytest.approx(647.10)
    assert (result["requests"], result["done"], result["succeeded"], result["failed"]) == (
        12943, 12943, 12940, 3)
    assert result["data_bytes"] == 1592019
    assert result["p50_ms"] == pytest.approx(55.0, abs=5.0)
    assert 90.0 <= result["p99_ms"] <= 100.0


def test_grpc_frame_is_an_uncompressed_length_prefixed_message():
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "drgrad"
    frame = serving_load.grpc_frame(request)
    payload = request.SerializeToString()
    assert frame[0] == 0 and int.from_bytes(frame[1:5], "big") == len(payload)
    assert frame[5:] == payload
