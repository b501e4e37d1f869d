"""Pusher executor that publishes through `serving.export.write_model_version`.

Same contract as TFX's filesystem Pusher (push only a blessed model; record `pushed`,
`pushed_destination` and `pushed_version` on the PushedModel artifact), with what the serving
runtime needs on top:

* the version directory appears **atomically** (written under a temporary dot-name, then
  renamed), so a polling server never loads half a model; TFX's own Pusher copies in place,
  relying on `saved_model.pb` being copied last;
* `<serving>/models.config` and `batching_parameters.txt` are kept current;
* a model that is already served (same SavedModel `fingerprint.pb`) is not published again as
  a new version: a re-evaluation that blesses the same model (e.g. a cached rerun whose
  baseline changed) records the existing version instead of duplicating it.

Destinations that are not local paths (gs://...) fall back to TFX's Pusher.
"""
import os
from typing import Any, Dict, List, Optional

from tfx import types
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

FINGERPRINT = "fingerprint.pb"


def _fingerprint(saved_model_dir: str) -> Optional[bytes]:
    path = os.path.join(saved_model_dir, FINGERPRINT)
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as handle:
        return handle.read()


def find_served_version(model_dir: str, saved_model_dir: str) -> Optional[str]:
    """The version directory under `model_dir` holding the same SavedModel, if any."""
    wanted = _fingerprint(saved_model_dir)
    if wanted is None or not os.path.isdir(model_dir):
        return None
    for name in sorted((n for n in os.listdir(model_dir) if n.isdigit()), key=int,
                       reverse=True):
        if _fingerprint(os.path.join(model_dir, name)) == wanted:
            return os.path.join(model_dir, name)
    return None


class Executor(tfx_pusher_executor.Executor):
    """Publishes a blessed model as `<serving>/<model>/<version>/` (module docstring)."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        from drgrad.serving.export import write_model_version

        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        base = destination.filesystem.base_directory
        if destination.WhichOneof("destination") != "filesystem" or "://" in base:
            return super().Do(input_dict, output_dict, exec_properties)

        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        model_dir = os.path.abspath(base)
        version_dir = find_served_version(model_dir, model_path)
        if version_dir is None:
            version_dir = write_model_version(os.path.dirname(model_dir),
                                              os.path.basename(model_dir), model_path)
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=version_dir,
                         pushed_version=os.path.basename(version_dir))
