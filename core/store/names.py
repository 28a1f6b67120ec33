"""The file names of a run folder: only the run store's modules import these."""

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
MODEL_FILE = "model.keras"
EVALUATION_FILE = "evaluation.json"
TEST_PREDICTIONS_FILE = "test_predictions.npz"
EPOCHS_DIR = "epochs"
SNAPSHOT_ARRAYS = ("probs", "c1")  # the arrays of an epoch snapshot file; EpochSnapshot.extras adds others
SWEEPS_DIR = ".sweeps"  # one folder per sweep; hidden, so the run list does not take it for a run
SWEEP_FILE = "sweep.json"  # the sweep's spec and whether a stop was requested
SWEEP_JOURNAL = "journal.log"  # Optuna's JournalFileBackend: the study itself
SWEEP_RAY_DIR = "ray"  # Ray Tune's experiment folder of the sweep
SWEEP_LOCK = "ask.lock"  # held while a worker counts the trials and asks for one more
RESULTS_DIR = ".results"  # results of other long work, e.g. .results/lr_find/<id>.json
TRAIN_AUDIT_STATE_FILE = "label_audit_train.json"  # the K-fold training-set audit: its progress and outcome
TRAIN_AUDIT_ARRAYS_FILE = "label_audit_train.npz"  # its out-of-sample probabilities, labels and image indices
LABEL_MARKS_FILE = "label_marks.json"  # the user's review marks of suspected label errors
HEARTBEAT_FILE = ".alive"  # touched every 2 s by the process training the run
STOP_FILE = ".stop"  # left by request_stop: the run's trainer stops within 0.2 s
TRAINING_LOCK_FILE = ".training.lock"  # in the store's root: held by the one training of the store
WEIGHT_PREFIX = "weight_"  # weight_000, weight_001, ...: the model's weights in a snapshot, in get_weights() order
ANALYSIS_DIR = "analysis"  # computed once per run and epoch, then read back (t-SNE maps)
