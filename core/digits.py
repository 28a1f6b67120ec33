"""A picture of one handwritten digit, uploaded or read from a file, turned into MNIST form."""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from core.data import prepare_images
from core.sources import IMAGE_SIZE  # 28: MNIST's frame

# Formats a digit upload may be in. Pillow can open more (EPS, for one, runs Ghostscript),
# but an upload box has no business reaching those decoders.
UPLOAD_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
# The one upload limit: Streamlit's browser side refuses files over server.maxUploadSize (5 in
# .streamlit/config.toml) times 1,000,000 bytes, so the decoder uses the same number.
MAX_UPLOAD_BYTES = 5_000_000
MNIST_BOX = 20  # MNIST fits each digit into 20x20, keeping its aspect ratio
MNIST_CENTRE = IMAGE_SIZE / 2  # where MNIST's centres of mass sit, (14, 14) in (row, column) pixel indices
MIN_CONTRAST = 0.1  # ink must differ from the background by 10% of the grey range, or the image is blank
NOISE_FLOOR = 0.1  # after stretching the ink to [0, 1], fainter pixels are paper texture or JPEG noise


class ImageError(ValueError):
    """An uploaded picture that cannot be turned into an MNIST digit; the message says why."""



def _open_upload(data, max_bytes: int, max_pixels: int) -> Image.Image:
    size = len(data)
    if size == 0:
        raise ImageError(f"The upload is empty (0 bytes); choose a picture of a digit ({', '.join(UPLOAD_FORMATS)}).")
    if size > max_bytes:
        raise ImageError(
            f"The file is too large: {size:,} bytes; the limit is {max_bytes / 1e6:g} MB ({max_bytes:,} bytes)."
        )
    try:
        image = Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS)
    except UnidentifiedImageError as exc:
        raise ImageError(f"This is not an image that can be read; allowed formats: {', '.join(UPLOAD_FORMATS)}.") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"The image has too many pixels ({exc}); the limit is {max_pixels:,} pixels."
        ) from exc
    except (ValueError, OSError, SyntaxError, struct.error) as exc:  # e.g. a text chunk over Pillow's limit
        raise ImageError(f"The image's file structure cannot be read ({exc}); save the picture again as a plain "
                         f"{' or '.join(UPLOAD_FORMATS[:2])}.") from exc
    return _decoded(image, max_pixels)


def _decoded(image: Image.Image, max_pixels: int) -> Image.Image:
    """The image with its pixels loaded, once its header's size has passed the pixel limit."""
    _check_pixels(image.size, max_pixels)
    try:
        image.load()
    except Exception as exc:  # Pillow's decoders raise many types on damaged files
        raise ImageError(f"The image could not be decoded (damaged or truncated {image.format} file): {exc}") from exc
    return image


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height == 0:
        raise ImageError(f"The image is empty ({width}x{height} pixels).")
    if width * height > max_pixels:
        raise ImageError(
            f"The image has too many pixels: {width}x{height} = {width * height:,}; the limit is {max_pixels:,} pixels."
        )


def _image_to_array(image: Image.Image) -> np.ndarray:
    """Pixels as grey (H, W) or grey+alpha (H, W, 2), at the image's own bit depth."""
    image = ImageOps.exif_transpose(image)  # phone photos are often stored sideways
    if image.has_transparency_data:
        image = image.convert("LA")
    elif image.mode not in ("L", "I", "F") and not image.mode.startswith("I;16"):
        image = image.convert("L")  # colour, palette, CMYK, 1-bit: Pillow's own luma conversion
    return np.asarray(image)


def _to_unit_range(array: np.ndarray) -> np.ndarray:
    """Any pixel dtype to float in [0, 1]: 8 and 16 bits by their full range, floats as 0-1 (or 0-255)."""
    if array.dtype == bool:
        return array.astype(np.float64)
    if np.issubdtype(array.dtype, np.integer):
        # Pillow opens some 16-bit PNGs as 32-bit mode "I", so a value above 255 also means 16 bits.
        sixteen_bit = array.dtype.itemsize == 2 or array.max() > 255
        return np.clip(array / (65535.0 if sixteen_bit else 255.0), 0.0, 1.0)
    if np.issubdtype(array.dtype, np.floating):
        array = np.nan_to_num(array.astype(np.float64))
        return np.clip(array if array.max() <= 1.0 else array / 255.0, 0.0, 1.0)
    raise ImageError(f"Pixels must be numbers; got dtype {array.dtype}.")


def _ink(array: np.ndarray) -> np.ndarray:
    """(H, W) ink in [0, 1] on a 0 background, 1 = the strongest stroke, whatever the picture's colours.

    With an alpha channel: if most of the picture is transparent, the drawing is its opaque part,
    so alpha itself is the ink (which works for black, white or coloured strokes on a transparent
    canvas). Otherwise the picture is composited onto white and read like any opaque picture.
    """
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2 and not (array.ndim == 3 and array.shape[2] in (2, 3, 4)):
        raise ImageError(f"Expected an (H, W) grey or (H, W, 2/3/4) grey/RGB(A) picture; got shape {array.shape}.")
    pixels = _to_unit_range(array)
    if pixels.ndim == 3:
        colour, alpha = (pixels[:, :, :-1], pixels[:, :, -1]) if pixels.shape[2] in (2, 4) else (pixels, None)
        # ITU-R 601 luma, the weights Pillow's convert("L") uses.
        grey = colour[:, :, 0] if colour.shape[2] == 1 else colour @ np.array([0.299, 0.587, 0.114])
        if alpha is not None:
            if np.mean(alpha < 0.5) > 0.5:
                return _stretch(alpha)
            grey = grey * alpha + (1.0 - alpha)  # onto white
    else:
        grey = pixels
    # MNIST is light ink on black: invert a picture whose border (its background) is light.
    return _stretch(1.0 - grey if _background(grey) > 0.5 else grey)


def _background(image: np.ndarray) -> float:
    """The median of the outermost pixels: a digit seldom touches every edge, so this is the paper."""
    return float(np.median(np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])))


def _stretch(ink: np.ndarray) -> np.ndarray:
    """Background to 0 and the strongest stroke to 1, as MNIST's digits span the full range."""
    ink = ink - _background(ink)
    contrast = ink.max()
    if contrast < MIN_CONTRAST:
        raise ImageError(
            "The image is blank: no digit stands out from the background. "
            "Upload a dark digit on a light background or a light digit on a dark one."
        )
    ink = np.clip(ink / contrast, 0.0, 1.0)
    ink[ink < NOISE_FLOOR] = 0.0
    return ink


def _mnist_frame(ink: np.ndarray) -> np.ndarray:
    """Crop to the ink, fit into 20x20 keeping the aspect ratio, centre by mass in 28x28; uint8."""
    rows, cols = np.nonzero(ink)
    digit = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = digit.shape
    scale = MNIST_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = Image.fromarray(digit.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    digit = np.clip(np.asarray(digit), 0.0, 1.0)  # Lanczos rings slightly below 0 and above 1
    centre_row, centre_col = ndimage.center_of_mass(digit)
    # Integer shifts, as MNIST's own centring; kept inside the frame for lopsided digits.
    top = int(np.clip(round(MNIST_CENTRE - centre_row), 0, IMAGE_SIZE - digit.shape[0]))
    left = int(np.clip(round(MNIST_CENTRE - centre_col), 0, IMAGE_SIZE - digit.shape[1]))
    frame = np.zeros((IMAGE_SIZE, IMAGE_SIZE))
    frame[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return np.round(frame * 255).astype(np.uint8)


def preprocess_digit(
    data: bytes | Image.Image | np.ndarray, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = 4096 * 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Any picture of one digit -> (x28 uint8 (28, 28) in MNIST form, x32 float32 (32, 32, 1) in [0, 1]).

    MNIST form: light ink on black, cropped to the ink, fitted into 20x20 with its aspect ratio,
    placed in 28x28 with its centre of mass at (14, 14). x32 is x28 as core.data.prepare_images
    feeds the test set to LeNet. Raises ImageError naming what is wrong.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        array = _image_to_array(_open_upload(bytes(data), max_bytes, max_pixels))
    elif isinstance(data, Image.Image):
        array = _image_to_array(_decoded(data, max_pixels))
    elif isinstance(data, np.ndarray):
        if data.size == 0:
            raise ImageError(f"The image array is empty (shape {data.shape}).")
        if data.ndim >= 2:
            _check_pixels((data.shape[1], data.shape[0]), max_pixels)
        array = data
    else:
        raise TypeError(f"data must be bytes, a PIL image or a numpy array; got {type(data).__name__}")
    x28 = _mnist_frame(_ink(array))
    x32 = prepare_images(x28[None])[0]
    return x28, x32


MAX_MARKS = 4  # separate marks a drawn digit may have (a 4 or a 5 drawn in strokes has two or three)
MAX_INK_SHARE = 0.4  # MNIST's digits cover about 19% of their 28x28 frame; a drawing above 40% is a filled area


def drawing_problem(x28: np.ndarray) -> str | None:
    """Why a drawing in MNIST form (from preprocess_digit) does not look like one digit, or None if it does."""
    ink = np.asarray(x28) > 0.3 * 255
    labels, count = ndimage.label(ink)
    marks = int((np.bincount(labels.ravel())[1:] >= 3).sum()) if count else 0
    if marks > MAX_MARKS:
        return (f"This drawing looks like noise, not one digit: {marks} separate marks (a digit has at most "
                f"{MAX_MARKS}). The prediction below means little; Clear and draw one digit.")
    share = float(ink.mean())
    if share > MAX_INK_SHARE:
        return (f"This drawing looks like noise, not one digit: ink covers {share:.0%} of the frame (a digit "
                f"about 20%, at most {MAX_INK_SHARE:.0%}). The prediction below means little; Clear and draw one digit.")
    return None
