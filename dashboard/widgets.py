"""One digit to look at, for the Inside and Predict pages: a test image, the gallery's opened tile, or an upload."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from core.data import prepare_images
from dashboard import gallery_state, links
from dashboard.loaders import TestImages

FROM_TEST_SET = "A test image"
FROM_GALLERY = "The image opened in the gallery"
FROM_UPLOAD = "An uploaded picture"
FROM_DRAWING = "A drawing"
INSIDE_PICKER = "inside"  # the Inside page's picker, whose source the gallery's "Inside the model" button sets


@dataclass(frozen=True)
class Digit:
    x28: np.ndarray  # uint8 (28, 28), MNIST form
    x32: np.ndarray  # float32 (32, 32, 1), LeNet's input
    label: int | None  # the test label, None for an upload
    name: str  # "test image #123" or "upload digit.png"


def _source_key(prefix: str) -> str:
    return f"{prefix}_source"


def choose_source(prefix: str, source: str) -> None:
    """Make the picker with this prefix show `source` (one of FROM_*) when its page next runs."""
    st.session_state[_source_key(prefix)] = source


def upload_types() -> tuple[list[str], str]:
    """The file extensions the uploader takes and how to say them: every extension Pillow registers for a format
    that core.digits decodes (the formats its "allowed formats" message names), so the two never disagree."""
    from PIL import Image

    from core.digits import UPLOAD_FORMATS  # here: it imports SciPy, which the page loads after its title

    Image.init()
    extensions = sorted(ext.lstrip(".") for ext, name in Image.registered_extensions().items()
                        if name in UPLOAD_FORMATS)
    return extensions, ", ".join(UPLOAD_FORMATS[:-1]) + f" or {UPLOAD_FORMATS[-1]}"


def per_run(key: str, run_id: str) -> None:
    """The widget `key` belongs to the run it was set for: when another run is audited, it starts again from its
    default (the C1 epoch slider kept the previous run's epoch). The first run a page opens keeps a link's value."""
    owner = f"{key}__run"
    if st.session_state.get(owner) not in (None, run_id):
        st.session_state.pop(key, None)
    st.session_state[owner] = run_id


def epoch_slider(key: str, saved: list[int], run_id: str) -> int:
    """Evaluate's and Inside's epoch picker: kept in the URL, checked when a link brings it, and started again
    from the last epoch when another run is audited."""
    per_run(key, run_id)
    links.check_bound(key, lambda text: text in map(str, saved), f"epoch (saved: {saved[0]}–{saved[-1]})")
    return st.select_slider("Epoch", options=saved, value=saved[-1], key=key, bind=links.BIND)


def _random_index(key: str, count: int) -> None:
    st.session_state[key] = str(int(np.random.default_rng().integers(count)))


def pick_digit(prefix: str, images: TestImages | None, with_gallery: bool = False,
               with_drawing: bool = False) -> Digit | None:
    """A test image by index, the gallery's opened tile, an uploaded picture or a drawing (never written anywhere)."""
    sources = [FROM_TEST_SET] if images is not None else []
    opened = gallery_state.opened_tile(len(images.labels)) if images is not None else None
    if with_gallery and opened is not None:
        sources.append(FROM_GALLERY)
    sources.append(FROM_UPLOAD)
    if with_drawing:
        sources.append(FROM_DRAWING)
    key = _source_key(prefix)
    if st.session_state.get(key) not in (None, *sources):
        st.session_state[key] = sources[0]
    source = st.radio("Image", sources, key=key, horizontal=True)
    if source == FROM_UPLOAD:
        return _uploaded_digit(prefix)
    if source == FROM_DRAWING:
        return _drawn_digit(prefix)
    if source == FROM_GALLERY:
        index = opened
    else:
        count = len(images.labels)
        index_key = f"{prefix}_index"
        # A text box, not a number box: after an out-of-range entry Streamlit's number box kept showing it while
        # the page used the previous index (and Random changed the image, not the box). Now the box always holds
        # what the page uses, or the page says why it shows nothing.
        st.session_state.setdefault(index_key, "0")
        left, right = st.columns([4, 1], vertical_alignment="bottom")
        text = left.text_input(f"Test index (0–{count - 1:,})", key=index_key, bind=links.BIND)
        right.button("Random", key=f"{prefix}_random", on_click=_random_index, args=(index_key, count))
        index = links.index_parser(count)(text.replace(",", ""))
        if index is None:
            st.warning(f"The test index must be a whole number from 0 to {count - 1:,}.")
            return None
    x28 = images.images[index]
    return Digit(x28, prepare_images(x28[None])[0], int(images.labels[index]), f"test image #{index}")


def _uploaded_digit(prefix: str) -> Digit | None:
    extensions, said = upload_types()
    upload = st.file_uploader(f"A picture of one handwritten digit ({said}; at most 5 MB)", type=extensions,
                              key=f"{prefix}_upload")
    if upload is None:
        st.caption("Dark ink on light paper or light on dark both work; the picture is cropped, fitted into "
                   "20×20 and centred like MNIST. It stays in memory and is never saved.")
        return None
    x28, x32, problem = decoded_upload(upload.getvalue())
    if problem:
        st.error(problem)
        return None
    return Digit(x28, x32, None, f"upload {upload.name}")


@st.cache_data(max_entries=8, show_spinner="Reading the picture…")
def decoded_upload(data: bytes) -> tuple:
    """(x28, x32, None) or (None, None, why not): each upload decoded once, not on every rerun (a 4096² RGBA
    picture takes seconds), its refusal remembered too."""
    from core.digits import ImageError, preprocess_digit

    try:
        return (*preprocess_digit(data), None)
    except ImageError as exc:
        return None, None, str(exc)


def _drawn_digit(prefix: str) -> Digit | None:
    from core.digits import drawing_problem
    from dashboard import canvas

    png = canvas.draw(f"{prefix}_canvas")
    if png is None:
        st.caption("Draw one digit with the mouse, a pen or a finger; the answer updates when a stroke ends. The "
                   "drawing goes through the same MNIST preprocessing as an upload and is never saved.")
        return None
    x28, x32, problem = decoded_upload(png)
    if problem:  # a canvas PNG always decodes: what preprocessing refuses is a drawing with no ink
        st.warning("The drawing is blank: draw a digit on the black square.")
        return None
    problem = drawing_problem(x28)
    if problem:
        st.warning(problem)
    return Digit(x28, x32, None, "your drawing")
