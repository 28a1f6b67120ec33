"""A run's model as it was after any saved epoch, rebuilt from its config and the epoch snapshot's weights."""

from __future__ import annotations

from core.store import RunStore, StoreError

NO_WEIGHTS = ("run {run!r} kept no weights at epoch {epoch} (runs trained before LeNet Lab stored the model at "
              "every epoch); only its final saved model can be shown")


def has_weights(store: RunStore, run_id: str, epoch: int) -> bool:
    return bool(store.read_epoch_snapshot(run_id, epoch).weights)


def model_at_epoch(store: RunStore, run_id: str, epoch: int):
    """The Keras model after `epoch`. Raises StoreError naming what is missing or damaged."""
    from core.model import build_model

    snapshot = store.read_epoch_snapshot(run_id, epoch)
    if not snapshot.weights:
        raise StoreError(NO_WEIGHTS.format(run=run_id, epoch=epoch))
    model = build_model(store.read_config(run_id))
    try:
        model.set_weights(list(snapshot.weights))
    except ValueError as exc:
        raise StoreError(f"run {run_id!r}: the epoch {epoch} weights do not fit the run's model ({exc})") from None
    return model


FINAL = 0  # the epoch number that means the run's saved model (shipped runs kept no weights per epoch)


def model_for(store: RunStore, run_id: str, epoch: int):
    """The model after `epoch`, or the run's saved model for FINAL."""
    return store.load_model(run_id) if int(epoch) == FINAL else model_at_epoch(store, run_id, epoch)

