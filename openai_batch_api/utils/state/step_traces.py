"""What a step made in data_path, removed again when no run came of it (a refused create, no run found).

A step takes the run's lock (making data_path and its `.lock`), may start the local backend (its
state in `local_backend/`) and write task folders before the input is found wanting. When the step
ends with no run in data_path, what it made is taken away again, by name: the local backend's files
(only when this step made its folder: a lost run's batches may live in one made before), empty task
folders, the lock file, and data_path itself when this step made it and nothing else is left in it.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..layout import local_backend_dir, lock_path, tasks_dir
from .run_store import has_run


class StepTraces:
    """Notes, before a step begins, which of data_path's own paths are missing; removes them after if no run came."""

    def __init__(self, config: Config) -> None:
        self.config = config
        data_path = config.data_path
        self.missing = {
            path for path in (data_path, lock_path(data_path), tasks_dir(data_path), local_backend_dir(data_path))
            if not path.exists()
        }

    def remove_if_no_run(self) -> None:
        """Remove what the step made, when data_path holds no run; call once the step's lock is released."""
        data_path = self.config.data_path
        if not self.missing or has_run(data_path):
            return
        backend = local_backend_dir(data_path)
        if backend in self.missing and backend.is_dir():
            from ...local_server.server import StateDirInUse
            from ..providers.local import remove_local_backend_state

            try:
                remove_local_backend_state(self.config)
            except StateDirInUse:
                pass  # another process serves it now: it is that one's
        tasks = tasks_dir(data_path)
        if tasks in self.missing and tasks.is_dir():
            for folder in tasks.iterdir():
                _remove_empty(folder)
            _remove_empty(tasks)
        if lock_path(data_path) in self.missing:
            lock_path(data_path).unlink(missing_ok=True)
        if data_path in self.missing:
            _remove_empty(data_path)


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty (a user's file), not a folder, or gone: it stays as it is
