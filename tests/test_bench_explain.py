"""Issue 17's benchmarks in --quick mode: each writes its JSON with the expected keys and sane values."""

import json

from bench import epoch_weights, explain


def test_epoch_weights_quick(tmp_path):
    epoch_weights.main(["--quick", "--results-dir", str(tmp_path)])
    result = json.loads((tmp_path / "epoch_weights.json").read_text())
    assert result["quick"] is True and result["target_share"] == 0.01
    assert {run["side"] for run in result["runs"]} == {"without", "with"}
    assert 0 < result["direct_seconds"] < 1  # get_weights and the bigger snapshot: milliseconds, not seconds
    assert result["direct_share"] == result["direct_seconds"] / result["epoch_seconds"]


def test_explain_quick_without_the_browser(tmp_path):
    explain.main(["--quick", "--no-browser", "--results-dir", str(tmp_path)])
    result = json.loads((tmp_path / "explain.json").read_text())
    assert set(result["measured"]["engines"]["attribution_s"]) == {
        "saliency", "smoothgrad", "integrated_gradients", "gradcam", "occlusion"}
    assert result["measured"]["engines"]["pca_images"] == 10_000
    first_views = result["measured"]["engines"]["pca_first_view_s"]  # one epoch: the run's first map only
    assert list(first_views) == ["epoch 1 (the run's first map)"]
    assert result["measured"]["engines"]["pca_s"] == first_views["epoch 1 (the run's first map)"]
    assert set(result["measured"]["pages_s"]) == {"why: Attribution", "why: Representation map", "why: Calibration",
                                                  "why: Layer health", "predict"}
    assert all(0 < v < 60 for v in result["worst"].values())
