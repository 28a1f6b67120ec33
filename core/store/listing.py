"""Listing the run store: every entry with its status, config and what is damaged, never raising."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from core.config import TrainConfig
from core.records import ACTIVE, RunStatus
from core.store.checks import MetricChecks, metric_checks
from core.store.disk import RUN_ID_PATTERN, TEMP_PATTERN, StoreError, now_iso, pid_alive, remove_dead_temp_files
from core.store.names import (
    CONFIG_FILE,
    EPOCHS_DIR,
    EVALUATION_FILE,
    HEARTBEAT_FILE,
    METRICS_FILE,
    MODEL_FILE,
    STATUS_FILE,
    TEST_PREDICTIONS_FILE,
)


@dataclass
class RunInfo:
    """What the run list shows for one run folder. `problems` are reasons a run is damaged.

    `status` is what the run is now (a run whose writer died reads "interrupted"); `record` is its status file,
    with that status applied; `stored_status` is what the file itself says."""

    run_id: str
    path: Path
    name: str = ""
    status: str = "damaged"
    config: TrainConfig | None = None
    record: RunStatus = field(default_factory=RunStatus)
    stored_status: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def damaged(self) -> bool:
        return self.config is None or self.status == "damaged"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def _reason(exc: Exception, run_id: str) -> str:
    """A store error as a problem of the listed run: without the "run '<id>'" the list already shows."""
    return str(exc).replace(f"run {run_id!r}: ", "").replace(f"run {run_id!r} ", "")


class RunListing:
    """The run list, its cache key and the clean-up of dead writers; RunStore inherits it."""

    def mark_interrupted(self, runs: list[RunInfo] | None = None) -> list[str]:
        """Persist 'interrupted' for runs whose training process is gone ('stopped', never started, for queued
        runs whose queue is gone), and remove the temporary files that dead processes left behind; returns the
        ids of the runs marked. runs: the store's list_runs() if the caller has just read it."""
        changed = []
        with contextlib.suppress(OSError):  # run folders a killed create_run left half-built
            for entry in self.root.iterdir():
                match = TEMP_PATTERN.match(entry.name)
                if match and entry.is_dir() and not pid_alive(int(match.group(1))):
                    shutil.rmtree(entry, ignore_errors=True)
        for info in self.list_runs() if runs is None else runs:
            if info.stored_status in ACTIVE and info.status in ("interrupted", "stopped"):
                record = info.record
                with contextlib.suppress(OSError, StoreError):
                    self.write_status(info.run_id, status=record.status, phase=record.phase, ended=now_iso(),
                                      error=record.error, model_saved=record.model_saved,
                                      epochs_done=record.epochs_done)
                    changed.append(info.run_id)
            if info.path.is_dir() and not info.active:
                remove_dead_temp_files(info.path, info.path / EPOCHS_DIR)
                with contextlib.suppress(OSError):  # a killed trainer's heartbeat
                    (info.path / HEARTBEAT_FILE).unlink(missing_ok=True)
        return changed

    @staticmethod
    def _model_problem(path: Path) -> str | None:
        if not path.exists():
            return f"no {MODEL_FILE}"
        if path.stat().st_size == 0:
            return f"{MODEL_FILE} is empty (0 bytes)"
        if not os.access(path, os.R_OK):
            return f"{MODEL_FILE} is not readable (permission denied)"
        if not zipfile.is_zipfile(path):
            return f"{MODEL_FILE} is corrupt (not a .keras archive)"
        return None

    @staticmethod
    def _evaluation_problems(folder: Path) -> list[str]:
        """What is wrong with the stored evaluation, checked cheaply (its metrics parse, its predictions are an
        archive), so that the list shows it rather than only the audit pages; a missing one is not a problem."""
        problems = []
        try:
            json.loads((folder / EVALUATION_FILE).read_text())
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            problems.append(f"{EVALUATION_FILE} is damaged ({exc})")
        predictions = folder / TEST_PREDICTIONS_FILE
        if predictions.exists() and not zipfile.is_zipfile(predictions):
            problems.append(f"{TEST_PREDICTIONS_FILE} is damaged (not an .npz archive)")
        return problems

    def list_runs(self) -> list[RunInfo]:
        """Every entry of the store, newest first (by the creation time its status records, else the folder's
        modification time); damaged ones carry their reasons and never raise."""
        try:
            entries = list(self.root.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot read the run store {self.root}: {exc.strerror or exc}") from None
        checks = metric_checks(self.root)
        infos = [self.inspect(entry, checks) for entry in entries if not entry.name.startswith(".")
                 and entry.name != "README.md"]
        checks.save({info.run_id for info in infos})
        return sorted(infos, key=lambda info: (self._created(info), info.run_id), reverse=True)

    @staticmethod
    def _created(info: RunInfo) -> float:
        """When a run was created, in seconds since the epoch: a run id says nothing about it (the shipped runs
        have names, not dates)."""
        with contextlib.suppress(TypeError, ValueError):
            created = datetime.fromisoformat(info.record.created)
            return (created if created.tzinfo else created.replace(tzinfo=timezone.utc)).timestamp()
        try:
            return info.path.stat().st_mtime
        except OSError:  # deleted while listed
            return 0.0

    @staticmethod
    def _metric_problems(entry: Path, checks: MetricChecks) -> list[str]:
        try:
            return checks.problems(entry.name, entry / METRICS_FILE, METRICS_FILE)
        except FileNotFoundError:
            return []
        except PermissionError:
            return [f"{METRICS_FILE} is not readable (permission denied)"]

    def inspect(self, entry: Path, checks: MetricChecks | None = None) -> RunInfo:
        info = RunInfo(run_id=entry.name, path=entry, name=entry.name)
        if not entry.is_dir():
            info.problems.append("not a run folder: a stray file in the store")
            return info
        if not RUN_ID_PATTERN.match(entry.name):
            info.problems.append("folder name is not a valid run id")
            return info
        if entry.is_symlink() and entry.resolve().parent != self.root.resolve():
            info.problems.append(f"a link that escapes the store folder {self.root}")
            return info
        if not os.access(entry, os.R_OK | os.X_OK):
            info.problems.append("run folder is not readable (permission denied)")
            return info
        try:
            info.config = self.read_config(entry.name)
        except StoreError as exc:
            info.problems.append(_reason(exc, entry.name))
        try:
            info.record, info.stored_status = self._read_status(entry.name)
            info.name = info.record.name or entry.name
            info.status = info.record.status if info.config is not None else "damaged"
        except (StoreError, OSError, ValueError) as exc:
            info.problems.append(_reason(exc, entry.name))
            info.status = "damaged"
        checks = checks or metric_checks(self.root)
        try:  # the folder can vanish while it is listed (deleted in another session)
            if info.status not in ACTIVE:
                info.problems.extend(self._metric_problems(entry, checks))
            if info.status in ("completed", "stopped") and info.record.model_saved is not False:
                model = entry / MODEL_FILE
                info.problems.extend(checks.cached(entry.name, "model", [model],
                                                   lambda: [p for p in [self._model_problem(model)] if p]))
            if info.status in ("completed", "stopped"):
                info.problems.extend(checks.cached(
                    entry.name, "evaluation", [entry / EVALUATION_FILE, entry / TEST_PREDICTIONS_FILE],
                    lambda: self._evaluation_problems(entry)))
        except (StoreError, OSError) as exc:
            info.problems.append(str(exc))
        return info

    def active_runs(self) -> list[RunInfo]:
        return [info for info in self.list_runs() if info.active]

    def signature(self) -> tuple:
        """Changes whenever a run is added, removed, renamed, or its status or config changes: the run list's
        cache key, cheap enough to compute every second."""
        try:
            entries = sorted(self.root.iterdir())
        except OSError:
            return ()
        signature = []
        for entry in entries:
            stamps = []
            for name in (STATUS_FILE, CONFIG_FILE):
                try:
                    stamps.append((entry / name).stat().st_mtime_ns)
                except OSError:
                    stamps.append(None)
            signature.append((entry.name, *stamps))
        return tuple(signature)
