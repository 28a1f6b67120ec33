"""Issue 18 in a real browser: the whole loop on a tiny run. Audit the training set (its folds train in the
dashboard's training process), mark a suspect "wrong label", train without it, and see the new run say how many
images it left out. LENET_SCREENSHOTS=<folder> keeps a screenshot of each step."""

import os
import shutil
from pathlib import Path

import pytest
from conftest import chromium, needs_chromium, streamlit_server
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from core.store import RunStore

FIRST_RENDER = 180_000  # ms: the first render imports TensorFlow on a busy CPU
AUDIT_DONE = 300_000  # ms: the training process starts, then two folds of a tiny run train

pytestmark = needs_chromium


def shot(page, name: str) -> None:
    folder = os.environ.get("LENET_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


@pytest.fixture
def store(tiny_trained_run, tmp_path):
    template, run_id = tiny_trained_run
    root = tmp_path / "runs"
    shutil.copytree(template / run_id, root / run_id)
    return root, run_id


def test_audit_the_training_set_mark_a_suspect_and_train_without_it(store, tmp_path):
    root, run_id = store
    with streamlit_server(root, tmp_path / "streamlit.log") as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.set_default_timeout(60_000)
        page.goto(f"{url}/label_audit?run={run_id}")
        page.get_by_text("Wrong labels (cleanlab's estimate)").first.wait_for(timeout=FIRST_RENDER)
        shot(page, "1-test-set")
        page.get_by_role("tab", name="Training set").click()
        page.locator(".st-key-label_audit_folds input").fill("2")
        page.locator(".st-key-label_audit_folds input").press("Enter")
        page.get_by_role("button", name="Audit the training set").click()
        page.get_by_text("Training-set audit").first.wait_for(timeout=FIRST_RENDER)
        shot(page, "2-audit-running")
        page.get_by_text("Train images").first.wait_for(timeout=AUDIT_DONE)
        audit = RunStore(root).read_train_audit(run_id)
        assert audit.state == "completed" and audit.folds == 2
        assert [info.run_id for info in RunStore(root).list_runs()] == [run_id]  # the fold runs are gone
        shot(page, "3-training-suspects")
        first = page.locator("[class*='st-key-label_audit_tile_train_']").first
        index = int(first.get_attribute("class").split("st-key-label_audit_tile_train_")[1].split()[0])
        for _ in range(5):  # the page may still be redrawing after the audit ended: the first click can be lost
            first.locator("[data-testid=stSelectbox]").click()
            try:
                page.get_by_role("option", name="wrong label").click(timeout=5_000)
                break
            except PlaywrightTimeout:
                page.keyboard.press("Escape")
        else:
            pytest.fail("the mark box did not open")
        page.get_by_role("button", name="Train without the marked images (1)").wait_for()
        assert RunStore(root).read_label_marks(run_id) == {("train", index): "wrong label"}
        page.get_by_role("button", name="Train without the marked images (1)").click()
        page.get_by_text("1 image left out").wait_for()
        shot(page, "4-retrain-queued")
        page.get_by_role("link", name="Follow it on Train").click()
        page.get_by_text("1 training image left out").wait_for(timeout=AUDIT_DONE)
        shot(page, "5-train-left-out")
    runs = [info for info in RunStore(root).list_runs() if info.run_id != run_id]
    assert len(runs) == 1 and runs[0].config.exclude_train == (index,)
    assert RunStore(root).read_status(runs[0].run_id).n_excluded == 1
