"""A local server compatible with TF Serving's REST and gRPC APIs (`drgrad serve`).

It serves SavedModels from a TF Serving base directory and never imports the project's model
code. Entry point: `serving.server.app.ModelServer`. Modules:

* `manager`: version polling, policies, labels, reference-counted unloading.
* `servable`: one loaded version (signatures, warmup, classify/regress).
* `batching`: request batching across concurrent Predict calls.
* `service`: the operations both front ends share.
* `rest` (aiohttp) and `grpc_service` (grpc.aio): the two front ends.
"""
import os as _os

_os.environ["TF_USE_LEGACY_KERAS"] = "1"
