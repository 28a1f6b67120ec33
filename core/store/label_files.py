"""The run store's label-audit files: the K-fold training-set audit of a run and the user's review marks."""

from __future__ import annotations

import io
import json
import socket
import zipfile
from pathlib import Path

import numpy as np

from core.records import AUDIT_STATES, TrainAudit
from core.store.disk import StoreError, atomic_write_bytes, atomic_write_json, now_iso
from core.store.liveness import writer_alive
from core.store.names import LABEL_MARKS_FILE, TRAIN_AUDIT_ARRAYS_FILE, TRAIN_AUDIT_STATE_FILE

MARK_VALUES = ("wrong label", "ambiguous", "fine")  # core.label_audit.MARKS
MARK_SPLITS = ("test", "train")


class LabelAuditFiles:
    """Mixed into RunStore: `_existing(run_id)` gives the run's folder."""

    def _existing(self, run_id: str) -> Path:  # pragma: no cover - RunStore's
        raise NotImplementedError

    # ----- the training-set audit ---------------------------------------------------------------
    def write_train_audit(self, run_id: str, **changes) -> TrainAudit:
        """Merge `changes` (fields of TrainAudit, arrays excluded) into the audit's state file atomically."""
        path = self._existing(run_id) / TRAIN_AUDIT_STATE_FILE
        current = TrainAudit().to_dict() if changes.get("state") == "running" and "folds" in changes else None
        if current is None:
            current = self._audit_state(run_id) or TrainAudit().to_dict()
        unknown = sorted(set(changes) - set(TrainAudit().to_dict()))
        if unknown:
            raise StoreError(f"unknown training-audit field(s) {unknown}; see core.records.TrainAudit")
        if changes.get("state", current["state"]) not in AUDIT_STATES:
            raise StoreError(f"audit state {changes['state']!r} is not one of {', '.join(AUDIT_STATES)}")
        current.update(changes)
        atomic_write_json(path, current)
        return TrainAudit.from_dict(current)

    def save_train_audit(self, run_id: str, probs: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, probs=np.asarray(probs, np.float32), labels=np.asarray(labels, np.int64),
                            indices=np.asarray(indices, np.int64))
        atomic_write_bytes(self._existing(run_id) / TRAIN_AUDIT_ARRAYS_FILE, buffer.getvalue())

    def _audit_state(self, run_id: str) -> dict | None:
        path = self._existing(run_id) / TRAIN_AUDIT_STATE_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(f"run {run_id!r}: the training-set audit file is damaged ({exc}); run the audit "
                             "again to replace it") from None
        if not isinstance(data, dict) or data.get("state") not in AUDIT_STATES:
            raise StoreError(f"run {run_id!r}: the training-set audit file has no valid state; run the audit again")
        return data

    def read_train_audit(self, run_id: str) -> TrainAudit | None:
        """The audit's state, with its arrays once completed; None when the run was never audited."""
        data = self._audit_state(run_id)
        if data is None:
            return None
        audit = TrainAudit.from_dict(data)
        if audit.state == "running" and audit.host == socket.gethostname() and not writer_alive(
                audit.pid, audit.pid_started):
            return audit.replace(state="failed", error="interrupted: the process running it stopped before it "
                                                       "finished; run the audit again")
        if audit.state != "completed":
            return audit
        try:
            with np.load(self._existing(run_id) / TRAIN_AUDIT_ARRAYS_FILE, allow_pickle=False) as arrays:
                audit.probs, audit.labels, audit.indices = arrays["probs"], arrays["labels"], arrays["indices"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise StoreError(f"run {run_id!r}: the training-set audit's probabilities are missing or damaged "
                             f"({exc}); run the audit again") from None
        return audit

    def audit_version(self, run_id: str) -> tuple:
        """What an audit's cache keys on: the run's version() without the review marks, which change no ranking."""
        return tuple(entry for entry in self.version(run_id) if entry[0] != LABEL_MARKS_FILE)

    # ----- review marks ---------------------------------------------------------------------------
    def read_label_marks(self, run_id: str) -> dict[tuple[str, int], str]:
        """{(split, index): mark}; {} before any mark. A damaged file is reported, never replaced silently."""
        path = self._existing(run_id) / LABEL_MARKS_FILE
        try:
            data = json.loads(path.read_text())
            rows = data["marks"]
            marks = {(str(row["split"]), int(row["index"])): str(row["mark"]) for row in rows}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"run {run_id!r}: the review marks file ({LABEL_MARKS_FILE}) is damaged "
                             f"({type(exc).__name__}: {exc}); fix or remove it to mark again") from None
        bad = [key for key, mark in marks.items() if key[0] not in MARK_SPLITS or mark not in MARK_VALUES]
        if bad:
            raise StoreError(f"run {run_id!r}: the review marks file ({LABEL_MARKS_FILE}) holds unknown marks "
                             f"{bad[:3]}; allowed marks: {', '.join(MARK_VALUES)}")
        return marks

    def write_label_mark(self, run_id: str, split: str, index: int, mark: str | None) -> dict[tuple[str, int], str]:
        """Set (or with None clear) one image's mark, atomically; returns every mark. Refused on a damaged file."""
        if split not in MARK_SPLITS or (mark is not None and mark not in MARK_VALUES):
            raise StoreError(f"mark {mark!r} of split {split!r} is not allowed; marks: {', '.join(MARK_VALUES)}")
        marks = self.read_label_marks(run_id)
        if mark is None:
            marks.pop((split, int(index)), None)
        else:
            marks[(split, int(index))] = mark
        rows = [{"split": s, "index": i, "mark": m} for (s, i), m in sorted(marks.items())]
        atomic_write_json(self._existing(run_id) / LABEL_MARKS_FILE, {"version": 1, "updated": now_iso(),
                                                                       "marks": rows})
        return marks
