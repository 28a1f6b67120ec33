"""The comparison report of two runs: their configs side by side with the differences marked, their results,
curves, confusion matrices, per-class F1, and the test images one run gets right and the other wrong."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from core import figures_training
from core import report_html as h
from core.report import RunAudit, confusion_html, gather, header
from core.store import RunStore

DISAGREEMENTS_SHOWN = 30
RESULT_ROWS = {"accuracy": ".2%", "error_count": ",", "macro_f1": ".4f", "weighted_f1": ".4f", "loss": ".4f"}


def _label(audit: RunAudit) -> str:
    return audit.status.name or audit.run_id


def settings_table(a: RunAudit, b: RunAudit) -> str:
    rows = [("name", _label(a), _label(b)), ("run id", a.run_id, b.run_id), ("status", a.status.status, b.status.status),
            ("trained on", a.status.source_detail, b.status.source_detail)]
    config_a, config_b = dataclasses.asdict(a.config), dataclasses.asdict(b.config)
    rows += [(name, config_a[name], config_b[name]) for name in config_a]
    rows += [("parameters", *(f"{r.parameters:,}" if r.parameters else None for r in (a, b))),
             ("training time", *(f"{r.status.train_time:.1f} s" if r.status.train_time else None for r in (a, b)))]
    for key, shown in RESULT_ROWS.items():
        rows.append((f"test {key.replace('_', ' ')}",
                     *(format(m[key], shown) if m and key in m else None for m in (a.metrics, b.metrics))))
    frame = pd.DataFrame([(k, "" if x is None else str(x), "" if y is None else str(y)) for k, x, y in rows],
                         columns=["", "A", "B"])
    return h.table(frame, highlight=[x != y for _, x, y in rows])


def per_class_f1(a: RunAudit, b: RunAudit) -> str:
    from core.analysis import class_report

    reports = [class_report(r.labels, r.probs.argmax(axis=1), r.names)["f1"] for r in (a, b)]
    frame = pd.DataFrame({"F1 of A": reports[0], "F1 of B": reports[1]})
    frame["B − A"] = frame["F1 of B"] - frame["F1 of A"]
    return h.table(frame.rename_axis("class"), {c: ".4f" for c in frame.columns}, index=True)


def disagreements(a: RunAudit, b: RunAudit) -> str:
    from core.analysis import epoch_changes

    changes = epoch_changes(a.labels, a.probs, b.probs)  # "fixed": A wrong, B right; "broken": A right, B wrong
    pred_a, pred_b, names = a.probs.argmax(axis=1), b.probs.argmax(axis=1), a.names
    images = a.images if a.images is not None else b.images
    parts = []
    for key, title in (("broken", "A right, B wrong"), ("fixed", "A wrong, B right")):
        indices = changes[key].tolist()
        shown = indices[:DISAGREEMENTS_SHOWN]
        parts.append(h.section(f"{title}: {len(indices):,} test images" + (f" ({len(shown)} shown)" if shown else ""),
                               h.thumbnails(images, shown, [f"#{i} · A {names[pred_a[i]]} · B {names[pred_b[i]]}"
                                                            for i in shown]) if shown else "", level=3))
    return h.section("Where they disagree", h.paragraph(
        "Each tile: test index, then each run's predicted class.", muted=True), *parts)


def build_comparison(store: RunStore, run_a: str, run_b: str) -> str:
    """The HTML of the comparison report of runs A and B."""
    a, b = gather(store, run_a), gather(store, run_b)
    body = [header(f"Comparison: {_label(a)} (A) and {_label(b)} (B)", f"runs {run_a} and {run_b}")]
    body += [h.note(f"A: {n}") for n in a.notes] + [h.note(f"B: {n}") for n in b.notes]
    body.append(h.section("Settings and results", h.paragraph(
        "Rows where the two runs differ are highlighted.", muted=True), settings_table(a, b)))
    body.append(h.section("Training curves", *(h.section(f"{letter}: {_label(r)}", h.chart(
        figures_training.epoch_figure(r.epoch, ended=True)), level=3) for letter, r in (("A", a), ("B", b)))))
    both = a.probs is not None and b.probs is not None
    if both:
        body.append(h.section("Confusion matrices", "<div class=\"grid\">", *(
            f"<div><h3>{h.esc(letter)}: {h.esc(_label(r))}</h3>{confusion_html(r, height=440)}</div>"
            for letter, r in (("A", a), ("B", b))), "</div>"))
    same_test_set = both and len(a.labels) == len(b.labels) and np.array_equal(a.labels, b.labels)
    if same_test_set:
        body.append(h.section("Per-class F1", per_class_f1(a, b)))
        body.append(disagreements(a, b))
    elif both:
        body.append(h.note("The two runs were tested on different test sets, so their images are not compared."))
    return h.page(f"LeNet Lab comparison: {_label(a)} and {_label(b)}", body)
