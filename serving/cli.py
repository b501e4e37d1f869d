"""`drgrad serve` and `drgrad predict`.

    drgrad serve --model-base runs/demo/serving --rest-port 8501 --grpc-port 8500
    drgrad predict --server grpc://127.0.0.1:8500 --model census --input rows.jsonl
    drgrad serve --model-base /srv/drgrad/serving --k8s-manifests k8s/   # serving/k8s.py

Nothing heavy is imported until a handler runs, and nothing from `model/` ever is.
"""
import argparse
import dataclasses
import json
import os
import sys


def register(subparsers):
    serve = subparsers.add_parser(
        "serve", help="serve SavedModels over TF Serving's REST and gRPC APIs",
        description="Local TF Serving-compatible server: REST (aiohttp) and gRPC on one event "
                    "loop, file-system version polling, request batching.")
    serve.add_argument("--model-base", required=True,
                       help="base directory: with models.config, a model's version directory "
                            "parent, or a directory of model directories")
    serve.add_argument("--rest-port", type=int, default=8501, help="REST port (0: pick one)")
    serve.add_argument("--grpc-port", type=int, default=8500, help="gRPC port (0: pick one)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback)")
    serve.add_argument("--model-name", default=None,
                       help="serve only this model (or name the model in a version directory)")
    serve.add_argument("--poll-seconds", type=float, default=1.0,
                       help="file-system poll interval for new versions; <= 0 polls once")
    serve.add_argument("--batching-parameters", default=None,
                       help="BatchingParameters text file (default: "
                            "<model-base>/batching_parameters.txt if present)")
    serve.add_argument("--no-batching", action="store_true",
                       help="run every Predict request on its own")
    serve.add_argument("--ready-file", default=None,
                       help="write {'rest_port', 'grpc_port', 'pid'} JSON here once serving")
    _add_limit_flags(serve)
    _add_k8s_flags(serve)
    serve.set_defaults(func=_serve)

    predict = subparsers.add_parser(
        "predict", help="send raw feature rows (JSON lines) to a server and print predictions")
    predict.add_argument("--server", required=True, help="rest://host:port or grpc://host:port")
    predict.add_argument("--model", required=True, help="model name")
    predict.add_argument("--input", required=True, help="JSON-lines file of raw feature rows")
    predict.add_argument("--version", type=int, default=None, help="model version")
    predict.add_argument("--label", default=None, help="model version label")
    predict.add_argument("--timeout", type=float, default=30.0, help="request timeout (s)")
    predict.set_defaults(func=_predict)


_LIMIT_HELP = {
    "max_body_bytes": "largest REST body / gRPC message accepted",
    "max_decompressed_bytes": "largest REST body after gzip/deflate Content-Encoding",
    "max_batch_rows": "most rows (examples) in one request",
    "max_json_depth": "deepest array/object nesting of a REST body",
    "max_tensor_elements": "most elements of one input tensor (from its declared shape)",
    "max_inflight_requests": "requests admitted at once; beyond, 429/RESOURCE_EXHAUSTED",
    "retry_after_seconds": "Retry-After hint sent with those refusals",
    "idle_timeout_seconds": "close a connection with no complete request header this long",
    "body_timeout_seconds": "time allowed to receive a REST body (408 after)",
    "inference_timeout_seconds": "per-request deadline (504 / DEADLINE_EXCEEDED after)",
    "parse_threads": "threads parsing JSON and converting tensors off the event loop",
    "max_queue_wait_seconds": "refuse (429/RESOURCE_EXHAUSTED) a request predicted to wait "
                              "longer behind those in flight, once 64 are",
}


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def _add_limit_flags(parser):
    """One `--flag` per `ServerLimits` field, its default the field's (safe) default."""
    from drgrad.serving import model_config  # pylint: disable=g-import-not-at-top

    group = parser.add_argument_group("request limits and timeouts")
    for field in dataclasses.fields(model_config.ServerLimits):
        group.add_argument(f"--{field.name.replace('_', '-')}", type=_positive(field.type),
                           default=field.default,
                           help=f"{_LIMIT_HELP[field.name]} (default {field.default})")


def _add_k8s_flags(parser):
    """`--k8s-manifests DIR`: write Kubernetes manifests for the official image, serve nothing."""
    from drgrad.serving import k8s  # pylint: disable=g-import-not-at-top

    group = parser.add_argument_group(
        "Kubernetes (serving/k8s/README.md)",
        "with --k8s-manifests DIR: write deployment.yaml, service.yaml, hpa.yaml (and pvc.yaml) "
        "for tensorflow/serving on --model-base (mounted at its own absolute path, so "
        "models.config is read unchanged), then exit")
    group.add_argument("--k8s-manifests", default=None, metavar="DIR",
                       help="write the manifests here instead of serving")
    group.add_argument("--k8s-name", default="drgrad-serving",
                       help="Deployment / Service / autoscaler name (default drgrad-serving)")
    group.add_argument("--k8s-namespace", default=None, help="namespace (default: none set)")
    group.add_argument("--image", default=k8s.DEFAULT_IMAGE,
                       help=f"TF Serving image (default {k8s.DEFAULT_IMAGE})")
    group.add_argument("--replicas", type=_positive(int), default=2,
                       help="initial and minimum replicas (default 2)")
    group.add_argument("--max-replicas", type=_positive(int), default=8,
                       help="autoscaler maximum (default 8)")
    group.add_argument("--volume", choices=k8s.VOLUMES, default="pvc",
                       help="model base volume: a ReadWriteMany PersistentVolumeClaim (default) "
                            "or the node's hostPath (single-node clusters)")
    group.add_argument("--storage", default="10Gi", help="claim size (default 10Gi)")
    group.add_argument("--storage-class", default=None,
                       help="claim storage class (default: the cluster's)")
    for flag, default in (("cpu-request", "1"), ("memory-request", "2Gi"),
                          ("cpu-limit", "2"), ("memory-limit", "4Gi")):
        group.add_argument(f"--{flag}", default=default, help=f"container {flag} (default "
                                                               f"{default})")
    group.add_argument("--target-cpu-percent", type=_positive(int), default=70,
                       help="autoscaler CPU utilization target, %% of the request (default 70)")


def _write_k8s(args):
    from drgrad.serving import k8s  # pylint: disable=g-import-not-at-top

    if args.model_name is not None:
        raise ValueError("--model-name does not apply to --k8s-manifests: TF Serving serves "
                         "every model of models.config")
    paths = k8s.write_manifests(
        args.model_base, args.k8s_manifests, name=args.k8s_name, namespace=args.k8s_namespace,
        image=args.image, replicas=args.replicas, max_replicas=args.max_replicas,
        volume=args.volume, storage=args.storage, storage_class=args.storage_class,
        cpu_request=args.cpu_request, memory_request=args.memory_request,
        cpu_limit=args.cpu_limit, memory_limit=args.memory_limit,
        target_cpu_percent=args.target_cpu_percent)
    for path in paths:
        print(f"wrote {path}")
    return 0


def _serve(args):
    if args.k8s_manifests is not None:
        return _write_k8s(args)
    import logging  # pylint: disable=g-import-not-at-top
    import signal  # pylint: disable=g-import-not-at-top

    from drgrad.serving import model_config  # pylint: disable=g-import-not-at-top
    from drgrad.serving.server import app  # pylint: disable=g-import-not-at-top

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for name in ("rest_port", "grpc_port"):
        port = getattr(args, name)
        if not 0 <= port <= 65535:
            raise ValueError(f"--{name.replace('_', '-')} must be in [0, 65535], got {port}")
    if args.no_batching:
        batching = None
    elif args.batching_parameters:
        if not os.path.isfile(args.batching_parameters):
            raise FileNotFoundError(f"batching parameters file {args.batching_parameters} "
                                    f"does not exist")
        batching = model_config.BatchingParameters.read(args.batching_parameters)
    else:
        batching = "auto"
    limits = model_config.ServerLimits(**{
        f.name: getattr(args, f.name) for f in dataclasses.fields(model_config.ServerLimits)})
    server = app.ModelServer.from_model_base(
        args.model_base, model_name=args.model_name, batching=batching, host=args.host,
        rest_port=args.rest_port, grpc_port=args.grpc_port, poll_seconds=args.poll_seconds,
        limits=limits)
    server.start()
    print(f"drgrad serve: models {server.manager.model_names()} on REST "
          f"http://{args.host}:{server.rest_port} and gRPC {args.host}:{server.grpc_port}",
          flush=True)
    if args.ready_file:
        model_config.write_text_atomically(args.ready_file, json.dumps(
            {"rest_port": server.rest_port, "grpc_port": server.grpc_port, "pid": os.getpid()}))
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def read_rows(path):
    """Rows of a JSON-lines file (blank lines skipped), with line numbers in errors."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"input file {path} does not exist")
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON: {error}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: each line must be a JSON object")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path} has no rows")
    return rows


def _predict(args):
    from drgrad.serving import client as client_lib  # pylint: disable=g-import-not-at-top

    rows = read_rows(args.input)
    client = client_lib.connect(args.server, args.model, timeout=args.timeout)
    try:
        outputs = client.predict(rows, version=args.version, label=args.label)
    except client_lib.ServingClientError as error:
        raise ValueError(f"server refused the request: {error}") from None
    except OSError as error:
        raise ValueError(f"cannot reach {args.server}: {error}") from None
    finally:
        client.close()
    names = sorted(outputs)
    for index in range(len(rows)):
        print(json.dumps({name: outputs[name][index] for name in names}), file=sys.stdout)
    return 0
