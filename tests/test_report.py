"""The audit report (issue 19), without a browser: what it holds for a run with and without a model, plotly.js
embedded once, the comparison report, and the CLI's refusals (tests/test_browser_report.py opens it in Chromium)."""

import re

import pytest

from core import cli, cli_share
from core.report import build_report
from core.report_compare import build_comparison
from core.store import RunStore

PLOTLY_BANNER = re.compile(r"\* plotly\.js (\([\w -]+\) )?v\d")


@pytest.fixture
def store(finished_run, lenet_runs):
    return RunStore(lenet_runs)


def test_report_holds_the_audit_of_the_run(store, finished_run):
    html = build_report(store, finished_run)
    status, config = store.read_status(finished_run), store.read_config(finished_run)
    metrics, probs, labels = store.read_evaluation(finished_run)
    assert len(PLOTLY_BANNER.findall(html)) == 1 and "<script src=" not in html  # embedded once, nothing fetched
    assert html.count('class="plotly-graph-div"') == 5  # epoch curves, batch curves, matrix, per class, epochs
    assert f"{metrics['accuracy']:.2%}" in html and status.source_detail in html
    assert re.search(r"SHA-256 of the test images and labels</td><td>[0-9a-f]{64}<", html)
    assert f"<td>learning_rate</td><td>{config.learning_rate}</td>" in html
    assert "<td>tensorflow</td><td>2.21.0</td>" in html  # the versions the run was trained with
    errors = int((probs.argmax(1) != labels).sum())
    assert f"Most confident errors ({min(errors, 40)} shown)" in html
    assert html.count("data:image/png;base64,") >= min(errors, 40)
    assert "<h2>Model</h2>" in html and "c1_conv" in html
    assert len(html.encode()) < 2_000_000  # plotly.js's cartesian bundle is 1.5 MB of it


def test_the_embedded_plotly_js_draws_every_trace_the_report_uses(store, finished_run, monkeypatch):
    """The report embeds plotly.js's cartesian bundle (core/assets, from npm plotly.js-cartesian-dist-min) when it
    is the plotly package's own plotly.js version; after a plotly upgrade this fails until the asset is updated
    (the report would fall back to the 4.8 MB full bundle)."""
    from plotly.offline import get_plotlyjs

    from core import report_html

    bundle = report_html.CARTESIAN_BUNDLE.read_text()
    assert report_html._version(bundle) == report_html._version(get_plotlyjs())
    assert report_html.plotly_js() == (bundle, "plotly.js (cartesian bundle)")
    types, chart = set(), report_html.chart
    monkeypatch.setattr(report_html, "chart", lambda figure, *a: types.update(t.type for t in figure.data)
                        or chart(figure, *a))
    build_report(store, finished_run)
    assert types and types <= report_html.CARTESIAN_TRACES, types


def test_a_run_without_a_model_still_renders_without_model_sections(store, finished_run, lenet_runs):
    (lenet_runs / finished_run / "model.keras").unlink()
    html = build_report(store, finished_run)
    assert "has no saved model, so the report has no model section" in html and "<h2>Model</h2>" not in html
    assert "Confusion matrix" in html  # the stored evaluation still gives the results
    for name in ("evaluation.json", "test_predictions.npz"):
        (lenet_runs / finished_run / name).unlink()
    html = build_report(store, finished_run)
    assert "From the epoch 1 snapshot (the run has no model)" in html and "<h2>Model</h2>" not in html
    for snapshot in (lenet_runs / finished_run / "epochs").iterdir():
        snapshot.unlink()
    html = build_report(store, finished_run)
    assert "no test predictions, so the report has no results sections" in html
    assert "Training curves" in html and "Confusion matrix" not in html


def test_comparison_report_marks_differences_and_disagreements(store, finished_run, lenet_runs):
    import shutil

    other = "20990101-000000-copy-0000"
    shutil.copytree(lenet_runs / finished_run, lenet_runs / other)
    store.write_status(other, name="the copy")
    html = build_comparison(store, finished_run, other)
    assert len(PLOTLY_BANNER.findall(html)) == 1 and "the copy" in html
    assert '<tr class="diff"><td>run id</td>' in html and '<tr><td>learning_rate</td>' in html  # same config
    assert "A right, B wrong: 0 test images" in html  # the same model disagrees with itself nowhere


def test_cli_report_writes_once_and_refuses_bad_input(store, finished_run, tmp_path, capsys, monkeypatch):
    target = tmp_path / "report.html"
    assert cli.main(["report", finished_run, "-o", str(target)]) == 0
    assert "wrote" in capsys.readouterr().out and target.read_text().startswith("<!DOCTYPE html>")
    before = target.read_bytes()
    monkeypatch.setattr(cli_share, "chromium", lambda: None)
    cases = [(["report", finished_run, "-o", str(target)], "already exists; pass --force"),
             (["report", finished_run, "--compare", "no-such-run", "-o", str(tmp_path / "c.html")], "not found"),
             (["report", finished_run, "--pdf", "-o", str(tmp_path / "r.pdf")], "--pdf needs Chromium"),
             (["report", finished_run, "-o", str(tmp_path / "nowhere" / "r.html")], "does not exist")]
    for args, expected in cases:
        assert cli.main(args) == 2
        out, err = capsys.readouterr()
        [line] = err.strip().splitlines()
        assert out == "" and line.startswith("error: ") and expected in line, (args, line)
    assert target.read_bytes() == before and not (tmp_path / "r.pdf").exists()


def test_a_long_runs_batch_curve_is_thinned_so_the_file_stays_small(store, finished_run, monkeypatch):
    import core.report

    store.append_metrics(finished_run, [{"type": "batch", "epoch": 1, "batch": 100 + i, "step": 100 + i, "loss": 0.5,
                                         "accuracy": 0.9, "time": 9.0 + i} for i in range(10)])
    batch, _ = store.read_metrics(finished_run)
    monkeypatch.setattr(core.report, "BATCH_POINTS", 3)
    html = build_report(store, finished_run)
    assert f"The batch curve shows 3 of the {len(batch):,} batch records" in html
