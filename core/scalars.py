"""Every run's metrics for other tools: one tidy table across runs (CSV or Parquet), and TensorBoard event
files of a run's curves."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from core.store import RunStore, StoreError

ID_COLUMNS = ["run_id", "run_name", "kind", "epoch", "batch", "step", "time"]
NOT_METRICS = {"type", "epoch", "batch", "step", "time", "batches", "partial", "steps_done"}
TABLE_FORMATS = ("csv", "parquet")
# TensorBoard: one folder per split, so `tensorboard --logdir` overlays them as Keras' own callback does
SPLITS = {"train": "", "validation": "val_", "test": "test_"}
NOT_CURVES = {"epoch_time", "eval_time"}  # timings of the run, not curves of the model


def run_metrics(store: RunStore, run_id: str, name: str = "") -> pd.DataFrame:
    """One row per (record, metric): run_id, run_name, kind (batch or epoch), epoch, batch, step, time, metric,
    value. `time` is seconds since the run started."""
    frames = []
    for kind, frame in zip(("batch", "epoch"), store.read_metrics(run_id)):
        if frame.empty:
            continue
        frame = frame.assign(run_id=run_id, run_name=name, kind=kind)
        for column in ID_COLUMNS:
            if column not in frame:
                frame[column] = pd.NA
        metrics = [c for c in frame.columns if c not in NOT_METRICS and c not in ID_COLUMNS
                   and pd.api.types.is_numeric_dtype(frame[c])]
        long = frame.melt(id_vars=ID_COLUMNS, value_vars=metrics, var_name="metric", value_name="value")
        frames.append(long.dropna(subset=["value"]))
    if not frames:
        return _empty()
    table = pd.concat(frames, ignore_index=True)
    return table.astype({"epoch": "Int64", "batch": "Int64", "step": "Int64", "value": "float64"})


def metrics_table(store: RunStore) -> pd.DataFrame:
    """run_metrics of every readable run in the store, oldest run first."""
    frames = []
    for info in reversed(store.list_runs()):
        if info.damaged:
            continue
        try:
            frames.append(run_metrics(store, info.run_id, info.name))
        except StoreError:  # deleted since it was listed
            continue
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else _empty()


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=[*ID_COLUMNS, "metric", "value"])


def table_format(path: str | None, fmt: str | None) -> str:
    """The table's format: `fmt` if given, else from the file's suffix, else CSV."""
    if fmt is None:
        fmt = "parquet" if path and Path(path).suffix.lower() in (".parquet", ".pq") else "csv"
    if fmt not in TABLE_FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; allowed: {', '.join(TABLE_FORMATS)}")
    return fmt


def table_bytes(table: pd.DataFrame, fmt: str) -> bytes:
    if fmt == "parquet":
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)  # pyarrow
        return buffer.getvalue()
    return table.to_csv(index=False).encode()


def write_tensorboard(store: RunStore, run_id: str, folder: Path) -> dict[str, int]:
    """TensorBoard event files of the run's curves in folder/train, folder/validation and folder/test:
    epoch_<metric> at step = epoch, and the training batches as batch_<metric> at their global step.
    Returns how many scalars each split got."""
    import tensorflow as tf

    batch, epoch = store.read_metrics(run_id)
    counts = {}
    for split, prefix in SPLITS.items():
        columns = {c[len(prefix):]: c for c in epoch.columns if c.startswith(prefix) and c not in NOT_METRICS | NOT_CURVES
                   and pd.api.types.is_numeric_dtype(epoch[c])}
        if not prefix:  # the training split: the columns no other split claims
            columns = {k: c for k, c in columns.items() if not c.startswith(("val_", "test_"))}
        rows = [(f"epoch_{name}", int(e), v) for name, column in columns.items()
                for e, v in zip(epoch["epoch"], epoch[column]) if pd.notna(v)]
        if split == "train" and not batch.empty:
            rows += [(f"batch_{m}", int(s), v) for m in ("loss", "accuracy") if m in batch
                     for s, v in zip(batch["step"], batch[m]) if pd.notna(v)]
        if not rows:
            continue
        writer = tf.summary.create_file_writer(str(folder / split))
        with writer.as_default():
            for tag, step, value in rows:
                tf.summary.scalar(tag, float(value), step=step)
        writer.close()
        counts[split] = len(rows)
    if not counts:
        raise StoreError(f"run {run_id!r} has no recorded metrics to export")
    return counts
