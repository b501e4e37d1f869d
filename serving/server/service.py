"""The request handling shared by the REST and gRPC front ends.

`ServingCore` resolves a model spec to a loaded version through the `ModelManager` (holding a
reference for the request's whole duration), runs the signature in a thread pool (through the
`Batcher` for Predict when batching is on) and builds the status/metadata protos. Both front
ends translate their wire formats to these calls, so they cannot drift apart.
"""
import asyncio
import contextlib
import functools

import numpy as np

from drgrad.serving import model_config
from drgrad.serving.server import admission as admission_lib
from drgrad.serving.server import servable as servable_lib
from drgrad.serving.server.errors import deadline_exceeded, invalid_argument, not_found

# Requests this small (body bytes, or tensor elements) are parsed, converted and answered on
# the event loop: that takes tens of microseconds, less than the hand-off to a pool thread
# (which, under load, also waits for the GIL). Anything larger still never runs there.
SMALL_WORK = 8 << 10


def is_small(size):
    """Whether work on `size` bytes or elements is cheap enough for the event loop."""
    return size <= SMALL_WORK


_STATE_CODES = {"START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}
_CLASSIFY_METHOD = "tensorflow/serving/classify"
_REGRESS_METHOD = "tensorflow/serving/regress"


def _with_deadline(method):
    """Runs an inference coroutine under `limits.inference_timeout_seconds`.

    A timer cancels the request's own task: `asyncio.wait_for` would run the coroutine as a
    second task, a cost paid by every request.
    """
    @functools.wraps(method)
    async def wrapper(self, *args, **kwargs):
        seconds = self.limits.inference_timeout_seconds
        task = asyncio.current_task()
        expired = []

        def expire():
            expired.append(True)
            task.cancel()

        timer = asyncio.get_running_loop().call_later(seconds, expire)
        try:
            return await method(self, *args, **kwargs)
        except asyncio.CancelledError:
            if not expired:
                raise      # the client went away, not the deadline
            raise deadline_exceeded(f"Request did not finish within the inference deadline "
                                    f"of {seconds:g} s") from None
        finally:
            timer.cancel()
    return wrapper


class ServingCore:
    """Async serving operations over a `ModelManager`.

    Args:
      manager: `serving.server.manager.ModelManager`.
      executor: `concurrent.futures.Executor` for signature calls.
      batcher: optional `serving.server.batching.Batcher` used for Predict.
      limits: `serving.model_config.ServerLimits` (defaults if None).
      parse_executor: bounded `Executor` where request parsing and tensor conversion run, so
        the event loop never does that work (defaults to `executor`).
    """

    def __init__(self, manager, executor, batcher=None, limits=None, parse_executor=None):
        self.manager = manager
        self.executor = executor
        self.batcher = batcher
        self.limits = limits or model_config.ServerLimits()
        self.parse_executor = parse_executor or executor
        self.admission = admission_lib.Admission(self.limits.max_inflight_requests,
                                                 self.limits.max_queue_wait_seconds,
                                                 self.limits.retry_after_seconds)

    @property
    def inflight(self):
        """Admitted requests not answered yet."""
        return self.admission.inflight

    @contextlib.contextmanager
    def admit(self):
        """Admission control: past the in-flight bound or the longest queue wait, refuses at
        once (RESOURCE_EXHAUSTED), so overload is answered in microseconds instead of after
        seconds in a queue."""
        self.admission.admit()
        try:
            yield
        finally:
            self.admission.release()

    async def offload(self, fn, *args, inline=False):
        """Runs parsing/conversion work on the parse pool; `inline` (small work, see
        `is_small`) runs it here, as a thread hop would cost more than the work."""
        if inline:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self.parse_executor, fn, *args)

    def _check_model(self, name):
        if not name:
            raise invalid_argument("Missing model name in request.")

    async def _call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    @_with_deadline
    async def predict(self, name, version, label, signature_name, inputs, output_filter=(),
                      convert=None, inline=False):
        """Runs a signature. `convert(signature_info) -> {key: np.ndarray}` builds the inputs
        once the signature is known (both front ends check dtypes against it), on the parse
        pool (here with `inline`); else `inputs` is used.

        Returns `(version, signature_key, {output_key: np.ndarray})`.
        """
        self._check_model(name)
        with self.manager.acquire(name, version, label) as servable:
            info = servable.signature(signature_name)
            if convert is not None:
                inputs = await self.offload(convert, info, inline=inline)
            inputs = {k: np.asarray(v) for k, v in inputs.items()}
            unknown = [k for k in output_filter if k not in info.outputs]
            if unknown:
                raise invalid_argument(
                    f"output tensor alias not found in signature: {unknown[0]} Outputs expected "
                    f"to be in the set {sorted(info.outputs)}.")
            if self.batcher is not None:
                outputs = await self.batcher.run(servable, info.key, inputs)
            else:
                outputs = await self._call(servable.run, info.key, inputs)
            if output_filter:
                outputs = {k: outputs[k] for k in output_filter}
            return servable.version, info.key, outputs

    @_with_deadline
    async def regress(self, name, version, label, signature_name, examples):
        """Returns `(version, signature_key, float values [B])` for serialized examples."""
        self._check_model(name)
        with self.manager.acquire(name, version, label) as servable:
            info, values = await self._call(servable_lib.run_regress, servable, signature_name,
                                            examples)
            return servable.version, info.key, values

    @_with_deadline
    async def classify(self, name, version, label, signature_name, examples):
        """Returns `(version, signature_key, [[(label, score)]])` for serialized examples."""
        self._check_model(name)
        with self.manager.acquire(name, version, label) as servable:
            info, results = await self._call(servable_lib.run_classify, servable,
                                             signature_name, examples)
            return servable.version, info.key, results

    @_with_deadline
    async def multi_inference(self, tasks, examples):
        """`tasks`: [(name, version, label, signature_name, method_name)] of one model.

        Returns `[(version, signature_key, method_name, result)]` in task order.
        """
        if not tasks:
            raise invalid_argument("Tasks are empty")
        name, version, label = tasks[0][:3]
        if any(t[:3] != (name, version, label) for t in tasks):
            raise invalid_argument("Input model_spec must be the same for all tasks "
                                   "(one model and version)")
        seen = set()
        for task in tasks:
            signature = task[3] or servable_lib.DEFAULT_SIGNATURE
            if signature in seen:
                raise invalid_argument(f"Duplicate evaluation of signature: {signature}")
            seen.add(signature)
            if task[4] not in (_CLASSIFY_METHOD, _REGRESS_METHOD):
                raise invalid_argument(f"Unsupported signature method_name: {task[4]}")
        self._check_model(name)
        with self.manager.acquire(name, version, label) as servable:
            results = []
            for task in tasks:
                run = (servable_lib.run_classify if task[4] == _CLASSIFY_METHOD
                       else servable_lib.run_regress)
                info, result = await self._call(run, servable, task[3], examples)
                results.append((servable.version, info.key, task[4], result))
            return results

    def status(self, name, version=None, label=None):
        """`GetModelStatusResponse` for a model (all versions) or one version."""
        from tensorflow_serving.apis import get_model_status_pb2  # pylint: disable=g-import-not-at-top

        self._check_model(name)
        response = get_model_status_pb2.GetModelStatusResponse()
        for number, state, error in self.manager.status(name, version, label):
            entry = response.model_version_status.add(version=number,
                                                      state=_STATE_CODES[state])
            entry.status.SetInParent()   # TF Serving always reports a status (OK when fine)
            if error:
                entry.status.error_code = 2  # UNKNOWN
                entry.status.error_message = error
        return response

    def metadata(self, name, version=None, label=None):
        """Returns `(version, SignatureDefMap)` of the addressed (default: latest) version."""
        self._check_model(name)
        if name not in self.manager.model_names():
            raise not_found(f"Servable not found for request: Latest({name})")
        with self.manager.acquire(name, version, label) as servable:
            return servable.version, servable_lib.signature_def_map(servable)
