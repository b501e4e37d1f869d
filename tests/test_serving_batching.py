"""Batcher: merges concurrent requests, splits results exactly, isolates bad requests."""
import asyncio
import concurrent.futures
import threading

import grpc
import numpy as np
import pytest

from drgrad.serving.model_config import BatchingParameters
from drgrad.serving.server.batching import Batcher
from drgrad.serving.server.errors import ServingError


class _Signature:
    key = "serving_default"
    inputs = {"x": None}
    batchable = True


class FakeServable:
    """y = 2x + row-independent offset; records the batch sizes it computed. `gate` blocks
    the first call until released, so requests queue up behind it deterministically."""

    def __init__(self):
        self.sizes = []
        self.gate = threading.Event()

    def signature(self, name):
        return _Signature()

    def run(self, signature_name, inputs):
        self.gate.wait(timeout=30)
        x = inputs["x"]
        if np.any(x < 0):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "negative input")
        self.sizes.append(len(x))
        return {"y": 2.0 * x + 1.0, "id": np.arange(len(x))}


def _run(requests, params, servable):
    async def main():
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            batcher = Batcher(params, pool)
            tasks = [asyncio.ensure_future(batcher.run(servable, "serving_default", r))
                     for r in requests]
            await asyncio.sleep(0)              # every request is queued now
            servable.gate.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            return results, batcher
    return asyncio.run(main())


def test_concurrent_requests_merge_and_split_exactly():
    servable = FakeServable()
    requests = [{"x": np.arange(n, dtype=np.float32) + 10 * n} for n in (1, 2, 3, 1, 2)]
    results, batcher = _run(requests, BatchingParameters(max_batch_size=16,
                                                         num_batch_threads=1), servable)
    for request, result in zip(requests, results):
        np.testing.assert_array_equal(result["y"], 2.0 * request["x"] + 1.0)
        assert len(result["id"]) == len(request["x"])
    # All 9 rows arrived before the first call was released: one merged call of 9 rows.
    assert servable.sizes == [9]
    assert (batcher.batches_run, batcher.requests_run) == (1, 5)


def test_max_batch_size_bounds_every_call():
    servable = FakeServable()
    requests = [{"x": np.ones(3, np.float32) * i} for i in range(6)]
    results, _ = _run(requests, BatchingParameters(max_batch_size=7, num_batch_threads=1),
                      servable)
    assert all(size <= 7 for size in servable.sizes)
    assert sum(servable.sizes) == 18
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], np.full(3, 2.0 * i + 1.0))


def test_one_bad_request_fails_alone():
    servable = FakeServable()
    requests = [{"x": np.array([1.0], np.float32)}, {"x": np.array([-1.0], np.float32)},
                {"x": np.array([3.0], np.float32)}]
    results, _ = _run(requests, BatchingParameters(max_batch_size=8, num_batch_threads=1),
                      servable)
    np.testing.assert_array_equal(results[0]["y"], [3.0])
    assert isinstance(results[1], ServingError) and results[1].message == "negative input"
    np.testing.assert_array_equal(results[2]["y"], [7.0])


def test_full_queue_is_resource_exhausted():
    servable = FakeServable()
    requests = [{"x": np.ones(4, np.float32)} for _ in range(4)]
    results, _ = _run(requests, BatchingParameters(max_batch_size=4, max_enqueued_batches=2,
                                                   num_batch_threads=1), servable)
    errors = [r for r in results if isinstance(r, ServingError)]
    assert errors and all(e.code == grpc.StatusCode.RESOURCE_EXHAUSTED for e in errors)
    assert sum(1 for r in results if isinstance(r, dict)) == 2


@pytest.mark.parametrize("text, expected", [
    ("max_batch_size { value: 64 }\nbatch_timeout_micros { value: 500 }\n",
     BatchingParameters(max_batch_size=64, batch_timeout_micros=500)),
    ("# tuned\nnum_batch_threads { value: 4 }\npad_variable_length_inputs: true\n",
     BatchingParameters(num_batch_threads=4)),
])
def test_batching_parameters_text_round_trip(text, expected):
    assert BatchingParameters.from_text(text) == expected
    assert BatchingParameters.from_text(expected.to_text()) == expected


@pytest.mark.parametrize("kwargs", [{"max_batch_size": 0}, {"num_batch_threads": 0},
                                    {"batch_timeout_micros": -1}, {"max_batch_size": 2.5}])
def test_batching_parameters_reject_bad_values(kwargs):
    with pytest.raises(ValueError):
        BatchingParameters(**kwargs)


def test_batching_parameters_reject_garbage():
    with pytest.raises(ValueError, match="cannot parse"):
        BatchingParameters.from_text("max_batch_size = {{ 12")


@pytest.mark.parametrize("threads, cores, expected", [(2, 1, 1), (2, 2, 2), (8, 4, 4),
                                                      (1, 16, 1)])
def test_batch_threads_are_capped_at_the_usable_cores(threads, cores, expected):
    from drgrad.serving.server.app import cap_batch_threads

    params = BatchingParameters(num_batch_threads=threads, max_batch_size=32)
    capped = cap_batch_threads(params, cores)
    assert capped.num_batch_threads == expected
    assert capped.max_batch_size == 32          # nothing else changes
    assert cap_batch_threads(None, 1) is None   # batching off stays off


def test_server_caps_batch_threads_and_freezes_what_it_loaded():
    import gc

    import serving_fixtures as fx
    from drgrad.serving.export import write_model_version
    from drgrad.serving.server.app import usable_cores

    base = fx.new_base_dir()
    write_model_version(base, "hp2", fx.half_plus_two_export(), version=1)
    params = BatchingParameters(num_batch_threads=usable_cores() + 3)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with fx.running_server(base, model_name="hp2", batching=params) as server:
        assert server.batcher._params.num_batch_threads == usable_cores()  # pylint: disable=protected-access
        # The loaded model and TensorFlow are out of the collector's sight.
        assert gc.get_freeze_count() > 0
    gc.unfreeze()
