"""The audit report: one self-contained HTML file for a run (core.report_compare: for two runs). It shows what
the Evaluate page shows, with the run's config, library versions and test data, and opens without a network."""

from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from core import figures_audit, figures_training
from core import report_html as h
from core.config import TrainConfig
from core.data import DataError, unpad_images
from core.records import RunStatus
from core.store import RunStore, StoreError

ERRORS_SHOWN = 40
SUSPECTS_SHOWN = 20
SUSPECT_MIN_CONFIDENCE = 0.9
PAIRS_SHOWN = 8
BATCH_POINTS = 1000  # batch records drawn at most (bench/RESULTS.md: about 85 bytes each)


@dataclass
class RunAudit:
    """Everything a report shows of one run; the parts a run cannot give are None, with a note saying why."""

    run_id: str
    status: RunStatus
    config: TrainConfig
    batch: pd.DataFrame
    epoch: pd.DataFrame
    names: list[str]
    probs: np.ndarray | None = None
    labels: np.ndarray | None = None
    metrics: dict | None = None
    predictions_from: str = ""
    images: np.ndarray | None = None  # uint8 (N, 28, 28), the test images
    test_detail: str = ""
    test_hash: str | None = None
    layers: list[dict] | None = None  # the model's layers; None when the run has no loadable model
    parameters: int | None = None
    epoch_accuracy: tuple[list[int], list[float]] | None = None
    notes: list[str] = field(default_factory=list)


def gather(store: RunStore, run_id: str) -> RunAudit:
    """Read the run through the store; load its model (if any) and its test set."""
    status = store.read_status(run_id)
    config = store.read_config(run_id)
    batch, epoch = store.read_metrics(run_id)
    names = [str(n) for n in status.class_names] if status.class_names else [str(i) for i in range(10)]
    audit = RunAudit(run_id, status, config, batch, epoch, names)
    model = _model(store, audit)
    _predictions(store, audit, model)
    _epoch_accuracy(store, audit)
    return audit


def _model(store: RunStore, audit: RunAudit):
    if not store.has_model(audit.run_id):
        audit.notes.append("This run has no saved model, so the report has no model section.")
        return None
    try:
        model = store.load_model(audit.run_id)
    except StoreError as exc:
        audit.notes.append(f"The model could not be loaded ({exc}), so the report has no model section.")
        return None
    from core.model import summary_rows

    audit.layers, audit.parameters = summary_rows(model), int(model.count_params())
    return model


def _test_set(audit: RunAudit, labels: np.ndarray | None):
    from core.testset import fingerprint, run_test_set

    try:
        x, y, detail = run_test_set(audit.config, labels)
    except DataError as exc:
        audit.notes.append(f"The test images could not be loaded, so indices are shown instead: {exc}")
        return None
    audit.images, audit.test_detail = unpad_images(x), detail
    audit.test_hash = fingerprint(audit.images, y)
    return x, y


def _predictions(store: RunStore, audit: RunAudit, model) -> None:
    """The stored evaluation, else the model's predictions now, else the last epoch snapshot's."""
    from core.analysis import predict_probs, summary_metrics

    try:
        evaluation = store.read_evaluation(audit.run_id)
    except StoreError as exc:
        audit.notes.append(str(exc))
        evaluation = None
    if evaluation is not None:
        audit.metrics, audit.probs, labels = evaluation
        audit.labels, audit.predictions_from = np.asarray(labels, np.int64), "the saved model's stored evaluation"
        _test_set(audit, audit.labels)
    else:
        test = _test_set(audit, None)
        saved = store.epochs_saved(audit.run_id)
        if test is None or (model is None and not saved):
            audit.notes.append("This run has no test predictions, so the report has no results sections.")
            return
        x, y = test
        if model is not None:
            audit.probs, audit.predictions_from = predict_probs(model, x), "the saved model"
        else:
            audit.probs = store.read_epoch_snapshot(audit.run_id, saved[-1]).probs
            audit.predictions_from = f"the epoch {saved[-1]} snapshot (the run has no model)"
        audit.labels = np.asarray(y, np.int64)
    if not audit.metrics or not {"accuracy", "macro_f1", "weighted_f1"} <= set(audit.metrics):
        audit.metrics = summary_metrics(audit.labels, audit.probs)


def _epoch_accuracy(store: RunStore, audit: RunAudit) -> None:
    if audit.labels is None:
        return
    epochs, accuracies = [], []
    for epoch in store.epochs_saved(audit.run_id):
        try:
            probs = store.read_epoch_snapshot(audit.run_id, epoch).probs
        except StoreError as exc:
            audit.notes.append(str(exc))
            continue
        if len(probs) == len(audit.labels):
            epochs.append(epoch)
            accuracies.append(float(np.mean(probs.argmax(axis=1) == audit.labels)))
    if epochs:
        audit.epoch_accuracy = (epochs, accuracies)


# ----- sections ---------------------------------------------------------------------------------------


def header(title: str, subtitle: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<header><h1>{h.esc(title)}</h1><p class=\"muted\">{h.esc(subtitle)} · report built {stamp} by "
            "LeNet Lab; self-contained: charts are interactive and need no network.</p></header>")


def run_section(audit: RunAudit) -> str:
    """The config, the data and the library versions."""
    status = audit.status
    config = pd.DataFrame([(k, "none" if v is None else str(v)) for k, v in dataclasses.asdict(audit.config).items()],
                          columns=["field", "value"])
    counts = " / ".join(f"{n:,}" if isinstance(n, int) else "?" for n in (status.n_train, status.n_val, status.n_test))
    data = [("dataset", audit.config.dataset), ("trained on", status.source_detail or "?"),
            ("training / validation / test images", counts),
            ("test images read from", audit.test_detail or "not loaded"),
            ("SHA-256 of the test images and labels", audit.test_hash or "not computed")]
    when = [("status", status.status), ("created", status.created), ("ended", status.ended),
            ("training time", f"{status.train_time:.1f} s" if status.train_time else "?")]
    versions = dict(status.versions or {})
    import plotly

    built = {"python": platform.python_version(), "pandas": pd.__version__, "numpy": np.__version__,
             "plotly": plotly.__version__}
    library = pd.DataFrame([(k, versions.get(k, ""), built.get(k, "")) for k in dict.fromkeys([*versions, *built])],
                           columns=["library", "trained with", "report built with"])
    return h.section("Run", "<div class=\"grid\"><div>", h.section("Config", h.table(config), level=3),
                     "</div><div>", h.section("Data", h.table(pd.DataFrame(data, columns=["", "value"])), level=3),
                     h.section("Status", h.table(pd.DataFrame(when, columns=["", "value"])), level=3),
                     h.section("Library versions", h.table(library), level=3), "</div></div>")


def results_cards(audit: RunAudit) -> str:
    m = audit.metrics
    return h.cards([("Test accuracy", f"{m['accuracy']:.2%}"), ("Test error rate", f"{1 - m['accuracy']:.2%}"),
                    ("Errors", f"{m['error_count']:,} of {m['n']:,}"), ("Macro F1", f"{m['macro_f1']:.4f}"),
                    ("Weighted F1", f"{m['weighted_f1']:.4f}"), ("Test loss", f"{m['loss']:.4f}")])


def curves_section(audit: RunAudit) -> str:
    """The epoch and batch curves; a long run's batch curve keeps BATCH_POINTS evenly spaced records (and the
    last), so a run of hundreds of epochs still gives a small file."""
    batch, note = audit.batch, ""
    if len(batch) > BATCH_POINTS:
        keep = np.unique(np.linspace(0, len(batch) - 1, BATCH_POINTS).round().astype(int))
        batch = batch.iloc[keep]
        note = h.paragraph(f"The batch curve shows {len(batch):,} of the {len(audit.batch):,} batch records, "
                           "evenly spaced.", muted=True)
    return h.section("Training curves", h.chart(figures_training.epoch_figure(audit.epoch, ended=True)),
                     h.chart(figures_training.batch_figure(batch, ended=True)), note)


def confusion_html(audit: RunAudit, height: int = 520) -> str:
    from core.analysis import confusion, most_confused_pairs

    counts = confusion(audit.labels, audit.probs.argmax(axis=1), len(audit.names))
    figure = figures_audit.confusion_matrix_figure(counts, audit.names, height=height, clickable=False)
    pairs = most_confused_pairs(counts, audit.names, top=PAIRS_SHOWN)
    return h.chart(figure) + "<h3>Most confused pairs</h3>" + (
        h.table(pairs.rename(columns={"true": "true class", "pred": "predicted as", "count": "images"}))
        if len(pairs) else h.paragraph("No errors: every test image is classified correctly.", muted=True))


def per_class_section(audit: RunAudit) -> str:
    from core.analysis import class_report

    report = class_report(audit.labels, audit.probs.argmax(axis=1), audit.names)
    formats = {c: ".4f" for c in ("precision", "recall", "f1")}
    return h.section("Per class", "<div class=\"grid\"><div>",
                     h.table(report.rename_axis("class"), formats, index=True), "</div><div>",
                     h.chart(figures_audit.class_metrics_figure(report, height=38 + 35 * len(report))), "</div></div>")


def errors_section(audit: RunAudit) -> str:
    from core.analysis import misclassified, suspected_label_errors

    names = audit.names
    errors = misclassified(audit.labels, audit.probs).head(ERRORS_SHOWN)
    suspects = suspected_label_errors(audit.labels, audit.probs, top=SUSPECTS_SHOWN,
                                      min_confidence=SUSPECT_MIN_CONFIDENCE)
    parts = [h.section(f"Most confident errors ({len(errors)} shown)", h.paragraph(
        "Each tile: test index, true class → predicted class, confidence in the prediction.", muted=True),
        h.thumbnails(audit.images, errors["index"].tolist(), [
            f"#{i} · {names[t]}→{names[p]} · {c:.0%}"
            for i, t, p, c in zip(errors["index"], errors["true"], errors["pred"], errors["confidence"])]))]
    text = (f"Test images whose given label the model rejects with at least {SUSPECT_MIN_CONFIDENCE:.0%} confidence, "
            "surest first: likely mislabelled, or at least ambiguous. Each tile: test index, given label → model's "
            "class, confidence.")
    parts.append(h.section(f"Suspected label errors ({len(suspects)} shown)", h.paragraph(text, muted=True),
                           h.thumbnails(audit.images, suspects["index"].tolist(), [
                               f"#{i} · {names[g]}→{names[p]} · {c:.0%}" for i, g, p, c in
                               zip(suspects["index"], suspects["given"], suspects["pred"], suspects["confidence"])])
                           if len(suspects) else h.paragraph("None at this confidence.", muted=True)))
    return "".join(parts)


def model_section(audit: RunAudit) -> str:
    layers = pd.DataFrame(audit.layers).rename(columns={"output_shape": "output shape", "params": "parameters"})
    return h.section("Model", h.paragraph(f"{audit.config.variant} variant, {audit.parameters:,} parameters "
                                          f"(as model.summary() lists them)."), h.table(layers, {"parameters": ","}))


def build_report(store: RunStore, run_id: str) -> str:
    """The HTML of one run's audit report."""
    audit = gather(store, run_id)
    body = [header(f"Audit report: {audit.status.name or run_id}", f"run {run_id}")]
    body += [h.note(n) for n in audit.notes]
    if audit.metrics is not None:
        body.append(h.section("Test results", results_cards(audit), h.paragraph(
            f"From {audit.predictions_from}, on {audit.metrics['n']:,} test images.", muted=True)))
    body += [run_section(audit), curves_section(audit)]
    if audit.probs is not None:
        body.append(h.section("Confusion matrix", h.paragraph(
            "Rows are true classes, columns predicted; the grey diagonal holds the correct predictions, so the "
            "colour scale shows only the errors.", muted=True), confusion_html(audit)))
        body.append(per_class_section(audit))
        if audit.epoch_accuracy:
            body.append(h.section("Test accuracy after each epoch", h.chart(
                figures_audit.epoch_accuracy_figure(*audit.epoch_accuracy, height=260))))
        body.append(errors_section(audit))
    if audit.layers is not None:
        body.append(model_section(audit))
    return h.page(f"LeNet Lab report: {audit.status.name or run_id}", body)
