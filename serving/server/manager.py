"""Model manager: file-system version polling, version policies, labels and safe unloading.

Mirrors TF Serving's `FileSystemStoragePathSource` + `AspiredVersionsManager` with the
availability-preserving policy:

* Every `poll_seconds` each model's `base_path` is listed. Children named by an integer and
  holding `saved_model.pb` are versions; anything else (such as the temporary dot-names that
  `write_model_version` renames into place) is ignored.
* The version policy (`latest {num_versions}` — default 1 —, `all {}`, `specific {versions}`)
  picks the aspired versions. New ones are loaded (and warmed up) first; versions that are no
  longer aspired are unloaded only once an aspired version is available, so a model never
  goes dark during a swap.
* Requests hold a reference to the version they run on (`acquire`). Unloading removes the
  version from routing at once, but its SavedModel is released only when the last request in
  flight finishes. No lock is held while a request computes.
* A version that fails to load is retried `max_load_retries` times, then only when its
  directory changes (a half-written version completed later loads at the next poll) or after
  a backoff doubling up to a minute: never given up for good.
* A version unloaded earlier is loaded again when the policy wants it again: deleting the
  newest versions falls back to the newest one left on disk, and a model removed by
  `reload_config` and added back is served again.
* `reload_config` only accepts base paths under the server's allowed roots (`--model-base`).
"""
import contextlib
import logging
import os
import re
import threading
import time

from drgrad.serving.server.errors import ServingError, invalid_argument, not_found
import grpc

_log = logging.getLogger(__name__)

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"
_VERSION_DIR = re.compile(r"^\d{1,18}$")
# END entries kept per model for status reporting.
_MAX_FINISHED = 8
# Longest wait between load attempts of an unchanged version directory that keeps failing.
_MAX_RETRY_BACKOFF_SECONDS = 60.0


def directory_fingerprint(path):
    """`(relative path, size, mtime_ns)` of every file under path: changes when a writer
    completes or rewrites a version directory."""
    entries = []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                stat = os.stat(full)
            except OSError:
                continue
            entries.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


def _within(path, root):
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def list_versions(base_path):
    """Integer version directories under base_path that contain `saved_model.pb`."""
    try:
        names = os.listdir(base_path)
    except FileNotFoundError:
        return []
    return sorted(int(n) for n in names
                  if _VERSION_DIR.match(n)
                  and os.path.isfile(os.path.join(base_path, n, "saved_model.pb")))


def aspired_versions(model_config, on_disk):
    """The versions a policy wants, from the sorted list on disk."""
    policy = model_config.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return list(on_disk)
    if kind == "specific":
        wanted = set(policy.specific.versions)
        return [v for v in on_disk if v in wanted]
    num = policy.latest.num_versions if kind == "latest" else 1
    return list(on_disk[-max(num, 1):]) if on_disk else []


class _Version:
    """State of one version of one model."""

    def __init__(self, version):
        self.version = version
        self.state = START
        self.error = ""
        self.servable = None
        self.refcount = 0
        self.failures = 0
        self.fingerprint = None    # of the directory at the last failed load
        self.next_retry = 0.0      # time.monotonic() before which it is not retried unchanged


class ModelManager:
    """Loads, serves and unloads SavedModel versions per a `ModelServerConfig`.

    Args:
      config: a `ModelServerConfig` proto with a `model_config_list`.
      loader: `loader(name, version, path) -> servable`; defaults to `Servable` (+ warmup).
      max_load_retries: load attempts at every poll; past them a failing version is retried
        when its directory changes or after a backoff (up to a minute).
      on_unload: optional callback(servable), called once the last request on it finished.
      allowed_roots: directories `reload_config` base paths must lie in (default: the base
        paths of `config`).
    """

    def __init__(self, config, loader=None, max_load_retries=5, on_unload=None,
                 allowed_roots=None):
        from drgrad.serving.model_config import validate_server_config  # pylint: disable=g-import-not-at-top

        validate_server_config(config)
        if max_load_retries < 1:
            raise ValueError(f"max_load_retries must be >= 1, got {max_load_retries}")
        self.allowed_roots = [os.path.abspath(r) for r in (
            allowed_roots if allowed_roots is not None
            else [m.base_path for m in config.model_config_list.config])]
        self._config = config
        self._loader = loader or _load_servable
        self._max_load_retries = max_load_retries
        self._on_unload = on_unload
        self._lock = threading.Lock()          # guards _models and every _Version
        self._poll_lock = threading.Lock()     # one poll (load/unload pass) at a time
        self._models = {}                      # name -> {version: _Version}
        self._stop = threading.Event()
        self._thread = None

    # ----------------------------------------------------------------------------- config
    @property
    def config(self):
        return self._config

    def model_names(self):
        return [m.name for m in self._config.model_config_list.config]

    def _model_config(self, name):
        return next((m for m in self._config.model_config_list.config if m.name == name), None)

    def check_base_paths(self, config):
        """INVALID_ARGUMENT naming the first base path outside the allowed roots."""
        for model in config.model_config_list.config:
            if not any(_within(model.base_path, root) for root in self.allowed_roots):
                raise invalid_argument(
                    f"model {model.name!r}: base_path {model.base_path!r} is outside the "
                    f"directories this server serves from: {self.allowed_roots}")

    def reload_config(self, config):
        """Replaces the config (models missing from it are unloaded) and polls once."""
        from drgrad.serving.model_config import validate_server_config  # pylint: disable=g-import-not-at-top

        validate_server_config(config)
        self.check_base_paths(config)
        self._config = config
        self.poll()

    # ----------------------------------------------------------------------------- polling
    def start(self, poll_seconds=1.0):
        """Polls once now, then every poll_seconds in a daemon thread (<= 0: never again)."""
        self.poll()
        if poll_seconds > 0 and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._poll_loop, args=(poll_seconds,),
                                            name="model-manager-poll", daemon=True)
            self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _poll_loop(self, poll_seconds):
        while not self._stop.wait(poll_seconds):
            try:
                self.poll()
            except Exception:  # pylint: disable=broad-except
                _log.exception("model version poll failed")

    def poll(self):
        """One pass: load newly aspired versions, then unload the ones no longer aspired."""
        with self._poll_lock:
            configs = {m.name: m for m in self._config.model_config_list.config}
            for name in list(self._models):
                if name not in configs:
                    self._retire(name, keep=set())
            for name, model_config in configs.items():
                on_disk = list_versions(model_config.base_path)
                aspired = aspired_versions(model_config, on_disk)
                if not on_disk:
                    _log.warning(
                        "No versions of servable %s found under base path %s. Did you forget to "
                        "name your leaf directory as a number (eg. '/1/')?",
                        name, model_config.base_path)
                for version in aspired:
                    self._maybe_load(name, version,
                                     os.path.join(model_config.base_path, str(version)))
                with self._lock:
                    versions = self._models.get(name, {})
                    any_available = any(versions[v].state == AVAILABLE
                                        for v in aspired if v in versions)
                if any_available or not aspired:
                    self._retire(name, keep=set(aspired))

    def _maybe_load(self, name, version, path):
        with self._lock:
            versions = self._models.setdefault(name, {})
            entry = versions.get(version)
            if entry is not None and (entry.state in (AVAILABLE, LOADING, UNLOADING)
                                      or not self._retry_due(entry, path)):
                return
            if entry is None:
                entry = versions[version] = _Version(version)
            entry.state = LOADING
        try:
            servable = self._loader(name, version, path)
        except Exception as error:  # pylint: disable=broad-except
            _log.error("failed to load %s version %d from %s: %s", name, version, path, error)
            fingerprint = directory_fingerprint(path)
            with self._lock:
                entry.state, entry.error = END, f"{type(error).__name__}: {error}"
                entry.failures += 1
                entry.fingerprint = fingerprint
                extra = entry.failures - self._max_load_retries
                entry.next_retry = time.monotonic() + (
                    min(2.0 ** extra, _MAX_RETRY_BACKOFF_SECONDS) if extra >= 0 else 0.0)
            return
        with self._lock:
            entry.servable, entry.state, entry.error = servable, AVAILABLE, ""
        _log.info("loaded %s version %d", name, version)

    def _retry_due(self, entry, path):
        """Whether a version in END loads now: one unloaded cleanly always may (the policy
        wants it back); a failed one while under `max_load_retries`, when its directory
        changed since, or once its backoff has passed. Called with the lock held."""
        if not entry.error or entry.failures < self._max_load_retries:
            return True
        if directory_fingerprint(path) != entry.fingerprint:
            entry.failures = 0
            return True
        return time.monotonic() >= entry.next_retry

    def _retire(self, name, keep):
        released = []
        with self._lock:
            versions = self._models.get(name, {})
            for version, entry in versions.items():
                if version in keep or entry.state != AVAILABLE:
                    continue
                entry.state = UNLOADING
                if entry.refcount == 0:
                    released.append(self._finish_unload(entry))
            self._trim(name)
        for servable in released:
            self._released(servable)
        if released:
            _log.info("unloaded %s versions not in %s", name, sorted(keep))

    def _finish_unload(self, entry):
        servable, entry.servable, entry.state = entry.servable, None, END
        return servable

    def _released(self, servable):
        if self._on_unload is not None and servable is not None:
            self._on_unload(servable)

    def _trim(self, name):
        versions = self._models.get(name, {})
        finished = sorted(v for v, e in versions.items() if e.state == END and not e.error)
        for version in finished[:-_MAX_FINISHED]:
            del versions[version]

    # ----------------------------------------------------------------------------- serving
    def _resolve(self, name, version=None, label=None):
        """Returns the _Version entry a request addresses; call with the lock held."""
        if version is not None and label is not None:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               "give a version or a version label, not both")
        versions = self._models.get(name, {})
        if label is not None:
            model_config = self._model_config(name)
            if model_config is None or label not in model_config.version_labels:
                raise not_found(f"Unrecognized servable version label: {label}")
            version = model_config.version_labels[label]
        if version is None:
            available = [v for v, e in versions.items() if e.state == AVAILABLE]
            if not available:
                raise not_found(f"Servable not found for request: Latest({name})")
            return versions[max(available)]
        entry = versions.get(int(version))
        if entry is None or entry.state != AVAILABLE:
            raise not_found(f"Servable not found for request: Specific({name}, {version})")
        return entry

    @contextlib.contextmanager
    def acquire(self, name, version=None, label=None):
        """Yields the servable for a request; it stays loaded until the block exits."""
        with self._lock:
            entry = self._resolve(name, version, label)
            entry.refcount += 1
            servable = entry.servable
        try:
            yield servable
        finally:
            released = None
            with self._lock:
                entry.refcount -= 1
                if entry.refcount == 0 and entry.state == UNLOADING:
                    released = self._finish_unload(entry)
            if released is not None:
                self._released(released)

    def resolve_version(self, name, version=None, label=None):
        """The version number a request would be served by (NOT_FOUND if none)."""
        with self._lock:
            return self._resolve(name, version, label).version

    def status(self, name, version=None, label=None):
        """`[(version, state, error_message)]`, newest first, as GetModelStatus reports them."""
        with self._lock:
            if label is not None:
                model_config = self._model_config(name)
                if model_config is None or label not in model_config.version_labels:
                    raise not_found(f"Unrecognized servable version label: {label}")
                version = model_config.version_labels[label]
            versions = self._models.get(name, {})
            if not versions:
                raise not_found(f"Could not find any versions of model {name}")
            if version is not None:
                entry = versions.get(int(version))
                if entry is None:
                    raise not_found(f"Could not find version {version} of model {name}")
                return [(entry.version, entry.state, entry.error)]
            return [(e.version, e.state, e.error)
                    for _, e in sorted(versions.items(), reverse=True)]


def _load_servable(name, version, path):
    from drgrad.serving.server.servable import Servable  # pylint: disable=g-import-not-at-top

    servable = Servable(name, version, path)
    servable.warmup()
    return servable
