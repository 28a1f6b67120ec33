"""Label audit: rank images by how likely their given label is wrong (confident learning with cleanlab), estimate
how many labels are wrong and which given label hides which true class, and keep the user's review marks."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - pandas loads when an audit is built, not with the CLI (`core list` is quicker)
    import pandas as pd

# cleanlab's label quality scores (cleanlab.rank.get_label_quality_scores); lower = more likely mislabelled
METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
# Chosen by bench/label_audit.py on synthetic label noise (bench/RESULTS.md, "Label audit (issue 18)"): the
# best average precision at recovering flipped labels of the three scores, and the mean of the last 3 epochs'
# probabilities (the training dynamics) ranked better than the last epoch alone or all epochs.
DEFAULT_METHOD = "self_confidence"
DEFAULT_EPOCHS = 3
SPLITS = ("test", "train")
MARKS = ("wrong label", "ambiguous", "fine")
MIN_FOLDS, MAX_FOLDS = 2, 10


class AuditError(ValueError):
    """A one-line message for the user: what is wrong with the audit's input and what is allowed."""


@dataclass(frozen=True)
class LabelAudit:
    """One split's audit: the ranked images and cleanlab's estimates about the whole split."""

    table: pd.DataFrame  # index, given, suggested, score, issue; lowest score (most suspect) first
    estimated_errors: int  # cleanlab.count.num_label_issues: how many labels are wrong, estimated
    joint_counts: np.ndarray  # (K, K) int: estimated images with given label i (row) and true class j (column)
    class_quality: pd.DataFrame  # one row per class: its label issues, noise and label quality score
    method: str
    epochs_used: int

    @property
    def suspects(self) -> pd.DataFrame:
        """The images confident learning flags as label issues, most suspect first."""
        return self.table[self.table["issue"]].reset_index(drop=True)


def check_folds(folds) -> int:
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or not MIN_FOLDS <= folds <= MAX_FOLDS:
        raise AuditError(f"folds={folds!r} is not allowed; choose a whole number from {MIN_FOLDS} to {MAX_FOLDS}")
    return int(folds)


def check_method(method: str) -> str:
    if method not in METHODS:
        raise AuditError(f"method={method!r} is not a label quality score; choose one of {', '.join(METHODS)}")
    return method


def epoch_averaged(probs_by_epoch: Sequence[np.ndarray], last: int) -> np.ndarray:
    """The mean of the last `last` epochs' probabilities: an ensemble of the model along its training path."""
    if not probs_by_epoch:
        raise AuditError("there are no epoch probabilities to average")
    if last < 1:
        raise AuditError(f"epochs={last} must be at least 1")
    chosen = [np.asarray(p, np.float64) for p in probs_by_epoch[-last:]]
    return np.mean(chosen, axis=0)


def _clean_probs(probs) -> np.ndarray:
    """float64 rows that sum to 1 (stored float16 snapshots sum to 1 only within their precision)."""
    probs = np.clip(np.asarray(probs, np.float64), 0.0, 1.0)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise AuditError(f"probabilities must be an (images, classes) array; got shape {probs.shape}")
    return probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)


def audit_labels(labels, probs, *, indices=None, method: str = DEFAULT_METHOD, epochs_used: int = 1,
                 rank_probs=None) -> LabelAudit:
    """Audit one split from its out-of-sample probabilities. `indices` name the images (default 0..N-1).

    cleanlab's estimates (the count, the noise matrix, the flags, per-class quality) come from `probs`, the model's
    own; the ranking and the suggested class from `rank_probs` when given (the epoch-averaged probabilities)."""
    import pandas as pd

    from cleanlab.count import estimate_joint, num_label_issues
    from cleanlab.dataset import rank_classes_by_label_quality
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    check_method(method)
    probs = _clean_probs(probs)
    labels = np.asarray(labels, np.int64)
    n, n_classes = probs.shape
    if labels.shape != (n,):
        raise AuditError(f"{len(labels)} labels for {n} rows of probabilities")
    if n < n_classes or (labels < 0).any() or (labels >= n_classes).any():
        raise AuditError(f"the audit needs labels 0..{n_classes - 1} and at least {n_classes} images; got {n}")
    indices = np.arange(n) if indices is None else np.asarray(indices, np.int64)
    ranking = probs if rank_probs is None else _clean_probs(rank_probs)
    if ranking.shape != probs.shape:
        raise AuditError(f"rank_probs has shape {ranking.shape}; probs has {probs.shape}")
    scores = get_label_quality_scores(labels, ranking, method=method)
    with warnings.catch_warnings():  # "may not flag all label issues in class k": a small class, said in the docs
        warnings.simplefilter("ignore", UserWarning)
        issues = find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1)
    table = pd.DataFrame({"index": indices, "given": labels, "suggested": ranking.argmax(axis=1),
                          "given_prob": ranking[np.arange(n), labels], "score": scores, "issue": issues})
    table = table.sort_values(["score", "index"], kind="stable").reset_index(drop=True)
    joint = estimate_joint(labels, probs)
    quality = rank_classes_by_label_quality(labels, probs).rename(columns=lambda c: c.lower().replace(" ", "_"))
    return LabelAudit(table, int(num_label_issues(labels, probs)), np.round(joint * n).astype(np.int64),
                      quality.sort_values("class_index").reset_index(drop=True), method, int(epochs_used))


def audit_test(labels, final_probs, probs_by_epoch: Sequence[np.ndarray] = (), *, method: str = DEFAULT_METHOD,
               epochs: int = DEFAULT_EPOCHS) -> LabelAudit:
    """The test set's audit: cleanlab's estimates from the final probabilities, the ranking from the mean of the
    last `epochs` epoch snapshots (the final probabilities alone when epochs is 1 or there are no snapshots)."""
    if epochs > 1 and len(probs_by_epoch) >= 2:
        used = min(epochs, len(probs_by_epoch))
        return audit_labels(labels, final_probs, method=method, epochs_used=used,
                            rank_probs=epoch_averaged(probs_by_epoch, used))
    return audit_labels(labels, final_probs, method=method, epochs_used=1)


# ---------------------------------------------------------------- review marks


def check_mark(split: str, index, mark: str | None, valid_indices) -> tuple[str, int, str | None]:
    """(split, index, mark) checked: a known split, an image of that split and one of MARKS (None clears)."""
    if split not in SPLITS:
        raise AuditError(f"split={split!r} is not allowed; choose one of {', '.join(SPLITS)}")
    if mark is not None and mark not in MARKS:
        raise AuditError(f"mark={mark!r} is not allowed; choose one of {', '.join(MARKS)}")
    valid = np.asarray(valid_indices)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not np.isin(index, valid):
        where = f"0 to {len(valid) - 1}" if split == "test" else "the audited training images"
        raise AuditError(f"{split} image {index!r} does not exist; allowed: {where}")
    return split, int(index), mark


def review_table(audit: LabelAudit, split: str, marks: dict[tuple[str, int], str], names) -> pd.DataFrame:
    """The CSV export: index, split, given label, suggested label, score, mark (blank when unmarked)."""
    import pandas as pd

    table = audit.table
    return pd.DataFrame({
        "index": table["index"], "split": split,
        "given_label": [names[i] for i in table["given"]],
        "suggested_label": [names[i] for i in table["suggested"]],
        "score": table["score"].round(6),
        "mark": [marks.get((split, int(i)), "") for i in table["index"]],
    })


def marked_for_exclusion(marks: dict[tuple[str, int], str]) -> list[int]:
    """The training indices the user marked "wrong label": what "Train without the marked images" leaves out."""
    return sorted(index for (split, index), mark in marks.items() if split == "train" and mark == "wrong label")


# ---------------------------------------------------------------- a stored run's audit


def test_inputs(store, run_id: str, epochs: int = DEFAULT_EPOCHS) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(test labels, final probabilities, the last `epochs` epoch snapshots' probabilities) of a stored run."""
    from core.store import StoreError

    evaluation = store.read_evaluation(run_id)
    if evaluation is None:
        status = store.read_status(run_id)
        raise AuditError(f"run {run_id!r} ({status.status}) has no model and no test predictions to audit; "
                         "audit a run that finished at least one epoch")
    _, probs, labels = evaluation
    snapshots = []
    for epoch in store.epochs_saved(run_id)[-epochs:]:
        try:
            snapshot = store.read_epoch_snapshot(run_id, epoch).probs
        except StoreError:
            return labels, probs, []  # a damaged snapshot: the final probabilities alone
        if snapshot.shape == probs.shape:
            snapshots.append(snapshot)
    return labels, probs, snapshots


def train_result(store, run_id: str):
    """The run's completed training-set audit (core.records.TrainAudit), or AuditError saying why there is none."""
    audit = store.read_train_audit(run_id)
    if audit is None:
        raise AuditError(f"run {run_id!r}: its training set has not been audited; run "
                         f"`python -m core audit-train {run_id} --folds 3` or press 'Audit the training set'")
    if audit.state != "completed":
        progress = f" (fold {audit.folds_done + 1} of {audit.folds})" if audit.state == "running" else ""
        verb = "is running" if audit.state == "running" else audit.state
        raise AuditError(f"run {run_id!r}: its training-set audit {verb}{progress}"
                         + (f": {audit.error}" if audit.error else ""))
    return audit


def audit_of_run(store, run_id: str, split: str = "test", *, method: str = DEFAULT_METHOD,
                 epochs: int = DEFAULT_EPOCHS) -> LabelAudit:
    """A stored run's audit of its test set (final and epoch snapshots) or of its training set (audit-train)."""
    if split not in SPLITS:
        raise AuditError(f"split={split!r} is not allowed; choose one of {', '.join(SPLITS)}")
    check_method(method)
    if split == "train":
        result = train_result(store, run_id)
        return audit_labels(result.labels, result.probs, indices=result.indices, method=method)
    labels, probs, snapshots = test_inputs(store, run_id, epochs)
    return audit_test(labels, probs, snapshots, method=method, epochs=epochs)
