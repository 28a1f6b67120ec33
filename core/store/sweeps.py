"""The sweeps of the run store (one hidden folder per sweep with its spec and Optuna's journal file), and the results
of other long work (one JSON file per kind and id)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import secrets
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from core.store.disk import StoreError, atomic_write_json, check_run_id, slug
from core.store.names import RESULTS_DIR, SWEEP_FILE, SWEEP_JOURNAL, SWEEP_LOCK, SWEEP_RAY_DIR, SWEEPS_DIR


class SweepFiles:
    """A sweep's files; RunStore inherits it. The spec is a dict here (core.sweep owns its meaning)."""

    root: Path

    def sweep_dir(self, sweep_id: str) -> Path:
        path = self.root / SWEEPS_DIR / check_run_id(sweep_id)
        if path.resolve().parent != (self.root / SWEEPS_DIR).resolve():
            raise StoreError(f"sweep id {sweep_id!r} escapes the store folder {self.root}")
        return path

    def _existing_sweep(self, sweep_id: str) -> Path:
        path = self.sweep_dir(sweep_id)
        if not (path / SWEEP_FILE).is_file():
            raise StoreError(f"sweep {sweep_id!r} not found in {self.root} (deleted, or never created; "
                             f"see `python -m core sweep list`)")
        return path

    def create_sweep(self, name: str, spec: dict) -> str:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        for _ in range(20):
            sweep_id = f"{stamp}-{slug(name)}-{secrets.token_hex(2)}"
            path = self.sweep_dir(sweep_id)
            try:
                path.mkdir(parents=True)
                break
            except FileExistsError:
                continue
            except OSError as exc:
                raise StoreError(f"cannot create a sweep folder in {self.root}: {exc.strerror or exc}") from None
        else:
            raise StoreError(f"could not find a free sweep id in {self.root}")
        atomic_write_json(path / SWEEP_FILE, {**spec, "sweep_id": sweep_id})
        return sweep_id

    def read_sweep(self, sweep_id: str) -> dict:
        path = self._existing_sweep(sweep_id) / SWEEP_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"sweep {sweep_id!r}: {SWEEP_FILE} is unreadable ({exc})") from None
        if not isinstance(data, dict):
            raise StoreError(f"sweep {sweep_id!r}: {SWEEP_FILE} is not an object")
        return data

    def update_sweep(self, sweep_id: str, **changes) -> dict:
        data = {**self.read_sweep(sweep_id), **changes}
        atomic_write_json(self._existing_sweep(sweep_id) / SWEEP_FILE, data)
        return data

    def sweep_journal_path(self, sweep_id: str) -> Path:
        """Optuna's journal file of the sweep's study (JournalFileBackend appends to it with its own lock)."""
        return self._existing_sweep(sweep_id) / SWEEP_JOURNAL

    def sweep_ray_dir(self, sweep_id: str) -> Path:
        """Where Ray Tune keeps the sweep's experiment state (on the shared path, like the store)."""
        return (self._existing_sweep(sweep_id) / SWEEP_RAY_DIR).resolve()

    @contextlib.contextmanager
    def sweep_lock(self, sweep_id: str) -> Iterator[None]:
        """Exclusive between the workers of one sweep (processes on any node of a shared file system)."""
        with open(self._existing_sweep(sweep_id) / SWEEP_LOCK, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def list_sweeps(self) -> list[str]:
        """Sweep ids, newest first."""
        folder = self.root / SWEEPS_DIR
        if not folder.is_dir():
            return []
        return sorted((p.name for p in folder.iterdir() if (p / SWEEP_FILE).is_file()), reverse=True)

    def delete_sweep(self, sweep_id: str) -> None:
        """The sweep's study and spec; its trials' runs stay in the store as ordinary runs."""
        shutil.rmtree(self._existing_sweep(sweep_id))

    # ----- results of other long work (the learning-rate finder, ...): one JSON per kind and id ----------------
    def _result_path(self, kind: str, result_id: str) -> Path:
        return self.root / RESULTS_DIR / check_run_id(kind) / f"{check_run_id(result_id)}.json"

    def write_result(self, kind: str, result_id: str, data: dict) -> None:
        path = self._result_path(kind, result_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, data)

    def read_result(self, kind: str, result_id: str) -> dict | None:
        """The stored result, or None before the work wrote one."""
        try:
            data = json.loads(self._result_path(kind, result_id).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(f"{kind} result {result_id!r} is unreadable ({exc})") from None
        return data if isinstance(data, dict) else None

    def sweep_version(self, sweep_id: str) -> tuple:
        """Changes whenever the spec or the study changes: what cached readers key on."""
        try:
            folder = self.sweep_dir(sweep_id)
            return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                         for p in sorted(folder.iterdir()) if p.name in (SWEEP_FILE, SWEEP_JOURNAL))
        except (OSError, StoreError):
            return ()
