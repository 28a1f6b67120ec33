"""The run store: one folder per run under cached_models/; the only code that knows its file names."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.config import TrainConfig
from core.records import ACTIVE, FINAL, STATUSES, EpochSnapshot, RunStatus  # noqa: F401  (FINAL re-exported)

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "cached_models"

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
MODEL_FILE = "model.keras"
EVALUATION_FILE = "evaluation.json"
TEST_PREDICTIONS_FILE = "test_predictions.npz"
EPOCHS_DIR = "epochs"
SNAPSHOT_ARRAYS = ("probs", "c1")  # the arrays of an epoch snapshot file; EpochSnapshot.extras adds others

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_NAME_LENGTH = 100


class StoreError(ValueError):
    """A problem with the run store that a user can read: names the run or path and what is wrong."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def check_run_id(run_id: Any) -> str:
    """Run ids are folder names inside the store: no separators, no '..', no NUL, at most 100 chars."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id) or ".." in run_id:
        shown = repr(run_id)[:60]
        raise StoreError(
            f"run id {shown} is not valid; allowed: 1-100 characters of letters, digits, '.', '_' "
            f"and '-', not starting with '.' and without '..'"
        )
    return run_id


def check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise StoreError(f"run name {name!r} must be text")
    cleaned = name.strip()
    if not cleaned or len(cleaned) > MAX_NAME_LENGTH or any(ord(c) < 32 for c in cleaned):
        raise StoreError(
            f"run name {cleaned[:40]!r}{'...' if len(cleaned) > 40 else ''} is not valid; allowed: "
            f"1-{MAX_NAME_LENGTH} printable characters"
        )
    return cleaned


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "run"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def process_started(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, /proc's field 22), or None where /proc cannot tell."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return stat[stat.rindex(")") + 2 :].split()[19]
    except (OSError, ValueError, IndexError):
        return None


def owner() -> dict:
    """Who writes a run: this process, with its start time so that a reused pid is not taken for it."""
    return {"pid": os.getpid(), "pid_started": process_started(os.getpid()), "host": socket.gethostname()}


def pid_alive(pid: Any, started: str | None = None) -> bool:
    """True if `pid` runs, and (when `started` is known) is the same process that recorded it, not a reuse."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = process_started(pid) if started else None
    return now is None or now == started


# Temporary files of atomic writes: ".<name>.<pid>.<hex>.tmp" and ".model.<pid>.<hex>.keras".
TEMP_PATTERN = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.(tmp|keras)$")


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


class RunStore:
    """All reads and writes of cached_models/. Every write is atomic (temp file + rename) or append-only."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else Path(os.environ.get("LENET_RUNS", DEFAULT_ROOT))

    # ----- paths -------------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        path = self.root / check_run_id(run_id)
        if path.resolve().parent != self.root.resolve():
            raise StoreError(f"run id {run_id!r} escapes the store folder {self.root}")
        return path

    def _existing(self, run_id: str) -> Path:
        path = self.run_dir(run_id)
        if not path.is_dir():
            raise StoreError(f"run {run_id!r} not found in {self.root}")
        return path

    def model_path(self, run_id: str) -> Path:
        return self._existing(run_id) / MODEL_FILE

    # ----- creating and writing ----------------------------------------------------------------
    def create_run(self, config: TrainConfig, name: str | None = None, status: str = "queued") -> str:
        name = check_name(name) if name else f"{config.variant} {config.dataset}"
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"the run store {self.root} is a file, not a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the run store at {self.root}: {exc.strerror or exc}") from None
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        for _ in range(20):
            run_id = f"{stamp}-{_slug(name)}-{secrets.token_hex(2)}"
            path = self.run_dir(run_id)
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
            except OSError as exc:
                raise StoreError(f"cannot create a run folder in {self.root}: {exc.strerror or exc}") from None
        else:
            raise StoreError(f"could not find a free run id in {self.root}")
        try:
            self.write_config(run_id, config)
            self.write_status(run_id, status=status, name=name, created=now_iso(), **owner())
        except OSError as exc:
            shutil.rmtree(path, ignore_errors=True)
            raise StoreError(f"cannot write run {run_id} in {self.root}: {exc.strerror or exc}") from None
        return run_id

    def write_config(self, run_id: str, config: TrainConfig) -> None:
        atomic_write_bytes(self.run_dir(run_id) / CONFIG_FILE, (config.to_json() + "\n").encode())

    def write_status(self, run_id: str, **changes: Any) -> RunStatus:
        """Merge `changes` (fields of RunStatus) into status.json atomically and return the new status."""
        unknown = sorted(set(changes) - RunStatus.field_names())
        if unknown:
            raise StoreError(f"unknown status field(s) {unknown}; a run's status has the fields of "
                             f"core.records.RunStatus")
        if "status" in changes and changes["status"] not in STATUSES:
            raise StoreError(f"status {changes['status']!r} is not one of {', '.join(STATUSES)}")
        path = self.run_dir(run_id) / STATUS_FILE
        current: dict = {}
        with contextlib.suppress(OSError, ValueError):
            current = json.loads(path.read_text())
        if not isinstance(current, dict):
            current = {}
        current.update(changes, run_id=run_id, updated=now_iso())
        atomic_write_json(path, current)  # keys of other versions are kept in the file
        return RunStatus.from_dict(current)

    def append_metrics(self, run_id: str, records: list[dict]) -> None:
        """Append whole lines in one write, so a concurrent reader sees complete records or nothing new."""
        if not records:
            return
        text = "".join(json.dumps(r, default=_json_default, allow_nan=True) + "\n" for r in records)
        with open(self.run_dir(run_id) / METRICS_FILE, "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()

    def save_epoch_snapshot(self, run_id: str, snapshot: EpochSnapshot) -> None:
        folder = self.run_dir(run_id) / EPOCHS_DIR
        folder.mkdir(exist_ok=True)
        clash = sorted(set(snapshot.extras) & set(SNAPSHOT_ARRAYS))
        if clash:
            raise StoreError(f"snapshot extras {clash} clash with the snapshot's own arrays {SNAPSHOT_ARRAYS}")
        buffer = io.BytesIO()
        np.savez_compressed(buffer, probs=np.asarray(snapshot.probs, np.float16),
                            c1=np.asarray(snapshot.c1_kernels, np.float32), **snapshot.extras)
        atomic_write_bytes(folder / f"epoch_{int(snapshot.epoch):04d}.npz", buffer.getvalue())

    def save_model(self, run_id: str, model) -> None:
        target = self.run_dir(run_id) / MODEL_FILE
        tmp = target.with_name(f".model.{os.getpid()}.{secrets.token_hex(4)}.keras")
        try:
            model.save(tmp)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def save_evaluation(self, run_id: str, metrics: dict, test_probs: np.ndarray, test_labels: np.ndarray) -> None:
        """Final test metrics plus the probabilities and labels they came from."""
        folder = self.run_dir(run_id)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, probs=np.asarray(test_probs, np.float32), labels=np.asarray(test_labels, np.int32))
        atomic_write_bytes(folder / TEST_PREDICTIONS_FILE, buffer.getvalue())
        atomic_write_json(folder / EVALUATION_FILE, metrics)

    # ----- reading -----------------------------------------------------------------------------
    def read_config(self, run_id: str) -> TrainConfig:
        path = self._existing(run_id) / CONFIG_FILE
        try:
            return TrainConfig.from_json(path.read_text())
        except FileNotFoundError:
            raise StoreError(f"run {run_id!r} has no {CONFIG_FILE}") from None
        except PermissionError:
            raise StoreError(f"run {run_id!r}: {CONFIG_FILE} is not readable") from None
        except (ValueError, TypeError) as exc:
            raise StoreError(f"run {run_id!r}: {CONFIG_FILE} is invalid: {exc}") from None

    def read_status(self, run_id: str) -> RunStatus:
        """The stored status, with a run whose process died shown as interrupted."""
        return self._read_status(run_id)[0]

    def _read_status(self, run_id: str) -> tuple[RunStatus, str]:
        """(the status as it is now, the status the file says)."""
        path = self._existing(run_id) / STATUS_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise StoreError(f"run {run_id!r} has no {STATUS_FILE}") from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"run {run_id!r}: {STATUS_FILE} is unreadable: {exc}") from None
        if not isinstance(data, dict) or data.get("status") not in STATUSES:
            raise StoreError(f"run {run_id!r}: {STATUS_FILE} has no valid status")
        try:
            status = RunStatus.from_dict(data)
        except TypeError as exc:
            raise StoreError(f"run {run_id!r}: {STATUS_FILE} is unreadable: {exc}") from None
        stored = status.status
        if status.active and self._orphaned(status):
            status = status.replace(status="interrupted",
                                    error="the process training this run stopped before it finished")
        return status, stored

    @staticmethod
    def _orphaned(status: RunStatus) -> bool:
        return status.host == socket.gethostname() and not pid_alive(status.pid, status.pid_started)

    def mark_interrupted(self) -> list[str]:
        """Persist 'interrupted' for runs whose training process is gone, and remove the temporary files
        that dead processes left behind; returns the ids of the runs marked."""
        changed = []
        for info in self.list_runs():
            if info.status == "interrupted" and info.stored_status in ACTIVE:
                with contextlib.suppress(OSError, StoreError):
                    self.write_status(info.run_id, status="interrupted", ended=now_iso(), error=info.record.error)
                    changed.append(info.run_id)
            if info.path.is_dir() and not info.active:
                self._remove_dead_temp_files(info.path)
        return changed

    @staticmethod
    def _remove_dead_temp_files(folder: Path) -> None:
        """A process killed during an atomic write leaves its temporary file; the target was never touched."""
        for directory in (folder, folder / EPOCHS_DIR):
            with contextlib.suppress(OSError):
                for path in directory.iterdir():
                    match = TEMP_PATTERN.match(path.name)
                    if match and not pid_alive(int(match.group(1))):
                        with contextlib.suppress(OSError):
                            path.unlink()

    def read_metrics(self, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(batch rows, epoch rows). A partial last line (a write in progress or a crash) is skipped."""
        records, _ = self._read_metric_records(run_id)
        frame = pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=["type"])
        batch = frame[frame["type"] == "batch"].drop(columns="type").reset_index(drop=True)
        epoch = frame[frame["type"] == "epoch"].drop(columns="type").reset_index(drop=True)
        return batch.dropna(axis=1, how="all"), epoch.dropna(axis=1, how="all")

    def _read_metric_records(self, run_id: str) -> tuple[list[dict], list[str]]:
        path = self._existing(run_id) / METRICS_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return [], []
        problems: list[str] = []
        lines = raw.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        elif lines:
            lines.pop()
            problems.append(f"{METRICS_FILE} ends with a truncated line")
        records = []
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except ValueError:
                problems.append(f"{METRICS_FILE} line {number} is not valid JSON")
                continue
            if isinstance(record, dict) and record.get("type") in ("batch", "epoch"):
                records.append(record)
        return records, problems

    def epochs_saved(self, run_id: str) -> list[int]:
        folder = self._existing(run_id) / EPOCHS_DIR
        if not folder.is_dir():
            return []
        found = (re.match(r"^epoch_(\d{4})\.npz$", p.name) for p in folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def read_epoch_snapshot(self, run_id: str, epoch: int) -> EpochSnapshot:
        """The snapshot after `epoch`: test probabilities as float32, C1 kernels (6, 5, 5), and any extras."""
        path = self._existing(run_id) / EPOCHS_DIR / f"epoch_{int(epoch):04d}.npz"
        try:
            with np.load(path, allow_pickle=False) as data:
                extras = {name: data[name] for name in data.files if name not in SNAPSHOT_ARRAYS}
                return EpochSnapshot(int(epoch), data["probs"].astype(np.float32), data["c1"], extras)
        except FileNotFoundError:
            raise StoreError(f"run {run_id!r} has no snapshot for epoch {epoch}") from None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise StoreError(f"run {run_id!r}: the epoch {epoch} snapshot is damaged ({exc})") from None

    def read_evaluation(self, run_id: str) -> tuple[dict, np.ndarray, np.ndarray] | None:
        """(metrics, test probabilities, test labels), or None before the run was evaluated."""
        folder = self._existing(run_id)
        try:
            metrics = json.loads((folder / EVALUATION_FILE).read_text())
            with np.load(folder / TEST_PREDICTIONS_FILE, allow_pickle=False) as data:
                return metrics, data["probs"], data["labels"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise StoreError(f"run {run_id!r}: the evaluation files are damaged ({exc})") from None

    def has_model(self, run_id: str) -> bool:
        return (self._existing(run_id) / MODEL_FILE).is_file()

    def load_model(self, run_id: str):
        """Load the run's .keras model with safe_mode; only files inside the store are ever loaded."""
        import keras

        import core.model  # noqa: F401  registers the custom layers of the lecun1998 variant

        path = self.model_path(run_id)
        problem = self._model_problem(path)
        if problem:
            raise StoreError(f"run {run_id!r}: {problem}")
        try:
            return keras.saving.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:  # Keras raises many types for a damaged archive
            raise StoreError(f"run {run_id!r}: {MODEL_FILE} could not be loaded ({type(exc).__name__}: {exc})") from None

    @staticmethod
    def _model_problem(path: Path) -> str | None:
        if not path.exists():
            return f"no {MODEL_FILE}"
        if path.stat().st_size == 0:
            return f"{MODEL_FILE} is empty (0 bytes)"
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

    # ----- downloads ---------------------------------------------------------------------------
    def model_bytes(self, run_id: str) -> bytes:
        return self.model_path(run_id).read_bytes()

    def config_json(self, run_id: str) -> str:
        return self.read_config(run_id).to_json()

    def metrics_csv(self, run_id: str) -> str:
        records, _ = self._read_metric_records(run_id)
        # convert_dtypes: batch and epoch rows share columns, and the empty cells made counts floats ("8.0")
        return pd.DataFrame.from_records(records).convert_dtypes().to_csv(index=False)

    # ----- listing, renaming, deleting ---------------------------------------------------------
    def list_runs(self) -> list[RunInfo]:
        """Every entry of the store, newest first (by the creation time its status records, else the folder's
        modification time); damaged ones carry their reasons and never raise."""
        try:
            entries = list(self.root.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot read the run store {self.root}: {exc.strerror or exc}") from None
        infos = [self.inspect(entry) for entry in entries if not entry.name.startswith(".")
                 and entry.name != "README.md"]
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

    def inspect(self, entry: Path) -> RunInfo:
        info = RunInfo(run_id=entry.name, path=entry, name=entry.name)
        if not entry.is_dir():
            info.problems.append("not a run folder: a stray file in the store")
            return info
        if not RUN_ID_PATTERN.match(entry.name):
            info.problems.append("folder name is not a valid run id")
            return info
        if entry.resolve().parent != self.root.resolve():
            info.problems.append(f"a link that escapes the store folder {self.root}")
            return info
        if not os.access(entry, os.R_OK | os.X_OK):
            info.problems.append("run folder is not readable (permission denied)")
            return info
        try:
            info.config = self.read_config(entry.name)
        except StoreError as exc:
            info.problems.append(str(exc).replace(f"run {entry.name!r}: ", "").replace(f"run {entry.name!r} ", ""))
        try:
            info.record, info.stored_status = self._read_status(entry.name)
            info.name = info.record.name or entry.name
            info.status = info.record.status if info.config is not None else "damaged"
        except (StoreError, OSError, ValueError) as exc:
            info.problems.append(str(exc).replace(f"run {entry.name!r}: ", "").replace(f"run {entry.name!r} ", ""))
            info.status = "damaged"
        try:  # the folder can vanish while it is listed (deleted in another session)
            _, metric_problems = self._read_metric_records(entry.name) if info.status not in ACTIVE else ([], [])
            info.problems.extend(metric_problems)
            if info.status in ("completed", "stopped") and info.record.model_saved is not False:
                problem = self._model_problem(entry / MODEL_FILE)
                if problem:
                    info.problems.append(problem)
            if info.status in ("completed", "stopped"):
                info.problems.extend(self._evaluation_problems(entry))
        except (StoreError, OSError) as exc:
            info.problems.append(str(exc))
        return info

    def rename(self, run_id: str, new_name: str) -> None:
        self._existing(run_id)
        self.write_status(run_id, name=check_name(new_name))

    def delete(self, run_id: str) -> None:
        path = self._existing(run_id)
        try:
            status = self.read_status(run_id).status
        except StoreError:
            status = "damaged"  # a damaged run can always be deleted on request
        if status in ACTIVE:
            raise StoreError(f"run {run_id!r} is still {status}; stop it before deleting")
        shutil.rmtree(path)

    def active_runs(self) -> list[RunInfo]:
        return [info for info in self.list_runs() if info.active]

    # ----- change detection: what callers cache on -------------------------------------------------
    def version(self, run_id: str) -> tuple:
        """Changes whenever any of the run's files changes (status, config, metrics, model, evaluation, a new
        epoch snapshot); () when the run cannot be read."""
        try:
            folder = self.run_dir(run_id)
            stats = [(p.name, p.stat()) for p in sorted(folder.iterdir()) if not p.name.startswith(".")]
            stamps = [(name, stat.st_mtime_ns, stat.st_size) for name, stat in stats]
        except (OSError, StoreError):
            return ()
        return tuple(stamps)

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
