"""Pure numpy preprocessing: normalisation, channel handling, resize-with-pad, CLAHE, denoise.

Used by the Data page preview, by training on uploaded data and by inference, so a picture
is prepared the same way everywhere. Every function takes and returns numpy arrays
(images HxWxC float32, masks HxW integer labels) and never modifies its input.

Example:
    >>> import numpy as np
    >>> image = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    >>> float(normalize(image, "minmax").max())
    1.0
    >>> resize_with_pad(image, 8).shape
    (8, 8, 1)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from unet_demo.errors import UNetDemoError

NORMALIZATION_MODES = ("minmax", "zscore", "symmetric", "ct_window", "clahe")
"""Same names as `DataConfig.normalization`."""
CLAHE_CLIP = 0.02
"""Clip limit of the "clahe" normalisation (scikit-image's 0-1 scale; the Data page's default)."""
PAD_MODES = ("constant", "edge")
DENOISE_METHODS = ("tv", "median", "gaussian")
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""ITU-R BT.601 luma weights, as used by Pillow's convert("L")."""


def _as_hwc(image: np.ndarray) -> np.ndarray:
    """Return `image` as float32 HxWxC (a 2D array gets a channel axis)."""
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        return array[:, :, None]
    if array.ndim != 3:
        raise UNetDemoError(
            f"Expected an image of shape (H, W) or (H, W, C). Received: shape {array.shape}."
        )
    return array


def window(image: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map values inside the window [center - width/2, center + width/2] to [0, 1] and clip.

    This is the display "window/level" radiologists use on CT (values in Hounsfield units).

    Args:
        image: array of any shape.
        center: window centre (level).
        width: window width; must be > 0.

    Example:
        >>> window(np.array([-1000.0, 40.0, 1000.0]), center=40, width=80).tolist()
        [0.0, 0.5, 1.0]
    """
    if not width or width <= 0:
        raise UNetDemoError(f"Window width must be > 0. Received: {width!r}.")
    low = float(center) - float(width) / 2.0
    return np.clip((np.asarray(image, dtype=np.float32) - low) / float(width), 0.0, 1.0)


def normalize(
    image: np.ndarray,
    mode: str = "minmax",
    *,
    center: float | None = None,
    width: float | None = None,
    percentiles: tuple[float, float] | None = None,
) -> np.ndarray:
    """Normalise intensities of one image (statistics over all pixels and channels).

    Modes (the `DataConfig.normalization` choices):
        "minmax": (x - min) / (max - min) -> [0, 1].
        "zscore": (x - mean) / std -> mean 0, std 1; a constant image gives zeros.
        "symmetric": minmax then * 2 - 1 -> [-1, 1].
        A constant image gives zeros in "minmax", "zscore" and "symmetric".
        "ct_window": `window(x, center, width)` -> [0, 1] (needs `center` and `width`).
        "clahe": `apply_clahe(x, CLAHE_CLIP)` -> [0, 1]: local contrast evened out (the Data
            page's preview with its default clip limit), chosen for training like the others,
            so prediction repeats it.

    Args:
        image: array of any shape.
        mode: one of `NORMALIZATION_MODES`.
        center, width: CT window for "ct_window".
        percentiles: optional (low, high) percentiles to clip to before "minmax",
            "symmetric" or "zscore" (e.g. (1, 99) tames hot pixels in 16-bit images).

    Example:
        >>> normalize(np.array([0.0, 5.0, 10.0]), "symmetric").tolist()
        [-1.0, 0.0, 1.0]
        >>> ramp = np.linspace(0, 0.3, 64 * 64).reshape(64, 64)  # dim, low contrast
        >>> equalised = normalize(ramp, "clahe")
        >>> equalised.shape, round(float(equalised.max() - equalised.min()), 2)
        ((64, 64), 1.0)
    """
    array = np.asarray(image, dtype=np.float32)
    if mode not in NORMALIZATION_MODES:
        raise UNetDemoError(
            f"Normalization must be one of {list(NORMALIZATION_MODES)}. Received: {mode!r}."
        )
    if not np.all(np.isfinite(array)):
        array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    if mode == "ct_window":
        if center is None or width is None:
            raise UNetDemoError(
                "Normalization 'ct_window' needs a window centre and width, e.g. center=40, "
                "width=80 for brain CT. Received: "
                f"center={center!r}, width={width!r}."
            )
        return window(array, center, width)
    if mode == "clahe":
        if array.ndim < 2 or array.size == 0:
            raise UNetDemoError(f"Normalization 'clahe' needs an image (H, W) or (H, W, C). "
                                f"Received an array of shape {array.shape}.")
        return apply_clahe(array, clip_limit=CLAHE_CLIP).reshape(array.shape)
    if percentiles is not None and array.size:
        low, high = np.percentile(array, percentiles)
        array = np.clip(array, low, high)
    if mode == "zscore":
        std = float(array.std()) if array.size else 0.0
        if std < 1e-8:
            return np.zeros_like(array)
        return ((array - float(array.mean())) / std).astype(np.float32)
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if high - low < 1e-12:
        return np.zeros_like(array)
    scaled = ((array - low) / (high - low)).astype(np.float32)
    if mode == "symmetric":
        return (scaled * 2.0 - 1.0).astype(np.float32)
    return scaled


def to_grey(image: np.ndarray) -> np.ndarray:
    """Return a HxWx1 grey image (RGB by BT.601 luma; an alpha channel is dropped).

    Args:
        image: HxW, HxWx1, HxWx3 or HxWx4.

    Example:
        >>> to_grey(np.ones((2, 2, 3), np.float32)).shape
        (2, 2, 1)
    """
    array = _as_hwc(image)
    channels = array.shape[-1]
    if channels == 1:
        return array.copy()
    if channels in (3, 4):
        return (array[..., :3] @ GREY_WEIGHTS)[..., None].astype(np.float32)
    if channels == 2:
        return array[..., :1].copy()
    raise UNetDemoError(f"Cannot make a grey image from {channels} channels; expected 1, 3 or 4.")


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Return the image with exactly `channels` channels (1: grey, 3: RGB; grey is repeated).

    Args:
        image: HxW or HxWxC.
        channels: 1 or 3 (the model's `input_channels`).

    Example:
        >>> to_channels(np.zeros((4, 4), np.float32), 3).shape
        (4, 4, 3)
    """
    array = _as_hwc(image)
    if channels == 1:
        return to_grey(array)
    if channels == 3:
        if array.shape[-1] == 1:
            return np.repeat(array, 3, axis=-1)
        if array.shape[-1] in (3, 4):
            return array[..., :3].copy()
        return np.repeat(to_grey(array), 3, axis=-1)
    raise UNetDemoError(f"Images can be given 1 or 3 channels. Received: {channels!r}.")


@dataclasses.dataclass(frozen=True)
class PadInfo:
    """Where `resize_with_pad` put the resized image, to undo it on predictions.

    Args:
        original_shape: (H, W) before resizing.
        resized_shape: (h, w) of the image inside the padded canvas.
        offset: (top, left) of the image inside the canvas.
        target_shape: (H, W) of the canvas.
    """

    original_shape: tuple[int, int]
    resized_shape: tuple[int, int]
    offset: tuple[int, int]
    target_shape: tuple[int, int]


def _target_shape(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int | np.integer):
        size = (int(size), int(size))
    height, width = (int(value) for value in size)
    if height < 1 or width < 1:
        raise UNetDemoError(f"Target size must be positive. Received: {size!r}.")
    return height, width


def _resize_nearest(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize by index lookup: exact, any dtype, labels never mix."""
    rows = np.minimum(
        ((np.arange(shape[0]) + 0.5) * array.shape[0] / shape[0]).astype(np.int64),
        array.shape[0] - 1,
    )
    cols = np.minimum(
        ((np.arange(shape[1]) + 0.5) * array.shape[1] / shape[1]).astype(np.int64),
        array.shape[1] - 1,
    )
    return array[rows][:, cols]


def _resize_smooth(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Area averaging when shrinking, bilinear when enlarging (OpenCV), channels kept."""
    import cv2

    if array.shape[:2] == shape:
        return array.astype(np.float32, copy=True)
    shrinking = shape[0] < array.shape[0] or shape[1] < array.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    channels = [
        cv2.resize(
            np.ascontiguousarray(array[..., c], dtype=np.float32),
            (shape[1], shape[0]),
            interpolation=interpolation,
        )
        for c in range(array.shape[-1])
    ]
    return np.stack(channels, axis=-1).astype(np.float32)


def resize(image: np.ndarray, size: int | tuple[int, int], *, is_mask: bool = False) -> np.ndarray:
    """Resize without keeping the aspect ratio (images smooth, masks nearest-neighbour).

    Args:
        image: HxWxC image or HxW mask.
        size: int side or (H, W).
        is_mask: use nearest neighbour and keep the dtype.

    Example:
        >>> resize(np.zeros((4, 6), np.uint8), (2, 3), is_mask=True).shape
        (2, 3)
    """
    shape = _target_shape(size)
    if is_mask:
        return _resize_nearest(np.asarray(image), shape)
    return _resize_smooth(_as_hwc(image), shape)


def resize_with_pad(
    image: np.ndarray,
    size: int | tuple[int, int],
    *,
    is_mask: bool = False,
    pad_mode: str = "constant",
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, PadInfo]:
    """Scale to fit inside `size` keeping the aspect ratio, then pad (centred) to `size`.

    Images are resized smoothly (area when shrinking, bilinear when enlarging); masks use
    nearest neighbour so labels never blend, and are always padded with 0 (background).

    Args:
        image: HxW or HxWxC image, or HxW integer mask.
        size: square side or (H, W) of the output.
        is_mask: treat as a label mask.
        pad_mode: "constant" (zeros) or "edge" (repeat border pixels); images only.
        return_info: also return a `PadInfo` to undo it with `unpad_resize`.

    Example:
        >>> out = resize_with_pad(np.ones((10, 20, 1), np.float32), 16)
        >>> out.shape, float(out[0, 8, 0]), float(out[8, 8, 0])
        ((16, 16, 1), 0.0, 1.0)
    """
    if pad_mode not in PAD_MODES:
        raise UNetDemoError(f"pad_mode must be one of {list(PAD_MODES)}. Received: {pad_mode!r}.")
    target = _target_shape(size)
    array = np.asarray(image) if is_mask else _as_hwc(image)
    if is_mask and array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    height, width = array.shape[:2]
    if height < 1 or width < 1:
        raise UNetDemoError(f"Cannot resize an empty image of shape {array.shape}.")
    scale = min(target[0] / height, target[1] / width)
    resized_shape = (
        min(target[0], max(1, round(height * scale))),
        min(target[1], max(1, round(width * scale))),
    )
    resized = (
        _resize_nearest(array, resized_shape) if is_mask else _resize_smooth(array, resized_shape)
    )
    top = (target[0] - resized_shape[0]) // 2
    left = (target[1] - resized_shape[1]) // 2
    pad = [(top, target[0] - resized_shape[0] - top), (left, target[1] - resized_shape[1] - left)]
    pad += [(0, 0)] * (resized.ndim - 2)
    if is_mask or pad_mode == "constant":
        padded = np.pad(resized, pad, mode="constant", constant_values=0)
    else:
        padded = np.pad(resized, pad, mode="edge")
    if return_info:
        info = PadInfo((height, width), resized_shape, (top, left), target)
        return padded, info
    return padded


def unpad_resize(array: np.ndarray, info: PadInfo, *, is_mask: bool = False) -> np.ndarray:
    """Undo `resize_with_pad`: crop the padding and resize back to the original shape.

    Args:
        array: model output at the padded size (HxW or HxWxC).
        info: the `PadInfo` returned with `return_info=True`.
        is_mask: nearest neighbour (labels) instead of smooth resizing (probabilities).

    Example:
        >>> image = np.ones((10, 20, 1), np.float32)
        >>> padded, info = resize_with_pad(image, 16, return_info=True)
        >>> unpad_resize(padded, info).shape
        (10, 20, 1)
    """
    top, left = info.offset
    height, width = info.resized_shape
    cropped = np.asarray(array)[top : top + height, left : left + width]
    if is_mask:
        return _resize_nearest(cropped, info.original_shape)
    restored = _resize_smooth(_as_hwc(cropped), info.original_shape)
    return restored if np.asarray(array).ndim == 3 else restored[..., 0]


def apply_clahe(
    image: np.ndarray, clip_limit: float = 0.01, kernel_size: int | None = None
) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (scikit-image), output in [0, 1].

    The image is min-max normalised first (CLAHE needs [0, 1]); colour images are
    equalised on their brightness only.

    Args:
        image: HxW or HxWxC.
        clip_limit: contrast limit in (0, 1]; higher gives stronger contrast.
        kernel_size: tile size in pixels (default: 1/8 of each side).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> apply_clahe(rng.random((32, 32, 1))).shape
        (32, 32, 1)
    """
    from skimage import exposure

    if not 0 < clip_limit <= 1:
        raise UNetDemoError(f"CLAHE clip_limit must be in (0, 1]. Received: {clip_limit!r}.")
    array = normalize(_as_hwc(image), "minmax")
    if array.shape[-1] == 1:
        result = exposure.equalize_adapthist(
            array[..., 0], kernel_size=kernel_size, clip_limit=clip_limit
        )[..., None]
    else:
        result = exposure.equalize_adapthist(
            array[..., :3], kernel_size=kernel_size, clip_limit=clip_limit
        )
    return np.clip(result, 0.0, 1.0).astype(np.float32)


def denoise(image: np.ndarray, method: str = "tv", strength: float = 0.1) -> np.ndarray:
    """Reduce noise while keeping edges; values stay in the image's range.

    Methods:
        "tv": total-variation (Chambolle, scikit-image); `strength` is the weight relative
            to the image's value range (0.05-0.3 is typical).
        "median": median filter (scipy); `strength` * 10 gives the window size (odd, >= 3).
        "gaussian": Gaussian blur (scipy); `strength` * 10 is sigma in pixels.

    Args:
        image: HxW or HxWxC.
        method: one of `DENOISE_METHODS`.
        strength: how strong, 0 < strength <= 1.

    Example:
        >>> noisy = np.random.default_rng(0).normal(0.5, 0.2, (32, 32, 1)).astype(np.float32)
        >>> bool(denoise(noisy).std() < noisy.std())
        True
    """
    from scipy import ndimage

    if method not in DENOISE_METHODS:
        raise UNetDemoError(
            f"Denoise method must be one of {list(DENOISE_METHODS)}. Received: {method!r}."
        )
    if not 0 < strength <= 1:
        raise UNetDemoError(f"Denoise strength must be in (0, 1]. Received: {strength!r}.")
    array = _as_hwc(image)
    if method == "tv":
        from skimage.restoration import denoise_tv_chambolle

        low, high = float(array.min()), float(array.max())
        span = high - low if high > low else 1.0
        scaled = (array - low) / span
        result = denoise_tv_chambolle(scaled, weight=strength, channel_axis=-1)
        return (result * span + low).astype(np.float32)
    if method == "median":
        size = max(3, int(round(strength * 10)) | 1)
        return ndimage.median_filter(array, size=(size, size, 1)).astype(np.float32)
    sigma = max(0.3, strength * 10)
    return ndimage.gaussian_filter(array, sigma=(sigma, sigma, 0)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class PreparedImage:
    """One image made ready for a model by `prepare_image`.

    Attributes:
        model_input: (h, w, C) float32, exactly what the model is fed.
        placement: where the resized image sits inside ``model_input``; `unpad_resize` maps a
            prediction back to the original pixel grid with it.
        normalized: the image after intensity normalisation, at its own size and channel
            count (what the out-of-distribution check compares with the training images).
    """

    model_input: np.ndarray
    placement: PadInfo
    normalized: np.ndarray


def prepare_image(
    image: np.ndarray,
    *,
    size: int | tuple[int, int],
    channels: int = 1,
    normalization: str = "minmax",
    center: float | None = None,
    width: float | None = None,
    pad_mode: str = "constant",
    percentiles: tuple[float, float] | None = None,
    already_normalized: bool = False,
) -> PreparedImage:
    """THE model-input step: normalise intensities, match channels, resize with padding.

    Training, the Segment and Evaluate pages and every CLI command prepare images through this
    one function, driven by what the model recorded at training time (its input size and
    channels, and `DataConfig.normalization`), so a model always sees images prepared the way
    it was trained. The order is fixed: normalise each image on its own (statistics over all
    its pixels and channels), convert to the model's channel count, then scale to fit inside
    ``size`` keeping the aspect ratio and pad the rest (`resize_with_pad`).

    Args:
        image: HxW or HxWxC in its natural range (e.g. from `read_image_bytes`).
        size: model input side or (H, W).
        channels: model input channels (1 or 3).
        normalization: one of `NORMALIZATION_MODES` (the model's training choice).
        center, width: CT window for "ct_window".
        pad_mode: "constant" or "edge".
        percentiles: optional (low, high) percentile clip before normalising (see `normalize`).
        already_normalized: skip normalisation (a volume normalised once as a whole).

    Example:
        >>> ready = prepare_image(np.ones((30, 40)), size=32, channels=3)
        >>> ready.model_input.shape, ready.placement.original_shape, ready.normalized.shape
        ((32, 32, 3), (30, 40), (30, 40, 1))
    """
    array = _as_hwc(image)
    normalized = array if already_normalized else normalize(
        array, normalization, center=center, width=width, percentiles=percentiles)
    converted = to_channels(normalized, channels)
    padded, info = resize_with_pad(converted, size, pad_mode=pad_mode, return_info=True)
    return PreparedImage(padded.astype(np.float32), info, normalized)


def prepare_batch(
    images: np.ndarray,
    masks: np.ndarray | None = None,
    *,
    size: int | tuple[int, int],
    channels: int | None = None,
    normalization: str = "minmax",
    center: float | None = None,
    width: float | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Prepare a stack of images (and their masks) for a model with `prepare_image`.

    Masks follow their image's geometry: the same aspect-preserving scale (nearest neighbour,
    labels never blend) and zero (background) padding.

    Args:
        images: (N, H, W) or (N, H, W, C) images in any range.
        masks: optional (N, H, W) integer labels of the same height and width.
        size: model input side or (H, W).
        channels: model input channels; None keeps the images' own channel count.
        normalization: one of `NORMALIZATION_MODES`.
        center, width: CT window for "ct_window".

    Returns:
        (float32 (N, h, w, C) images, uint8 (N, h, w) masks or None).

    Example:
        >>> x, y = prepare_batch(np.ones((2, 8, 8)), np.ones((2, 8, 8), np.uint8), size=16)
        >>> x.shape, y.shape, int(y[0].sum())
        ((2, 16, 16, 1), (2, 16, 16), 256)
    """
    stack = np.asarray(images)
    if stack.ndim == 3:
        stack = stack[..., None]
    if stack.ndim != 4:
        raise UNetDemoError(
            f"Expected a stack of images (N, H, W) or (N, H, W, C). Received: shape {stack.shape}."
        )
    target = _target_shape(size)
    count = len(stack)
    out_channels = int(channels or stack.shape[-1])
    prepared = np.empty((count, *target, out_channels), np.float32)
    labels = None
    if masks is not None:
        masks = np.asarray(masks)
        if masks.ndim == 4 and masks.shape[-1] == 1:
            masks = masks[..., 0]
        if masks.shape != stack.shape[:3]:
            raise UNetDemoError(
                f"Masks {masks.shape} do not match images {stack.shape[:3]}; every image needs "
                "a mask of the same height and width."
            )
        labels = np.empty((count, *target), np.uint8)
    for index in range(count):
        ready = prepare_image(stack[index], size=target, channels=out_channels,
                              normalization=normalization, center=center, width=width)
        prepared[index] = ready.model_input
        if labels is not None:
            labels[index] = resize_with_pad(masks[index], target, is_mask=True)
    return prepared, labels
