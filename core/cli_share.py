"""`python -m core report`, `export` and `export-metrics`: share a run's results (registered by core.cli).

Cheap checks (the output path, the format, a model to export, Chromium for --pdf) come before TensorFlow loads;
every refusal is one line and nothing is overwritten without --force."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from core.outputs import check_output, write_file, write_folder
from core.store import RunStore, StoreError

EXPORT_FORMATS = ("keras", "onnx", "tflite", "tensorboard")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PDF_TIMEOUT_S = 60


class ShareError(ValueError):
    """A one-line refusal (the CLI prints it as `error: ...` and exits with 2)."""


def add_commands(commands, hidden_flags) -> None:
    """The three subparsers; hidden_flags(sub) adds the --runs-dir/--json every subcommand accepts."""
    report = commands.add_parser("report", help="a self-contained HTML audit report of a run (or of two)")
    report.add_argument("run", help="run id (see `list`)")
    report.add_argument("--compare", metavar="RUN_B", help="a second run: the report compares the two")
    report.add_argument("-o", "--output", required=True, help="the .html file to write (a .pdf with --pdf)")
    report.add_argument("--pdf", action="store_true", help="print the report to PDF with headless Chromium")
    export = commands.add_parser("export", help="the run's model (.keras, ONNX, TFLite, checked) or its curves "
                                                "(TensorBoard event files)")
    export.add_argument("run", help="run id (see `list`)")
    export.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    export.add_argument("-o", "--output", required=True, help="the file to write (a folder for tensorboard)")
    metrics = commands.add_parser("export-metrics", help="every run's metrics as one tidy CSV or Parquet table")
    metrics.add_argument("-o", "--output", help="the file to write (default: CSV on stdout)")
    metrics.add_argument("--format", choices=("csv", "parquet"), help="default: from the file's suffix, else csv")
    for sub in (report, export, metrics):
        sub.add_argument("--force", action="store_true", help="overwrite an existing output")
        hidden_flags(sub)


def chromium() -> str | None:
    """Chromium's path: $LENET_CHROMIUM, Debian's /usr/bin/chromium, or a Chromium/Chrome on PATH."""
    for candidate in (os.environ.get("LENET_CHROMIUM"), "/usr/bin/chromium", *CHROMIUM_NAMES):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def print_pdf(html: str, browser: str) -> bytes:
    """The report printed to PDF by headless Chromium (the charts drawn before it prints)."""
    with tempfile.TemporaryDirectory(prefix="lenet-pdf-") as folder:
        page, pdf = Path(folder) / "report.html", Path(folder) / "report.pdf"
        page.write_text(html, encoding="utf-8")
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                   "--disable-background-networking", "--no-pdf-header-footer", "--virtual-time-budget=15000",
                   f"--user-data-dir={folder}/profile", f"--print-to-pdf={pdf}", page.as_uri()]
        try:
            subprocess.run(command, capture_output=True, timeout=PDF_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ShareError(f"Chromium ({browser}) could not print the report: {exc}") from None
        if not pdf.is_file() or pdf.stat().st_size == 0:
            raise ShareError(f"Chromium ({browser}) did not print the report to PDF")
        return pdf.read_bytes()


def cmd_report(args, store: RunStore) -> int:
    browser = chromium() if args.pdf else None
    if args.pdf and browser is None:
        raise ShareError("--pdf needs Chromium to print the report, and none was found (looked for "
                         "$LENET_CHROMIUM, /usr/bin/chromium and chromium or google-chrome on PATH); install "
                         "Debian's chromium package, or leave out --pdf to write the HTML report")
    check_output(args.output, args.force)
    if args.compare is not None:
        store.read_status(args.compare)  # an unknown second run is refused before the work
    from core.report import build_report
    from core.report_compare import build_comparison

    html = build_comparison(store, args.run, args.compare) if args.compare else build_report(store, args.run)
    data = print_pdf(html, browser) if args.pdf else html.encode("utf-8")
    path = write_file(args.output, data, args.force)
    _say(args, {"path": str(path), "bytes": len(data), "format": "pdf" if args.pdf else "html"},
         f"wrote {path} ({len(data) / 1e6:.2f} MB)")
    return 0


def cmd_export(args, store: RunStore) -> int:
    check_output(args.output, args.force, folder=args.format == "tensorboard")
    if args.format == "tensorboard":
        from core.scalars import write_tensorboard

        counts = {}
        path = write_folder(args.output, lambda folder: counts.update(write_tensorboard(store, args.run, folder)),
                            args.force)
        _say(args, {"path": str(path), "format": "tensorboard", "scalars": counts},
             f"wrote TensorBoard event files to {path} ({', '.join(f'{k}: {v} scalars' for k, v in counts.items())}); "
             f"view them with: tensorboard --logdir {path}")
        return 0
    if not store.has_model(args.run):
        raise StoreError(f"run {args.run!r} has no saved model, so there is nothing to export")
    from core.export import export_model

    result = export_model(store, args.run, args.format)
    path = write_file(args.output, result.data, args.force)
    parity = result.parity
    _say(args, {"path": str(path), "format": args.format, "bytes": len(result.data), "seconds": round(result.seconds, 2),
                "parity": {"images": parity.images, "max_prob_diff": parity.max_prob_diff,
                           "identical_predictions": parity.identical, "runtime": parity.runtime}},
         f"wrote {path} ({len(result.data) / 1e3:.0f} kB in {result.seconds:.1f} s); {parity.text}")
    return 0


def cmd_export_metrics(args, store: RunStore) -> int:
    from core.scalars import metrics_table, table_bytes, table_format

    fmt = table_format(args.output, args.format)
    if args.output is None and fmt == "parquet":
        raise ShareError("Parquet is binary: give a file with -o FILE.parquet")
    if args.output is not None:
        check_output(args.output, args.force)
    table = metrics_table(store)
    data = table_bytes(table, fmt)
    if args.output is None:
        sys.stdout.write(data.decode())
        return 0
    path = write_file(args.output, data, args.force)
    _say(args, {"path": str(path), "format": fmt, "rows": len(table), "runs": int(table["run_id"].nunique())},
         f"wrote {path}: {len(table):,} rows from {table['run_id'].nunique()} runs")
    return 0


def _say(args, payload: dict, text: str) -> None:
    print(json.dumps(payload, indent=2) if args.json else text)


COMMANDS = {"report": cmd_report, "export": cmd_export, "export-metrics": cmd_export_metrics}
