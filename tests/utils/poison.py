"""Fault injection for the poison-photo test, loaded into a worker with `lookalike worker -I tests.utils.poison`.

A photo whose content hash is listed in LOOKALIKE_TEST_POISON kills the process that reads it, as a
decoder crash in native code would. Nothing else changes.
"""

from __future__ import annotations

import hashlib
import os
import signal

from backend.domain.photos import MediaStorage

_POISON = {h for h in os.environ.get("LOOKALIKE_TEST_POISON", "").split(",") if h}
_read = MediaStorage.read


def _read_or_die(self: MediaStorage, name: str) -> bytes:
    data = _read(self, name)
    if hashlib.sha256(data).hexdigest() in _POISON:
        os.kill(os.getpid(), signal.SIGKILL)
    return data


MediaStorage.read = _read_or_die  # type: ignore[method-assign]
