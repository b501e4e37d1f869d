"""`ModelServer`: the manager, the REST and the gRPC front ends on one event loop.

    server = ModelServer.from_model_base("runs/demo/serving", rest_port=0, grpc_port=0)
    server.start()            # loads the models, binds the ports, serves in a thread
    print(server.rest_port, server.grpc_port)
    server.stop()

Both front ends run on a single asyncio loop in one background thread; signature calls run in
a thread pool (TensorFlow releases the GIL while computing), so the loop stays responsive.
"""
import asyncio
import concurrent.futures
import dataclasses
import gc
import logging
import os
import socket
import threading

from drgrad.serving import model_config as model_config_lib
from drgrad.serving.server import manager as manager_lib

_log = logging.getLogger(__name__)


def resolve_server_config(model_base, model_name=None):
    """The `ModelServerConfig` for `drgrad serve --model-base DIR [--model-name NAME]`.

    1. `DIR/models.config` exists: it is used (only NAME's entry when NAME is given).
    2. DIR has integer version children (a Pusher's serving_model_dir): one model, named NAME
       or after DIR.
    3. Otherwise each child directory holding versions is a model; with NAME, `DIR/NAME` is
       served (and polled until versions appear).
    """
    if not os.path.isdir(model_base):
        raise FileNotFoundError(f"model base directory {model_base} does not exist")
    model_base = os.path.abspath(model_base)
    config_path = os.path.join(model_base, model_config_lib.MODELS_CONFIG)
    if os.path.isfile(config_path):
        config = model_config_lib.read_server_config(config_path)
        if model_name is not None:
            entries = [m for m in config.model_config_list.config if m.name == model_name]
            if not entries:
                raise ValueError(f"model {model_name!r} is not in {config_path}")
            del config.model_config_list.config[:]
            config.model_config_list.config.extend(entries)
        return config
    config = model_config_lib.new_server_config()
    if manager_lib.list_versions(model_base):
        name = model_name or os.path.basename(model_base.rstrip(os.sep))
        model_config_lib.upsert_model(config, name, model_base)
        return config
    if model_name is not None:
        model_config_lib.upsert_model(config, model_name, os.path.join(model_base, model_name))
        return config
    for child in sorted(os.listdir(model_base)):
        path = os.path.join(model_base, child)
        if os.path.isdir(path) and manager_lib.list_versions(path):
            model_config_lib.upsert_model(config, child, path)
    if not config.model_config_list.config:
        raise FileNotFoundError(
            f"No versions of servable found under base path {model_base}. Did you forget to name "
            f"your leaf directory as a number (eg. '/1/')?")
    return config


def usable_cores():
    """CPUs this process may run on (its affinity mask: 1 under `taskset -c 0`)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # no affinity API on this platform
        return os.cpu_count() or 1


def cap_batch_threads(batching, cores):
    """`batching` with at most `cores` batch threads (None stays None).

    A batch closes as soon as a batch thread is free, so batch threads beyond the cores the
    process may use add no compute, only smaller batches: on one core two threads each run
    half-empty batches, and a batch-1 call costs about what a batch-16 call costs. Measured on
    one pinned core, h2load 64 clients batch 1: 886 req/s with 2 threads, 1,047 with 1
    (docs/RELIABILITY.md, fourth run).
    """
    if batching is None or batching.num_batch_threads <= cores:
        return batching
    _log.info("batching: %d batch threads capped at the %d usable core(s)",
              batching.num_batch_threads, cores)
    return dataclasses.replace(batching, num_batch_threads=cores)


def _bind(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ValueError(f"cannot bind {host}:{port}: {error.strerror}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class ModelServer:
    """TF Serving-compatible REST + gRPC server over a `ModelServerConfig`.

    Args:
      config: `ModelServerConfig` (see `resolve_server_config`).
      host: interface to bind; 127.0.0.1 by default (loopback only).
      rest_port, grpc_port: ports; 0 picks a free one (read `.rest_port`/`.grpc_port`), None
        disables that front end.
      batching: `BatchingParameters` to batch Predict across requests, or None for no batching.
      poll_seconds: file-system poll interval (<= 0 polls only at start).
      num_threads: thread-pool size for signature calls.
      limits: `serving.model_config.ServerLimits` (request sizes, timeouts, admission).
      allowed_roots: directories `HandleReloadConfigRequest` may point base paths into
        (default: the base paths of `config`).
    """

    def __init__(self, config, host="127.0.0.1", rest_port=8501, grpc_port=8500,
                 batching=None, poll_seconds=1.0, num_threads=None, limits=None,
                 allowed_roots=None):
        if rest_port is None and grpc_port is None:
            raise ValueError("enable at least one of rest_port and grpc_port")
        for label, port in (("rest_port", rest_port), ("grpc_port", grpc_port)):
            if port is not None and not 0 <= int(port) <= 65535:
                raise ValueError(f"{label} must be in [0, 65535], got {port}")
        self.host = host
        self.rest_port = rest_port
        self.grpc_port = grpc_port
        self._poll_seconds = poll_seconds
        self._batching = cap_batch_threads(batching, usable_cores())
        threads = num_threads or max(
            4, (self._batching.num_batch_threads if self._batching else 0) + 2)
        self._executor = concurrent.futures.ThreadPoolExecutor(threads,
                                                               thread_name_prefix="serving")
        self.limits = limits or model_config_lib.ServerLimits()
        self._parse_executor = concurrent.futures.ThreadPoolExecutor(
            self.limits.parse_threads, thread_name_prefix="serving-parse")
        self.manager = manager_lib.ModelManager(config, allowed_roots=allowed_roots,
                                                on_unload=self._collect_unloaded)
        self.core = None
        self._loop = None
        self._thread = None
        self._stopped = None
        self._ready = threading.Event()
        self._error = None

    @classmethod
    def from_model_base(cls, model_base, model_name=None, batching="auto", **kwargs):
        """Builds a server for a base directory; `batching="auto"` reads
        `batching_parameters.txt` there if present, else uses the defaults
        (the batch threads capped by `cap_batch_threads`)."""
        config = resolve_server_config(model_base, model_name)
        kwargs.setdefault("allowed_roots", [model_base] + [
            m.base_path for m in config.model_config_list.config])
        if batching == "auto":
            path = os.path.join(model_base, model_config_lib.BATCHING_PARAMETERS)
            batching = (model_config_lib.BatchingParameters.read(path) if os.path.isfile(path)
                        else model_config_lib.BatchingParameters())
        return cls(config, batching=batching, **kwargs)

    def start(self, timeout=120.0):
        """Loads the models (first poll), binds the ports and serves in a background thread."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        self.manager.start(self._poll_seconds)
        # Everything loaded so far (TensorFlow, the models: about a million objects) lives
        # as long as the server; out of the collector's sight, a full collection no longer
        # walks it, which stalled every request for tens of ms (docs/RELIABILITY.md).
        gc.freeze()
        sockets = {}
        if self.rest_port is not None:
            sockets["rest"] = _bind(self.host, int(self.rest_port))
            self.rest_port = sockets["rest"].getsockname()[1]
        self._thread = threading.Thread(target=self._run, args=(sockets,), name="model-server",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("model server did not start in time")
        if self._error is not None:
            self.stop()
            raise self._error
        _log.info("serving %s: REST %s:%s gRPC %s:%s", self.manager.model_names(), self.host,
                  self.rest_port, self.host, self.grpc_port)
        return self

    def _collect_unloaded(self, servable):
        """Once a version is unloaded: frozen objects are never collected, so the version's
        reference cycles (frozen at start with everything else) would leak. One full
        collection, off the caller's thread (it may be the event loop), then freeze again."""
        del servable    # the collection runs once the caller has dropped it too

        def refreeze():
            gc.unfreeze()
            gc.collect()
            gc.freeze()
        try:
            self._executor.submit(refreeze)
        except RuntimeError:        # stopping: the pool no longer takes work
            pass

    def _run(self, sockets):
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve(sockets))
        except BaseException as error:  # pylint: disable=broad-except
            self._error = error if isinstance(error, Exception) else RuntimeError(str(error))
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self, sockets):
        # Heavy imports here: `drgrad --help` and config helpers stay light.
        import grpc  # pylint: disable=g-import-not-at-top
        from aiohttp import web  # pylint: disable=g-import-not-at-top

        from drgrad.serving.server import batching as batching_lib  # pylint: disable=g-import-not-at-top
        from drgrad.serving.server import grpc_service  # pylint: disable=g-import-not-at-top
        from drgrad.serving.server import rest  # pylint: disable=g-import-not-at-top
        from drgrad.serving.server import service  # pylint: disable=g-import-not-at-top

        self._stopped = asyncio.Event()
        batcher = (batching_lib.Batcher(self._batching, self._executor)
                   if self._batching is not None else None)
        self.core = service.ServingCore(self.manager, self._executor, batcher, self.limits,
                                        self._parse_executor)
        runner = grpc_server = None
        idle_ms = int(self.limits.idle_timeout_seconds * 1000)
        try:
            if self.grpc_port is not None:
                options = [
                    ("grpc.max_receive_message_length", self.limits.max_body_bytes),
                    ("grpc.max_send_message_length", -1),
                    ("grpc.max_connection_idle_ms", idle_ms),
                    ("grpc.keepalive_time_ms", idle_ms),
                    ("grpc.keepalive_timeout_ms", idle_ms),
                    ("grpc.so_reuseport", 0),
                    # A call no handler has taken yet waits in grpc's own queue, out of sight
                    # of admission control: grpc.aio takes new calls one at a time on the
                    # event loop, so under 4x overload calls waited there up to the client's
                    # 30-s deadline (answered after p50 16 s). grpc cancels a call that
                    # waited there a full second (measured: answered calls p50 1.0 s, the
                    # rest CANCELLED; docs/RELIABILITY.md). `grpc.server.max_pending_requests`
                    # and its hard limit (256 / 512), tried with it, refused nothing.
                    ("grpc.server_max_unrequested_time_in_server", 1),
                ]
                # Backstop for admission control: RPCs that pile up before a handler runs
                # (event loop saturated) are refused by gRPC itself with RESOURCE_EXHAUSTED.
                grpc_server = grpc.aio.server(
                    options=options,
                    maximum_concurrent_rpcs=2 * self.limits.max_inflight_requests)
                grpc_service.add_services(grpc_server, self.core, self._executor)
                port = grpc_server.add_insecure_port(f"{self.host}:{int(self.grpc_port)}")
                if port == 0:
                    raise ValueError(f"cannot bind gRPC port {self.host}:{self.grpc_port}")
                self.grpc_port = port
                await grpc_server.start()
            if "rest" in sockets:
                runner = web.ServerRunner(rest.RestApi(self.core).make_server())
                await runner.setup()
                await web.SockSite(runner, sockets["rest"]).start()
            self._ready.set()
            await self._stopped.wait()
        finally:
            if grpc_server is not None:
                await grpc_server.stop(grace=1.0)
            if runner is not None:
                await runner.cleanup()
            for sock in sockets.values():
                sock.close()

    def stop(self):
        """Stops serving, the poller and the thread pool. Safe to call twice."""
        if self._loop is not None and self._stopped is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.manager.stop()
        self._executor.shutdown(wait=True)
        self._parse_executor.shutdown(wait=True)

    @property
    def batcher(self):
        return self.core.batcher if self.core is not None else None

    def wait(self):
        """Blocks until the server thread ends (the CLI's foreground mode)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
