"""The process-wide embedder of a model version, loaded once per process; the serving process's inference thread.

torch is imported when the first model loads, not when the web app or a command starts.

Inference thread: torch runs its operators on an OpenMP team of the thread that calls it, one team per such
thread, kept while the thread lives. Once more OpenMP threads exist than cores, libgomp stops spinning between
operators and each of a network's hundreds of operators waits for its team to wake: with the teams of 8 request
threads alive, a photo search's forward pass took 44-49 ms against 29-33 ms (2 cores). So in a serving process
(`lookalike serve`) the requests' forward passes and every model load run on one thread, and no request
thread gets a team. Background work (an import, a reindex) keeps its own lower-priority thread, which ends with
it.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import select

from backend.config import Settings
from backend.core.extensions import db
from backend.db.models import ModelVersion
from ml.versions import UNTRAINED, WeightsUnavailable, builtin_arch, builtin_names, untrained_version

if TYPE_CHECKING:
    from ml.embedder import Embedder

log = logging.getLogger("lookalike")
_embedders: dict[str, Embedder] = {}
_lock = threading.Lock()
T = TypeVar("T")
_inference: dict[int, ThreadPoolExecutor] = {}  # by process: a forked serving process makes its own
_inference_lock = threading.Lock()
_serving = threading.Event()
_inside = threading.local()


class UnknownModel(LookupError):
    """A collection names a model version this installation cannot load."""


def configured_default(settings: Settings) -> str:
    """The model version DEFAULT_MODEL names: a built-in pretrained model, or `untrained` (tests)."""
    if settings.default_model == UNTRAINED:
        return untrained_version(settings.untrained_seed, settings.embed_image_size)
    if builtin_arch(settings.default_model) is None:
        raise UnknownModel(
            f"DEFAULT_MODEL={settings.default_model!r} is not a built-in model: expected one of"
            f" {', '.join(builtin_names())} (or {UNTRAINED} for tests)"
        )
    return settings.default_model


def is_untrained(settings: Settings, version: str) -> bool:
    return version == untrained_version(settings.untrained_seed, settings.embed_image_size)


def keep_out_of_gc() -> None:
    """Take every object alive now out of the garbage collector's sight (gc.freeze): the modules, the app and a
    loaded network, half a million objects that live as long as the process. Each full collection went over all
    of them holding the GIL, 0.4 s in which every request in flight waited (bench/soak.py: the p99 of the minutes
    after an import or a reindex, whose garbage brings the next full collection on). Collected first: no garbage
    is kept."""
    gc.collect()
    gc.freeze()


def import_model_code() -> ModuleType:
    """ml's loading module (checkpoints, the embedder, the pretrained models): torch and torchvision, seconds to
    import.

    Serving and worker processes call this at start: an import cut short by a task's soft time limit
    would leave torch half-imported in the process."""
    # Here, not above: only a process that embeds needs torch; the web app and the CLI start without it.
    from ml import loading

    return loading


def serve_inference_on_one_thread() -> None:
    """This process serves requests (`lookalike serve`): from now on, model loads and the requests' forward
    passes (`on_inference_thread`) run on its one inference thread."""
    _serving.set()


def on_inference_thread(work: Callable[[], T]) -> T:
    """`work()` on this serving process's inference thread, waited for (its exception raised here); elsewhere,
    in a worker or a command, here in the caller's thread."""
    if not _serving.is_set() or getattr(_inside, "inference", False):  # on it already: no waiting on itself
        return work()
    pid = os.getpid()
    with _inference_lock:
        if pid not in _inference:
            _inference[pid] = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="inference", initializer=lambda: setattr(_inside, "inference", True)
            )
        executor = _inference[pid]
    return executor.submit(work).result()


def embedder_for(settings: Settings, version: str) -> Embedder:
    """The embedder of `version`: built-in pretrained, a registered checkpoint, or the untrained network."""
    with _lock:
        cached = _embedders.get(version)
        if cached is not None:
            return cached
        loading = import_model_code()
        name: str | Path = version
        if is_untrained(settings, version):
            name = UNTRAINED
        elif builtin_arch(version) is None:
            model = db.session.scalar(select(ModelVersion).where(ModelVersion.version == version))
            if model is None:
                raise UnknownModel(
                    f"model {version} is not registered here, is not a built-in model ({', '.join(builtin_names())}),"
                    f" and is not the untrained network of UNTRAINED_SEED={settings.untrained_seed},"
                    f" EMBED_IMAGE_SIZE={settings.embed_image_size}"
                )
            name = Path(model.path)
        try:
            loaded = on_inference_thread(
                lambda: loading.load_embedder(
                    name,
                    device=settings.device.value,
                    batch_size=settings.embed_batch_size,
                    image_size=settings.embed_image_size,
                    seed=settings.untrained_seed,
                )
            )
        except WeightsUnavailable as exc:
            raise UnknownModel(str(exc)) from exc
        info = loaded.info
        log.info(
            "model %s loaded: %s, %s, %s vectors, %d px, on %s",
            info.model_version,
            info.arch,
            info.origin.value,
            info.normalize.value,
            info.image_size,
            info.device,
        )
        _embedders[version] = loaded
        keep_out_of_gc()  # the network's objects live as long as the process
        return loaded
