"""Request batching across concurrent requests, like TF Serving's `--enable_batching`.

Requests for the same servable and signature, with inputs of the same dtypes and inner shapes,
queue together. A batch closes when it reaches `max_batch_size` rows, or after
`batch_timeout_micros`, and then waits for one of `num_batch_threads` compute slots; requests
that arrive meanwhile join the next batch. So with a timeout of 0 an idle server adds no delay,
and a busy one merges whatever queued while it computed. A merged batch runs the signature
once on the inputs concatenated along dim 0 and splits the outputs back per request, so each
request gets exactly the rows an unbatched call would give (row-independent inference graphs).

If a merged batch fails, its requests rerun one by one, so one bad request cannot fail others.
Unlike TF Serving, a request larger than `max_batch_size` is run on its own rather than refused.
"""
import asyncio
import collections

import grpc
import numpy as np

from drgrad.serving.server.errors import ServingError


class _Task:
    __slots__ = ("inputs", "rows", "future")

    def __init__(self, inputs, rows, future):
        self.inputs, self.rows, self.future = inputs, rows, future


class Batcher:
    """Merges concurrent `servable.run` calls; lives on one asyncio event loop.

    Args:
      params: `serving.model_config.BatchingParameters`.
      executor: `concurrent.futures.Executor` where the signature calls run.
    """

    def __init__(self, params, executor):
        self._params = params
        self._executor = executor
        self._queues = collections.defaultdict(collections.deque)
        self._queued_rows = collections.Counter()
        self._draining = set()
        self._slots = None
        self.batches_run = 0      # merged calls made (for tests and stats)
        self.requests_run = 0     # requests served through merged calls

    async def run(self, servable, signature_name, inputs):
        """Returns `servable.run(signature_name, inputs)`, possibly computed in a merged batch."""
        loop = asyncio.get_running_loop()
        info = servable.signature(signature_name)
        rows = _batch_rows(inputs)
        if (not info.batchable or rows is None or rows > self._params.max_batch_size
                or set(inputs) != set(info.inputs)):
            return await loop.run_in_executor(self._executor, servable.run, info.key, inputs)
        key = (id(servable), info.key,
               tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items())))
        limit = self._params.max_enqueued_batches * self._params.max_batch_size
        if self._queued_rows[key] + rows > limit:
            raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               "The batch scheduling queue to which this task was submitted "
                               "is full")
        task = _Task(inputs, rows, loop.create_future())
        self._queues[key].append(task)
        self._queued_rows[key] += rows
        if key not in self._draining:
            self._draining.add(key)
            loop.create_task(self._drain(key, servable, info.key))
        return await task.future

    async def _drain(self, key, servable, signature_key):
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._params.num_batch_threads)
        if self._params.batch_timeout_micros and len(self._queues[key]) < 2:
            await asyncio.sleep(self._params.batch_timeout_micros / 1e6)
        async with self._slots:
            queue, batch, rows = self._queues[key], [], 0
            while queue and rows + queue[0].rows <= self._params.max_batch_size:
                task = queue.popleft()
                batch.append(task)
                rows += task.rows
            self._queued_rows[key] -= rows
            if queue:
                asyncio.get_running_loop().create_task(self._drain(key, servable, signature_key))
            else:
                self._draining.discard(key)
                del self._queues[key]
                del self._queued_rows[key]
            await self._compute(servable, signature_key, batch)

    async def _compute(self, servable, signature_key, batch):
        loop = asyncio.get_running_loop()
        if len(batch) == 1:
            await _settle(loop.run_in_executor(self._executor, servable.run, signature_key,
                                               batch[0].inputs), batch[0].future)
            return
        merged = {k: np.concatenate([t.inputs[k] for t in batch], axis=0)
                  for k in batch[0].inputs}
        try:
            outputs = await loop.run_in_executor(self._executor, servable.run, signature_key,
                                                 merged)
            total = sum(t.rows for t in batch)
            if any(np.shape(v)[:1] != (total,) for v in outputs.values()):
                raise ValueError("an output is not batched along dim 0")
        except Exception:  # pylint: disable=broad-except
            # One bad request must not fail the others: rerun each on its own.
            await asyncio.gather(*(self._compute(servable, signature_key, [t]) for t in batch))
            return
        self.batches_run += 1
        self.requests_run += len(batch)
        start = 0
        for task in batch:
            stop = start + task.rows
            if not task.future.done():
                task.future.set_result({k: v[start:stop] for k, v in outputs.items()})
            start = stop


async def _settle(awaitable, future):
    try:
        result = await awaitable
    except Exception as error:  # pylint: disable=broad-except
        if not future.done():
            future.set_exception(error)
    else:
        if not future.done():
            future.set_result(result)


def _batch_rows(inputs):
    """The shared dim-0 size of all inputs, or None when they disagree or are scalars."""
    sizes = {np.shape(v)[0] if np.ndim(v) >= 1 else None for v in inputs.values()}
    if len(sizes) != 1:
        return None
    (size,) = sizes
    return size if size else None
