"""What the fault suite (tests/test_faults_*.py) shares: the CLI run in-process or in a subprocess, a store
holding the shipped run, and the tally of cases that docs/troubleshooting.md reports (checked here)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from core.cli import main

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "cached_models" / "seed-article-full-mnist"
SHIPPED_ID = SHIPPED.name
DOCS = ROOT / "docs" / "troubleshooting.md"
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049


def run_cli(capsys, *args: str, runs_dir) -> tuple[int, str, str]:
    """`python -m core ARGS --runs-dir RUNS_DIR` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main([*args, "--runs-dir", str(runs_dir)])
    out, err = capsys.readouterr()
    return code, out, err


def cli_subprocess(*args: str, runs_dir, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    """The same command as a user types it, in a fresh Python."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "core", *args, "--runs-dir", str(runs_dir)], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=timeout, **popen)


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    """Bad input: a non-zero exit, no traceback, a last line starting 'error:' that holds every fragment."""
    assert code != 0
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error:"), err
    for fragment in fragments:
        assert fragment in last, (fragment, last)


def copy_shipped(store_root: Path, run_id: str = SHIPPED_ID) -> str:
    """A copy of the shipped full-MNIST run in `store_root` (no training); returns its run id."""
    shutil.copytree(SHIPPED, store_root / run_id)
    return run_id


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes: to prove that a fault changed nothing."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    array = np.asarray(array, np.uint8)
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.tobytes())


def write_idx_folder(folder: Path, n_train: int = 60, n_train_labels: int | None = None, n_test: int = 20) -> Path:
    """A folder with the four IDX files of a tiny MNIST; n_train_labels != n_train makes the counts differ."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte", rng.integers(0, 256, (n_train, 28, 28)), IMAGES_MAGIC)
    write_idx(folder / "train-labels-idx1-ubyte", np.arange(n_train_labels or n_train) % 10, LABELS_MAGIC)
    write_idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28)), IMAGES_MAGIC)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.arange(n_test) % 10, LABELS_MAGIC)
    return folder


# ----- the tally that docs/troubleshooting.md reports --------------------------------------------


def tally() -> dict[str, int]:
    """Cases per kind, counted from the suite's own case lists, so the docs cannot drift from the tests."""
    import test_faults_concurrency as concurrency
    import test_faults_input as inputs
    import test_faults_runs as runs
    import test_faults_security as security
    import test_faults_store as store

    return {
        "bad inputs": len(inputs.BAD_FLAGS) + len(inputs.BAD_COMBINATIONS) + len(inputs.BAD_DATA)
        + len(inputs.BAD_UPLOADS) + len(inputs.SUBPROCESS_FLAGS) + len(inputs.SIDEBAR_CASES)
        + len(security.BAD_RUN_IDS) + len(security.BAD_NAMES),
        "faults injected": len(store.DAMAGES) + len(store.AUDIT_DAMAGES) + len(store.PERMISSION_CASES) + len(runs.FAULTS)
        + len(security.PLANTED_FILES) + len(security.ESCAPING_LINKS),
        "concurrent cases": len(concurrency.CASES),
    }


def test_the_troubleshooting_page_reports_the_suites_counts():
    text = DOCS.read_text()
    for kind, count in tally().items():
        words = r"\s+".join(kind.split())  # the sentence may wrap between the words
        match = re.search(r"\*\*(\d+)\*\*\s+" + words, text)
        assert match, f"docs/troubleshooting.md does not state the number of {kind}"
        assert int(match.group(1)) == count, f"docs say {match.group(1)} {kind}, the suite has {count}"
