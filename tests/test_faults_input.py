"""Fault suite, bad input: every hyperparameter out of range or of the wrong type, bad combinations, broken
data files and bad uploads, through the CLI (in-process and in a subprocess), the sidebar and the Predict page.

Each case must give one message naming the field (or path), the value and what is allowed; the CLI exits
non-zero without a traceback, and no run is created."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.digits import ImageError, preprocess_digit
from test_faults_support import (ROOT, SHIPPED, assert_one_line_error, cli_subprocess, copy_shipped, run_cli, tree,
                                 write_idx_folder)

# (flags, fragments the error line must hold): the field or flag, the value, what is allowed.
BAD_FLAGS = [
    (["--dataset", "cifar"], ["--dataset", "'cifar'", "'mnist', 'fashion_mnist'"]),
    (["--data-source", "web"], ["--data-source", "'web'", "'auto', 'file', 'keras', 'sample'"]),
    (["--data", ""], ["data_path=''", "non-empty path"]),
    (["--data-source", "file"], ["data_source='file'", "needs data_path"]),
    (["--train-subset", "-1"], ["train_subset=-1", "[0, 60000]"]),
    (["--train-subset", "60001"], ["train_subset=60001", "[0, 60000]"]),
    (["--train-subset", "10"], ["train_subset=10", "20 to 60000"]),
    (["--train-subset", "1.5"], ["--train-subset", "'1.5'", "not an integer"]),
    (["--validation-split", "-0.1"], ["validation_split=-0.1", "[0, 0.5]"]),
    (["--validation-split", "0.9"], ["validation_split=0.9", "[0, 0.5]"]),
    (["--validation-split", "half"], ["--validation-split", "'half'", "not a number"]),
    (["--variant", "lenet7"], ["--variant", "'lenet7'", "'seed', 'lecun1998'"]),
    (["--activation", "gelu"], ["--activation", "'gelu'", "'relu', 'tanh', 'sigmoid'"]),
    (["--pooling", "min"], ["--pooling", "'min'", "'average', 'max'"]),
    (["--dropout", "-0.1"], ["dropout=-0.1", "[0, 0.9]"]),
    (["--dropout", "0.95"], ["dropout=0.95", "[0, 0.9]"]),
    (["--optimizer", "adagrad"], ["--optimizer", "'adagrad'", "'adam', 'sgd', 'rmsprop'"]),
    (["--learning-rate", "0"], ["learning_rate=0.0", "(0, 10]"]),
    (["--learning-rate", "-0.001"], ["learning_rate=-0.001", "(0, 10]"]),
    (["--learning-rate", "10.5"], ["learning_rate=10.5", "(0, 10]"]),
    (["--learning-rate", "nan"], ["learning_rate=nan", "(0, 10]"]),
    (["--learning-rate", "inf"], ["learning_rate=inf", "(0, 10]"]),
    (["--learning-rate", "fast"], ["--learning-rate", "'fast'", "not a number"]),
    (["--momentum", "-0.5"], ["momentum=-0.5", "[0, 0.999]"]),
    (["--momentum", "1"], ["momentum=1.0", "[0, 0.999]"]),
    (["--lr-schedule", "linear"], ["--lr-schedule", "'linear'", "'constant', 'cosine', 'step'"]),
    (["--batch-size", "0"], ["batch_size=0", "[1, 4096]"]),
    (["--batch-size", "4097"], ["batch_size=4097", "[1, 4096]"]),
    (["--batch-size", "64.5"], ["--batch-size", "'64.5'", "not an integer"]),
    (["--epochs", "0"], ["epochs=0", "[1, 200]"]),
    (["--epochs", "201"], ["epochs=201", "[1, 200]"]),
    (["--epochs", "2.5"], ["--epochs", "'2.5'", "not an integer"]),
    (["--epochs"], ["--epochs", "expected one argument"]),
    (["--augment=yes"], ["--augment", "'yes'", "--augment or --no-augment"]),
    (["--seed", "-1"], ["seed=-1", "[0, 2147483647]"]),
    (["--seed", "2147483648"], ["seed=2147483648", "[0, 2147483647]"]),
    (["--seed", "1e3"], ["--seed", "'1e3'", "not an integer"]),
    (["--preset", "Fast"], ["--preset", "'Fast'", "'Seed article', 'Quick demo', 'Best accuracy'"]),
    (["--name", "x" * 101], ["run name", "1-100 printable characters"]),
    (["--name", "tab\there"], ["run name", "'tab\\there'", "1-100 printable characters"]),
    (["--name", "nul\x00byte"], ["run name", "'nul\\x00byte'", "1-100 printable characters"]),
]

BAD_COMBINATIONS = [
    # a batch larger than the training images the subset and the split leave
    (["--train-subset", "100", "--validation-split", "0.5", "--batch-size", "64"],
     ["batch_size=64", "50 training images", "allowed: 1 to 50"]),
    # a validation split that holds out no image of a small subset
    (["--train-subset", "20", "--validation-split", "0.02", "--batch-size", "8"],
     ["validation_split=0.02", "train_subset=20", "more than 0.025"]),
    # a split that would leave no training data is out of range
    (["--validation-split", "1.0"], ["validation_split=1.0", "[0, 0.5]"]),
    # the paper's variant has its own activation, pooling and no dropout
    (["--variant", "lecun1998", "--activation", "tanh"], ["activation='tanh'", "seed variant only"]),
    (["--variant", "lecun1998", "--pooling", "max"], ["pooling='max'", "seed variant only"]),
    (["--variant", "lecun1998", "--dropout", "0.2"], ["dropout=0.2", "seed variant only"]),
    # a preset with an override out of range still names the field
    (["--preset", "Quick demo", "--batch-size", "5000"], ["batch_size=5000", "[1, 4096]"]),
]


@pytest.mark.parametrize("flags,fragments", BAD_FLAGS + BAD_COMBINATIONS,
                         ids=[" ".join(f)[:40] for f, _ in BAD_FLAGS + BAD_COMBINATIONS])
def test_bad_flag_is_named_with_its_value_and_range(capsys, tmp_path, flags, fragments):
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, "train", *flags, runs_dir=runs)
    assert code == 2
    assert_one_line_error(code, err, *fragments)
    assert not runs.exists()  # nothing was created


SUBPROCESS_FLAGS = [
    (["--momentum", "1.5"], ["momentum=1.5", "[0, 0.999]"]),
    (["--batch-size", "many"], ["--batch-size", "'many'", "not an integer"]),
]


@pytest.mark.parametrize("flags,fragments", SUBPROCESS_FLAGS, ids=[f[0] for f, _ in SUBPROCESS_FLAGS])
def test_bad_flag_in_a_real_terminal(tmp_path, flags, fragments):
    result = cli_subprocess("train", *flags, runs_dir=tmp_path / "runs", timeout=120)
    assert result.returncode == 2
    assert_one_line_error(result.returncode, result.stderr, *fragments)
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


# ----- --data pointing at something broken ---------------------------------------------------------


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _good_arrays(n_train=60, n_test=20):
    rng = np.random.default_rng(1)
    return {"x_train": rng.integers(0, 256, (n_train, 28, 28)).astype(np.uint8),
            "y_train": (np.arange(n_train) % 10).astype(np.uint8),
            "x_test": rng.integers(0, 256, (n_test, 28, 28)).astype(np.uint8),
            "y_test": (np.arange(n_test) % 10).astype(np.uint8)}


def _missing(tmp):
    return tmp / "nowhere" / "mnist.npz"


def _text_file(tmp):
    (tmp / "notes.npz").write_text("x_train,y_train\n1,2\n")
    return tmp / "notes.npz"


def _npy_file(tmp):
    np.save(tmp / "images.npy", np.zeros((3, 28, 28), np.uint8))
    return tmp / "images.npy"


def _missing_keys(tmp):
    arrays = _good_arrays()
    del arrays["y_test"]
    return _npz(tmp / "three_keys.npz", **arrays)


def _wrong_shape(tmp):
    return _npz(tmp / "shape.npz", **{**_good_arrays(), "x_train": np.zeros((60, 32, 32), np.uint8)})


def _count_mismatch_npz(tmp):
    return _npz(tmp / "counts.npz", **{**_good_arrays(), "y_train": np.zeros(59, np.uint8)})


def _idx_count_mismatch(tmp):
    return write_idx_folder(tmp / "idx", n_train=60, n_train_labels=50)


def _pixels_out_of_range(tmp):
    return _npz(tmp / "pixels.npz", **{**_good_arrays(), "x_train": np.full((60, 28, 28), 300, np.int16)})


def _pixels_scaled(tmp):
    return _npz(tmp / "scaled.npz", **{**_good_arrays(), "x_test": np.full((20, 28, 28), 0.5, np.float32)})


def _labels_out_of_range(tmp):
    return _npz(tmp / "labels.npz", **{**_good_arrays(), "y_train": np.full(60, 12, np.uint8)})


def _empty_folder(tmp):
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _truncated_idx(tmp):
    folder = write_idx_folder(tmp / "cut")
    data = (folder / "t10k-images-idx3-ubyte").read_bytes()
    (folder / "t10k-images-idx3-ubyte").write_bytes(data[:-100])
    return folder


def _subset_larger(tmp):
    return _npz(tmp / "small.npz", **_good_arrays(n_train=60))


# (name, maker, extra flags, fragments after the path)
BAD_DATA = [
    ("missing file", _missing, [], ["no such file or folder"]),
    ("text file named .npz", _text_file, [], ["not a .npz archive"]),
    ("single .npy array", _npy_file, [], ["not a .npz archive"]),
    ("npz without y_test", _missing_keys, [], ["missing key(s) y_test"]),
    ("32x32 images", _wrong_shape, [], ["x_train has shape (60, 32, 32)", "expected (N, 28, 28)"]),
    ("npz counts differ", _count_mismatch_npz, [], ["59 labels in y_train but 60 images"]),
    ("IDX counts differ", _idx_count_mismatch, [], ["holds 60 images", "holds 50 labels", "must match"]),
    ("pixels up to 300", _pixels_out_of_range, [], ["pixel values from 300 to 300", "expected 0-255"]),
    ("pixels scaled to [0, 1]", _pixels_scaled, [], ["non-integer pixel values", "not images already scaled"]),
    ("labels outside 0-9", _labels_out_of_range, [], ["labels outside 0-9"]),
    ("empty folder", _empty_folder, [], ["no IDX files found"]),
    ("truncated IDX file", _truncated_idx, [], ["t10k-images-idx3-ubyte", "but the file holds"]),
    ("subset larger than the data", _subset_larger, ["--train-subset", "100", "--validation-split", "0.1",
                                                     "--batch-size", "16"],
     ["train_subset=100 is larger than the 60 training images"]),
]


@pytest.mark.parametrize("name,maker,flags,fragments", BAD_DATA, ids=[case[0] for case in BAD_DATA])
def test_bad_data_file_names_the_path_and_the_problem(capsys, tmp_path, name, maker, flags, fragments):
    path = maker(tmp_path)
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, "train", "--data", str(path), "--epochs", "1", *flags, runs_dir=runs)
    assert code == 2
    assert_one_line_error(code, err, str(path.name), *fragments)
    assert not runs.exists()  # checked before a run folder exists


def test_bad_data_in_a_real_terminal(tmp_path):
    folder = write_idx_folder(tmp_path / "idx", n_train=60, n_train_labels=50)
    result = cli_subprocess("train", "--data", str(folder), runs_dir=tmp_path / "runs", timeout=180)
    assert_one_line_error(result.returncode, result.stderr, str(folder), "holds 50 labels", "must match")
    assert not (tmp_path / "runs").exists()


# ----- uploads (Predict and Inside the model) ----------------------------------------------------------


def _png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def _seven(mode="L", size=120, ink=0, paper=255) -> Image.Image:
    picture = Image.new(mode, (size, size), paper)
    ImageDraw.Draw(picture).line([(size // 4, size // 6), (3 * size // 4, size // 6), (size // 2 - 10, 5 * size // 6)],
                                 fill=ink, width=size // 12)
    return picture


def _alpha_seven() -> bytes:
    """Black ink drawn only in the alpha channel of a transparent canvas, as drawing apps export it."""
    picture = Image.new("RGBA", (120, 120), (0, 0, 0, 0))
    ImageDraw.Draw(picture).line([(30, 20), (90, 20), (50, 100)], fill=(0, 0, 0, 255), width=10)
    return _png(picture)


def _sixteen_bit_seven() -> bytes:
    array = np.full((120, 120), 65535, np.uint16)
    array[np.asarray(_seven()) < 128] = 0
    return _png(Image.fromarray(array))


def _huge_pixels() -> bytes:
    return _png(Image.new("L", (5000, 5000), 255), optimize=True)  # 25 Mpx in a few kB


# (name, bytes, None = accepted as a digit, else a fragment of the ImageError)
def _png_with_huge_text_chunk() -> bytes:
    """A 28x28 PNG of 50 KB carrying a zTXt chunk that decompresses to 50 MB (over Pillow's text-chunk limit)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = _png(_seven())
    return png[:33] + chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(bytes(50 * 2**20), 9)) + png[33:]


BAD_UPLOADS = [
    ("not an image", lambda: b"%PDF-1.4 this is not a picture", "not an image that can be read"),
    ("zero bytes", lambda: b"", "empty (0 bytes)"),
    ("over 5 MB", lambda: b"\x89PNG" + bytes(6 * 2**20), "too large"),
    ("25 megapixels", _huge_pixels, "too many pixels"),
    ("truncated PNG", lambda: _png(_seven())[:200], "could not be decoded"),
    ("blank page", lambda: _png(Image.new("L", (60, 60), 255)), "blank"),
    ("EPS (would run Ghostscript)", lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
     "not an image that can be read"),
    ("a .keras model renamed .png", lambda: (SHIPPED / "model.keras").read_bytes(), "not an image that can be read"),
    ("alpha channel", _alpha_seven, None),
    ("16-bit grey", _sixteen_bit_seven, None),
    ("palette GIF", lambda: _png(_seven().convert("P")), None),
    ("PNG with a 50 MB compressed text chunk", _png_with_huge_text_chunk,
     "The image's file structure cannot be read (Decompressed data too large"),
]


@pytest.mark.parametrize("name,make,problem", BAD_UPLOADS, ids=[case[0] for case in BAD_UPLOADS])
def test_upload_is_refused_clearly_or_read_as_a_digit(name, make, problem):
    data = make()
    if problem is None:
        x28, x32 = preprocess_digit(data)
        assert x28.shape == (28, 28) and x28.dtype == np.uint8 and x32.shape == (32, 32, 1)
        assert x28.max() == 255 and x28[0].max() == 0  # light ink on black, centred like MNIST
        return
    with pytest.raises(ImageError) as excinfo:
        preprocess_digit(data)
    assert problem in str(excinfo.value)


@pytest.fixture
def predict_page(lenet_runs, offline_sources):
    from dashboard_apptest import open_app

    copy_shipped(lenet_runs)
    before = tree(lenet_runs)
    at = open_app("views/predict.py")
    at.radio(key="predict_source").set_value("An uploaded picture").run()
    yield at
    assert tree(lenet_runs) == before  # an upload is never written into the store


def test_predict_page_refuses_a_bad_upload_and_reads_an_alpha_digit(predict_page):
    from dashboard_apptest import texts

    at = predict_page
    uploader = at.file_uploader(key="predict_upload")
    uploader.set_value(("notes.png", b"not a picture at all", "image/png")).run()
    assert not at.exception
    assert "not an image that can be read" in texts(at.error)
    at.file_uploader(key="predict_upload").set_value(("empty.png", b"", "image/png")).run()
    assert not at.exception and "empty (0 bytes)" in texts(at.error)
    at.file_uploader(key="predict_upload").set_value(("chunk.png", _png_with_huge_text_chunk(), "image/png")).run()
    assert not at.exception and "file structure cannot be read" in texts(at.error)
    at.file_uploader(key="predict_upload").set_value(("seven.png", _alpha_seven(), "image/png")).run()
    assert not at.exception and not at.error
    prediction = at.metric[0]
    assert prediction.label == "Prediction for upload seven.png" and prediction.value == "7"


def test_an_upload_is_decoded_once_not_on_every_rerun(predict_page, monkeypatch):
    import core.digits
    from dashboard.widgets import decoded_upload

    decoded_upload.clear()  # the cache is the server's: an earlier test may have decoded the same picture
    calls = []
    real = core.digits.preprocess_digit
    monkeypatch.setattr(core.digits, "preprocess_digit", lambda data: calls.append(len(data)) or real(data))
    at = predict_page
    at.file_uploader(key="predict_upload").set_value(("seven.png", _alpha_seven(), "image/png")).run()
    for _ in range(3):
        at.run()  # reruns: a click elsewhere, the live fragment, a slider
    assert not at.exception and at.metric[0].value == "7"
    assert len(calls) == 1


def test_predict_page_takes_every_format_its_message_names(predict_page):
    # The decoder reads PNG, JPEG, GIF, BMP, TIFF and WebP and names them when it refuses a file; the uploader
    # took only PNG and JPEG, so a GIF was refused by the browser with another list.
    from dashboard_apptest import texts

    at = predict_page
    uploader = at.file_uploader(key="predict_upload")
    assert {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"} <= set(uploader.proto.type)
    assert "at most 5 MB" in uploader.proto.label  # the one limit, named where the file is chosen
    assert "PNG, JPEG, GIF, BMP, TIFF or WEBP" in uploader.proto.label
    for name, fmt in (("seven.gif", "GIF"), ("seven.bmp", "BMP"), ("seven.webp", "WEBP")):
        buffer = io.BytesIO()
        _seven().save(buffer, format=fmt)
        at.file_uploader(key="predict_upload").set_value((name, buffer.getvalue(), f"image/{fmt.lower()}")).run()
        assert not at.exception and not texts(at.error)
        assert at.metric[0].label == f"Prediction for upload {name}" and at.metric[0].value == "7"


# ----- the sidebar's Train form ----------------------------------------------------------------------
# tests/test_dashboard_train.py covers learning_rate=0, lecun1998 + tanh, file without a path and a batch
# larger than the subset; these are the other kinds of refusal the form can give.

SIDEBAR_CASES = [
    # (controls to set, the field the error sits next to, fragments of the message)
    ({"data_source": "sample", "train_subset": 20, "validation_split": 0.02, "batch_size": 8}, "validation_split",
     ["validation_split=0.02 holds out no image of train_subset=20"]),
    ({"train_subset": 10}, "train_subset", ["train_subset=10 is too small", "20 to 60000"]),
    ({"variant": "lecun1998", "pooling": "max"}, "pooling", ["pooling='max'", "seed variant only"]),
    ({"data_path": "/nonexistent/mnist.npz"}, "data_path", ["/nonexistent/mnist.npz: no such file or folder"]),
    ({"name": "bell\x07"}, "name", ["run name 'bell\\x07' is not valid", "1-100 printable characters"]),
    ({"dataset": "fashion_mnist", "data_source": "sample"}, "data_source", ["no bundled Fashion-MNIST sample"]),
]


def _set_control(at, field: str, value) -> None:
    from dashboard import sidebar

    wanted = sidebar.NAME if field == "name" else sidebar.key(field)
    for kind in ("number_input", "selectbox", "text_input", "slider", "toggle"):
        for widget in getattr(at, kind):
            if widget.key == wanted:
                widget.set_value(value)
                return
    raise AssertionError(f"no control for {field}")


@pytest.fixture
def no_training_process(monkeypatch):
    """If a bad form were queued after all, its run fails at once instead of starting a TensorFlow process."""
    from dashboard import worker

    monkeypatch.setattr(worker.TrainingProcess, "start", lambda self: None)


@pytest.mark.parametrize("controls,field,fragments", SIDEBAR_CASES, ids=[",".join(c) for c, _, _ in SIDEBAR_CASES])
def test_sidebar_refuses_bad_values_next_to_the_field(lenet_runs, offline_sources, no_training_process,
                                                      controls, field, fragments):
    """The widgets' own min/max stop most bad numbers in the browser; what passes them is named on the form."""
    from dashboard import sidebar
    from dashboard_apptest import open_app, texts

    at = open_app()
    for name, value in controls.items():
        _set_control(at, name, value)
    at.button(key=sidebar.SUBMIT).click().run()
    assert not at.exception
    message = texts(at.sidebar.error)
    assert "Not started:" in message
    for fragment in fragments:
        assert fragment in message
    assert at.session_state[sidebar.FORM_ERROR][0] == field
    assert list(lenet_runs.iterdir()) == []  # nothing was queued


def test_the_browser_and_the_decoder_share_one_upload_limit():
    """Streamlit's browser side refuses uploads over maxUploadSize x 1,000,000 bytes: the decoder's limit is the
    same number (the upload box names it: test_predict_page_takes_every_format_its_message_names)."""
    import tomllib

    from core.digits import MAX_UPLOAD_BYTES

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 1_000_000 == MAX_UPLOAD_BYTES
    with pytest.raises(ImageError, match=r"5,000,001 bytes; the limit is 5 MB \(5,000,000 bytes\)"):
        preprocess_digit(b"\x89PNG" + bytes(MAX_UPLOAD_BYTES - 3))
