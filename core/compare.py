"""Is the difference real? Two runs' test accuracies with Wilson 95% intervals, the exact McNemar test on their
paired predictions, the images each gets right and the other wrong, and the confusion-matrix difference; two seed
groups' mean accuracies with Welch's t-test. scipy does the statistics (binomtest, ttest_ind)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats
from sklearn.metrics import confusion_matrix

from core.store import RunStore, StoreError

LEVEL = 0.95
ALPHA = 0.05


class CompareError(ValueError):
    """A one-line refusal: a run without test predictions, two runs tested on different images, ..."""


@dataclass
class Accuracy:
    run_id: str
    name: str
    correct: int
    n: int
    low: float  # the Wilson 95% interval of the accuracy
    high: float

    @property
    def value(self) -> float:
        return self.correct / self.n if self.n else float("nan")


@dataclass
class Comparison:
    a: Accuracy
    b: Accuracy
    b_only: int  # images B gets right and A wrong
    a_only: int  # images A gets right and B wrong
    p_value: float  # exact McNemar: a two-sided binomial test of b_only among the discordant images
    sentence: str
    a_right_b_wrong: list[int] = field(default_factory=list)  # test indices, for the galleries
    b_right_a_wrong: list[int] = field(default_factory=list)
    confusion_difference: np.ndarray | None = None  # B's confusion matrix minus A's (rows: true class)

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA

    def to_dict(self) -> dict:
        def accuracy(x: Accuracy) -> dict:
            return {"run_id": x.run_id, "name": x.name, "accuracy": x.value, "correct": x.correct, "n": x.n,
                    "ci95": [x.low, x.high]}

        return {"a": accuracy(self.a), "b": accuracy(self.b), "b_right_a_wrong": self.b_only,
                "a_right_b_wrong": self.a_only, "p_value": self.p_value, "significant_at_5%": self.significant,
                "sentence": self.sentence, "a_right_b_wrong_indices": self.a_right_b_wrong,
                "b_right_a_wrong_indices": self.b_right_a_wrong,
                "confusion_difference": None if self.confusion_difference is None
                else self.confusion_difference.tolist()}


def wilson(correct: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    interval = stats.binomtest(int(correct), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(interval.low), float(interval.high)


def mcnemar_exact(b_only: int, a_only: int) -> float:
    """The exact McNemar p-value: under no difference, each discordant image is B's with probability 1/2."""
    discordant = b_only + a_only
    return 1.0 if discordant == 0 else float(stats.binomtest(b_only, discordant, 0.5).pvalue)


def _predictions(store: RunStore, run_id: str) -> tuple[str, np.ndarray, np.ndarray]:
    evaluation = store.read_evaluation(run_id)
    if evaluation is None:
        raise CompareError(f"run {run_id!r} has no test predictions (it never finished an evaluation); "
                           f"compare runs that completed or were stopped with a saved model")
    _, probs, labels = evaluation
    return store.read_status(run_id).name or run_id, probs.argmax(axis=1), labels


def sentence(b_only: int, a_only: int, p_value: float, names: tuple[str, str] = ("A", "B")) -> str:
    a, b = names
    verdict = "significant" if p_value < ALPHA else "not significant"
    return (f"{b} is right where {a} is wrong on {b_only} image{'s' * (b_only != 1)} and the reverse on {a_only}: "
            f"{p_text(p_value)}, {verdict} at 5%")


def p_text(p_value: float) -> str:
    return "p < 0.0001" if p_value < 1e-4 else f"p = {p_value:.2g}"


def compare_predictions(a: tuple[str, str, np.ndarray], b: tuple[str, str, np.ndarray], labels: np.ndarray,
                        n_classes: int | None = None) -> Comparison:
    """(run id, name, predicted classes) of each run on the same test labels."""
    (id_a, name_a, pred_a), (id_b, name_b, pred_b) = a, b
    right_a, right_b = pred_a == labels, pred_b == labels
    b_only, a_only = int(np.sum(right_b & ~right_a)), int(np.sum(right_a & ~right_b))
    p_value = mcnemar_exact(b_only, a_only)
    n = len(labels)
    classes = np.arange(n_classes or int(max(labels.max(), pred_a.max(), pred_b.max())) + 1)
    difference = (confusion_matrix(labels, pred_b, labels=classes)
                  - confusion_matrix(labels, pred_a, labels=classes))
    return Comparison(
        a=Accuracy(id_a, name_a, int(right_a.sum()), n, *wilson(right_a.sum(), n)),
        b=Accuracy(id_b, name_b, int(right_b.sum()), n, *wilson(right_b.sum(), n)),
        b_only=b_only, a_only=a_only, p_value=p_value, sentence=sentence(b_only, a_only, p_value),
        a_right_b_wrong=np.flatnonzero(right_a & ~right_b).tolist(),
        b_right_a_wrong=np.flatnonzero(right_b & ~right_a).tolist(), confusion_difference=difference)


def compare_runs(store: RunStore, run_a: str, run_b: str) -> Comparison:
    """The comparison of two runs' stored test predictions; CompareError if they cannot be paired."""
    if run_a == run_b:
        raise CompareError("give two different runs to compare")
    name_a, pred_a, labels_a = _predictions(store, run_a)
    name_b, pred_b, labels_b = _predictions(store, run_b)
    if len(labels_a) != len(labels_b) or not np.array_equal(labels_a, labels_b):
        raise CompareError(f"the runs were tested on different test sets ({len(labels_a)} and {len(labels_b)} "
                           f"images, or other labels): McNemar's test needs the same images")
    return compare_predictions((run_a, name_a, pred_a), (run_b, name_b, pred_b), labels_a)


@dataclass
class GroupComparison:
    a: list[float]
    b: list[float]
    t_statistic: float
    p_value: float
    sentence: str

    def to_dict(self) -> dict:
        return {"a": describe_group(self.a), "b": describe_group(self.b), "t": self.t_statistic,
                "p_value": self.p_value, "sentence": self.sentence}


def describe_group(values: list[float]) -> dict:
    array = np.asarray(values, float)
    return {"n": len(array), "mean": float(array.mean()) if len(array) else None,
            "std": float(array.std(ddof=1)) if len(array) > 1 else None, "values": array.tolist()}


def compare_groups(a: list[float], b: list[float]) -> GroupComparison:
    """Welch's t-test of two seed groups' test accuracies (each needs at least two runs)."""
    if len(a) < 2 or len(b) < 2:
        raise CompareError(f"a test of two groups' means needs at least 2 runs in each (got {len(a)} and {len(b)})")
    result = stats.ttest_ind(b, a, equal_var=False)
    p_value = float(result.pvalue) if np.isfinite(result.pvalue) else 1.0
    ga, gb = describe_group(a), describe_group(b)
    verdict = "significant" if p_value < ALPHA else "not significant"
    text = (f"group B's mean test accuracy {gb['mean']:.2%} ± {gb['std']:.2%} (n={gb['n']}) against A's "
            f"{ga['mean']:.2%} ± {ga['std']:.2%} (n={ga['n']}): Welch's t-test {p_text(p_value)}, {verdict} at 5%")
    return GroupComparison(list(a), list(b), float(result.statistic), p_value, text)


def group_accuracies(store: RunStore, run_ids: list[str]) -> list[float]:
    values = []
    for run_id in run_ids:
        accuracy = store.read_status(run_id).test_accuracy
        if accuracy is None:
            raise StoreError(f"run {run_id!r} has no test accuracy")
        values.append(float(accuracy))
    return values
