"""The benchmark scripts in --quick mode: each writes its JSON with the expected keys and sane values."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench import accuracy, common, memory, streaming, throughput


def read(folder, name):
    return json.loads((folder / f"{name}.json").read_text())


def assert_machine(result):
    machine = result["machine"]
    assert machine["cores"] >= 1 and machine["tensorflow"] and machine["cpu_model"]
    assert len(machine["load_average_start"]) == 3 and len(machine["load_average_end"]) == 3


def positive(value):
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_throughput_quick(tmp_path):
    returned = throughput.main(["--quick", "--results-dir", str(tmp_path)])
    result = read(tmp_path, "throughput")
    assert result["name"] == "throughput" and result["ratio"] == returned["ratio"]
    assert result["quick"] is True and result["target_ratio"] == 3.0
    assert positive(result["ratio"]) and positive(result["ratio_first_epoch"]) and positive(result["ratio_cpu"])
    assert isinstance(result["meets_target"], bool)
    assert [r["side"] for r in result["runs"]] == ["plain", "trainer"]
    for run in result["runs"]:
        assert len(run["epochs"]) == result["epochs"] == 2
        assert positive(run["steady_images_per_s"]) and run["images"] == common.QUICK_TRAIN_IMAGES
    plain, trainer = result["runs"]
    assert result["ratio"] == pytest.approx(trainer["steady_images_per_s"] / plain["steady_images_per_s"])
    assert plain["jit_compile"] is False  # the baseline keeps Keras' defaults: no XLA on a CPU-only machine
    assert_machine(result)


def test_streaming_quick(tmp_path):
    streaming.main(["--quick", "--results-dir", str(tmp_path)])
    result = read(tmp_path, "streaming")
    assert [r["side"] for r in result["runs"]] == ["silent", "streaming"]
    # a few batches per epoch: the quick figure is noise, only its form is checked
    assert math.isfinite(result["overhead"]) and result["overhead"] < 1 and 0 <= result["eval_share"] < 1
    silent, streamed = result["runs"]
    assert silent["eval_seconds"] == []  # no streaming callback, no evaluation records
    assert len(streamed["eval_seconds"]) == result["epochs"] == 2 and all(t > 0 for t in streamed["eval_seconds"])
    assert result["overhead"] == pytest.approx(1 - streamed["steady_images_per_s"] / silent["steady_images_per_s"])
    assert isinstance(result["meets_target"], bool)
    assert_machine(result)


@pytest.mark.parametrize("recipe", ["best"])  # the seed recipe runs the same code without augmentation
def test_accuracy_quick(tmp_path, recipe):
    accuracy.main(["--quick", "--recipe", recipe, "--results-dir", str(tmp_path)])
    result = read(tmp_path, f"accuracy_{recipe}")
    assert result["recipe"] == recipe and len(result["runs"]) == 1
    run = result["runs"][0]
    assert 0 <= result["accuracy"] <= 1 and result["spread"] == 0
    assert run["test_accuracy"] == result["accuracy"] and len(run["test_accuracy_by_epoch"]) == 1
    assert positive(run["train_time_s"]) and run["train_time_s"] <= run["duration_s"]
    assert result["target_accuracy"] == (0.989 if recipe == "seed" else 0.9945)
    assert result["time_limit_s"] == (None if recipe == "seed" else 300.0)
    # --quick keeps the preset's options on a subset, so a quick best run really augments
    assert run["config"]["augment"] is (recipe == "best") and run["config"]["epochs"] == 1
    assert result["meets_target"] is False  # one epoch on 256 images is far from either target
    assert_machine(result)


def test_accuracy_quick_with_the_articles_plain_fit(tmp_path):
    accuracy.main(["--quick", "--recipe", "seed", "--with-plain", "--results-dir", str(tmp_path)])
    result = read(tmp_path, "accuracy_seed")
    plain = result["plain_fit"]
    assert len(plain["runs"]) == 1 and plain["runs"][0]["side"] == "plain"
    assert plain["runs"][0]["seed"] == result["runs"][0]["seed"]
    assert 0.05 < plain["accuracy"] <= 1 and plain["accuracy"] == plain["runs"][0]["test_accuracy"]
    assert positive(plain["runs"][0]["train_time_s"])


def test_memory_quick(tmp_path):
    memory.main(["--quick", "--results-dir", str(tmp_path)])
    result = read(tmp_path, "memory")
    rows = result["trainings"]
    assert len(rows) == 2 and all(r["rss_mb"] > 50 and r["peak_rss_mb"] >= r["rss_mb"] for r in rows)
    assert result["peak_rss_mb"] == max(r["peak_rss_mb"] for r in rows)
    assert result["growth_mb"] == pytest.approx(rows[-1]["rss_mb"] - rows[0]["rss_mb"])
    assert result["peak_limit_mb"] == 1536 and result["growth_limit_mb"] == 100
    assert isinstance(result["meets_target"], bool)
    assert_machine(result)


def test_full_mode_needs_data(tmp_path, monkeypatch):
    monkeypatch.delenv("LENET_DATA", raising=False)
    with pytest.raises(SystemExit, match="--data PATH"):
        throughput.main(["--results-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="no such file"):
        memory.main(["--data", str(tmp_path / "missing.npz"), "--results-dir", str(tmp_path)])
    assert not list(tmp_path.glob("*.json"))


def test_worker_in_a_fresh_process_returns_its_json():
    """Full mode runs each measurement in a fresh process; the result comes back through stdout."""
    run = common.run_worker("bench.memory", {"data": None, "trainings": 0}, True, memory.worker)
    assert run["trainings"] == [] and run["baseline_rss_mb"] > 100  # TensorFlow alone takes hundreds of MB


def test_uint8_pipeline_gives_the_same_batches_as_the_float_images(monkeypatch):
    """The trainer keeps the training images as uint8 in the graph; the batches must not change."""
    import core.speed
    from core.config import TrainConfig
    from core.data import prepare_images

    rng = np.random.default_rng(0)
    x = prepare_images(rng.integers(0, 256, size=(300, 28, 28), dtype=np.uint8))
    y = rng.integers(0, 10, size=300).astype(np.int32)
    assert np.array_equal(core.speed.as_pixels(x).astype(np.float32) / np.float32(255), x)
    assert core.speed.as_pixels(x * np.float32(0.5)) is None  # not grey levels / 255: kept as float
    for augment in (False, True):
        config = TrainConfig(batch_size=32, augment=augment, seed=3)
        as_uint8 = [(a.numpy(), b.numpy()) for a, b in core.speed.make_train_dataset(x, y, config)]
        with monkeypatch.context() as patch:
            patch.setattr(core.speed, "as_pixels", lambda images: None)
            as_float = [(a.numpy(), b.numpy()) for a, b in core.speed.make_train_dataset(x, y, config)]
        assert len(as_uint8) == len(as_float) == 10
        for (images, labels), (float_images, float_labels) in zip(as_uint8, as_float):
            assert images.dtype == np.float32 and np.array_equal(images, float_images)
            assert np.array_equal(labels, float_labels)


def test_page_latency_quick(tmp_path, monkeypatch):
    from bench import page_latency

    monkeypatch.setenv("LENET_RUNS", str(tmp_path))  # main() points LENET_RUNS at its copy; restored after

    output = tmp_path / "page_latency.json"
    page_latency.main(["--quick", "--output", str(output)])
    result = json.loads(output.read_text())
    assert result["run"] == "seed-article-full-mnist" and result["target_warm_s"] == 1.0
    assert set(result["apptest"]["pages"]) == {"evaluate", "gallery", "inside", "predict"}
    for row in result["apptest"]["pages"].values():
        assert positive(row["cold_s"]) and positive(row["warm_median_s"])


def test_share_quick(tmp_path):
    from bench import share

    returned = share.main(["--quick", "--results-dir", str(tmp_path)])
    result = read(tmp_path, "share")
    assert result["quick"] is True and result["limits"] == share.LIMITS == returned["limits"]
    [(run_id, run)] = result["runs"].items()
    assert run_id == "seed-article-full-mnist"
    assert 1.0 < run["report"]["size_mb"] < 5.0 and positive(run["report"]["build_median_s"])
    assert set(run["exports"]) == {"keras", "onnx", "tflite"}
    for row in run["exports"].values():
        assert row["images"] == 1000 and row["identical"] >= 0.999 and row["max_prob_diff"] < 1e-4
        assert positive(row["seconds"])
    assert isinstance(result["meets_limits"], bool)
    assert_machine(result)


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Chromium not found at /usr/bin/chromium")
def test_watching_quick(tmp_path):
    from bench import watching

    watching.main(["--quick", "--results-dir", str(tmp_path)])
    result = read(tmp_path, "watching")
    assert_machine(result)
    # no tab open, then one block in one training run: the tab watched, in the background twice, watched
    assert [(w["open"], w["tabs"]) for w in result["windows"]] == [(0, 0), (0, 0), (1, 1), (1, 0), (1, 0), (1, 1)]
    watched = result["summary"]["1"]
    assert len(watched["block_costs"]) == 1 and watched["cost"] == watched["block_costs"][0]
    assert watched["cost_interval_95"] == [watched["cost"]] * 2  # one block: nothing to resample
    # the tab followed the run: its batch chart changed while it was watched, and the figures are real
    assert watched["target"] == 0.05 and positive(watched["chart_period_median"])
    assert positive(result["summary"]["0"]["images_per_s"]) and positive(watched["images_per_s"])
    assert watched["browser_cpu"] > watched["background_cpu"] >= 0 and isinstance(watched["met"], bool)


def test_the_watching_cost_interval_is_as_wide_as_the_blocks_spread():
    """The bootstrap interval of the median block cost holds the median, and it is wider for blocks that spread
    more: +5% from blocks within ±1% is a result, +5% from blocks of -24% to +19% is not."""
    from bench.watching import interval

    tight = [0.04, 0.045, 0.05, 0.05, 0.05, 0.055, 0.06]
    wide = [0.04, -0.04, 0.14, 0.05, -0.24, 0.19, 0.17]
    for costs in (tight, wide):
        low, high = interval(costs)
        assert low <= sorted(costs)[3] <= high and min(costs) <= low and high <= max(costs)
    assert interval(tight)[1] - interval(tight)[0] < 0.03 < interval(wide)[1] - interval(wide)[0]
    assert interval(tight)[1] <= 0.06 < interval(wide)[1]


def test_tuning_quick_lr_find(tmp_path):
    from bench import tuning

    tuning.main(["--quick", "--only", "lr_find", "--results-dir", str(tmp_path)])
    result = read(tmp_path, "tuning-lr_find")
    figures = result["lr_find"]
    assert 10 < figures["batches"] <= 300 and positive(figures["cli_wall_s"]) and positive(figures["in_process_s"])
    assert figures["target_s"] == 15.0 and isinstance(figures["meets_target"], bool)
    assert 1e-6 < figures["suggestion"] < 1.0
    assert_machine(result)


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Chromium not found at /usr/bin/chromium")
def test_scale_quick(tmp_path):
    from bench import scale

    scale.main(["--quick", "--results-dir", str(tmp_path)])
    result = read(tmp_path, "scale")
    assert_machine(result)
    assert result["cli_list"]["runs"] == result["runs"] == 100 and result["cli_list"]["damaged"] == 10
    pages = result["pages"]
    assert positive(pages["runs_cold_s"]) and positive(pages["tick_s"][0]) and positive(pages["train_warm_s"][0])
    assert 0 <= pages["idle_tab_server_core_share"] < 2
    # the Train page followed the live run: its chart reached later steps while the bench appended records
    assert result["live"]["live_update_periods_s"] and 0 < result["live"]["live_server_core_share"] < 2
