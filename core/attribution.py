"""Attribution maps: which pixels of one LeNet input made the model choose a class, written with tf.GradientTape.

Every method returns a (32, 32) float32 map over LeNet's padded input (core.data.PAD pixels of padding each side;
`crop` cuts it to the 28x28 digit). The gradient methods explain the class's logit (the output layer before its
softmax), as the papers do; occlusion explains its probability.
"""

from __future__ import annotations

import numpy as np

from core.data import IMAGE_SIZE, PAD

METHODS = {  # name -> label, in the order a picker shows them
    "saliency": "Gradient saliency",
    "smoothgrad": "SmoothGrad",
    "integrated_gradients": "Integrated gradients",
    "gradcam": "Grad-CAM on C3",
    "occlusion": "Occlusion",
}
SIGNED = frozenset({"integrated_gradients"})  # maps whose sign means something (for or against the class)
GRADCAM_LAYER = "c3_conv"
GRADCAM_STRIDE = 2  # input pixels per step on C3's map: S2 pools 2x2
OCCLUSION_PATCHES = (2, 3, 4, 5, 6, 7, 8)  # allowed patch sizes, pixels
IG_STEPS = 64
SMOOTHGRAD_SAMPLES = 32
SMOOTHGRAD_NOISE = 0.15  # the noise's standard deviation, as a share of the input range [0, 1]


def _forward(model, x, capture: str | None = None):
    """(the class logits, the output of layer `capture` or None) for a batch x, layer by layer."""
    import keras

    hidden, captured = x, None
    *body, output = model.layers
    for layer in body:
        hidden = layer(hidden, training=False)
        if layer.name == capture:
            captured = hidden
    logits = keras.ops.matmul(hidden, output.kernel) + output.bias
    return logits, captured


def logits(model, images: np.ndarray) -> np.ndarray:
    """The class logits (the output layer before its softmax) of a batch of LeNet inputs."""
    import tensorflow as tf

    return np.asarray(_forward(model, tf.constant(_batch(images)))[0], dtype=np.float64)


def _batch(images) -> np.ndarray:
    x = np.asarray(images, dtype=np.float32)
    if x.shape[-3:] != (IMAGE_SIZE + 2 * PAD, IMAGE_SIZE + 2 * PAD, 1):
        x = x.reshape((-1, IMAGE_SIZE + 2 * PAD, IMAGE_SIZE + 2 * PAD, 1))
    return x.reshape((-1, *x.shape[-3:]))


def _check(image: np.ndarray, target: int, model) -> np.ndarray:
    x = np.asarray(image, dtype=np.float32)
    size = IMAGE_SIZE + 2 * PAD
    if x.size != size * size:
        raise ValueError(f"image must be one ({size}, {size}, 1) LeNet input; got shape {x.shape}")
    classes = int(model.layers[-1].units)
    if not 0 <= int(target) < classes:
        raise ValueError(f"target class {target} is not a class of this model (0-{classes - 1})")
    return x.reshape((size, size, 1))


def gradients(model, batch: np.ndarray, target: int) -> np.ndarray:
    """d logit[target] / d input for each image of the batch, (B, 32, 32, 1)."""
    import tensorflow as tf

    x = tf.constant(_batch(batch))
    with tf.GradientTape() as tape:
        tape.watch(x)
        scores = _forward(model, x)[0][:, int(target)]
    return tape.gradient(scores, x).numpy()


def saliency(model, image, target: int) -> np.ndarray:
    """Simonyan et al. (2013): the gradient's magnitude."""
    x = _check(image, target, model)
    return np.abs(gradients(model, x[None], target)[0, :, :, 0])


def smoothgrad(model, image, target: int, samples: int = SMOOTHGRAD_SAMPLES, noise: float = SMOOTHGRAD_NOISE,
               seed: int = 0) -> np.ndarray:
    """Smilkov et al. (2017): the gradient's magnitude averaged over noisy copies of the image, in one batch."""
    x = _check(image, target, model)
    rng = np.random.default_rng(seed)
    noisy = x[None] + rng.normal(0.0, noise, size=(samples, *x.shape)).astype(np.float32)
    return np.abs(gradients(model, noisy, target)).mean(axis=0)[:, :, 0]


def integrated_gradients(model, image, target: int, steps: int = IG_STEPS, baseline=None) -> np.ndarray:
    """Sundararajan et al. (2017), from a black baseline: (x - baseline) times the mean gradient along the straight
    path, by the trapezoid rule over steps + 1 points computed in one batch. The map sums to about
    logit(x) - logit(baseline) (completeness)."""
    x = _check(image, target, model)
    base = np.zeros_like(x) if baseline is None else _check(baseline, target, model)
    alphas = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)[:, None, None, None]
    grads = gradients(model, base[None] + alphas * (x - base)[None], target)
    mean = (grads[:-1] + grads[1:]).mean(axis=0) / 2.0
    return ((x - base) * mean)[:, :, 0]


def gradcam(model, image, target: int, layer: str = GRADCAM_LAYER) -> np.ndarray:
    """Selvaraju et al. (2017) on C3: its maps weighted by the mean gradient of the class logit, positive part,
    placed back on the input where each C3 unit's receptive field is centred."""
    import tensorflow as tf
    from scipy import ndimage

    x = tf.constant(_check(image, target, model)[None])
    with tf.GradientTape() as tape:
        scores, maps = _forward(model, x, capture=layer)
        if maps is None:
            raise ValueError(f"the model has no layer {layer!r} for Grad-CAM")
        tape.watch(maps)
        score = scores[0, int(target)]
    grads = tape.gradient(score, maps)[0].numpy()
    maps = maps[0].numpy()
    cam = np.maximum((maps * grads.mean(axis=(0, 1))).sum(axis=-1), 0.0)
    return _on_input(ndimage.zoom(cam, GRADCAM_STRIDE, order=1, grid_mode=True, mode="nearest"))


def _on_input(upsampled: np.ndarray) -> np.ndarray:
    """An upsampled map centred on the 32x32 input (C3's 20x20 cover pixels 6-25: the receptive fields' centres)."""
    size = IMAGE_SIZE + 2 * PAD
    out = np.zeros((size, size), np.float32)
    top = (size - upsampled.shape[0]) // 2
    left = (size - upsampled.shape[1]) // 2
    out[top:top + upsampled.shape[0], left:left + upsampled.shape[1]] = upsampled
    return out


def occlusion(model, image, target: int, patch: int = 4) -> np.ndarray:
    """Zeiler and Fergus (2014): how much the class's probability drops when a black patch covers each place,
    averaged over the patches (stride half the patch) that cover a pixel; all occluded copies in one batch."""
    if int(patch) not in OCCLUSION_PATCHES:
        raise ValueError(f"patch size {patch} is not allowed; choose one of {', '.join(map(str, OCCLUSION_PATCHES))}")
    x = _check(image, target, model)
    stride = max(1, patch // 2)
    starts = list(range(PAD, PAD + IMAGE_SIZE - patch + 1, stride))
    if starts[-1] != PAD + IMAGE_SIZE - patch:
        starts.append(PAD + IMAGE_SIZE - patch)
    corners = [(r, c) for r in starts for c in starts]
    copies = np.repeat(x[None], len(corners), axis=0)
    for n, (r, c) in enumerate(corners):
        copies[n, r:r + patch, c:c + patch, 0] = 0.0
    probs = _softmax(logits(model, np.concatenate([x[None], copies])))[:, int(target)]
    drop, cover = np.zeros(x.shape[:2]), np.zeros(x.shape[:2])
    for (r, c), p in zip(corners, probs[1:]):
        drop[r:r + patch, c:c + patch] += probs[0] - p
        cover[r:r + patch, c:c + patch] += 1
    return np.divide(drop, cover, out=np.zeros_like(drop), where=cover > 0).astype(np.float32)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def attribution(model, image, target: int, method: str, patch: int = 4) -> np.ndarray:
    """The map of `method` (a key of METHODS) for class `target`, (32, 32) float32."""
    if method not in METHODS:
        raise ValueError(f"attribution method {method!r} is not one of {', '.join(METHODS)}")
    if method == "occlusion":
        return occlusion(model, image, target, patch)
    function = {"saliency": saliency, "smoothgrad": smoothgrad, "integrated_gradients": integrated_gradients,
                "gradcam": gradcam}[method]
    return np.asarray(function(model, image, target), dtype=np.float32)


def crop(attribution_map: np.ndarray) -> np.ndarray:
    """The 28x28 part of a map that lies over the digit (MNIST's frame)."""
    return np.asarray(attribution_map)[PAD:PAD + IMAGE_SIZE, PAD:PAD + IMAGE_SIZE]
