"""Shareable experiment links: a page's settings as one short, versioned URL parameter.

A link carries one page's whole state in ``?x=<version>.<base64url of zlib-compressed JSON>``.
The JSON holds only what differs from a known starting point (the default `UNetConfig` and
`AugmentConfig`, or the chosen preset's `RunSpec` on the Train page), so a full Train state
stays a few hundred characters. The version prefix tells a future format apart: a link of
another version, a cut or garbled one, or one that is too long is refused with one
`LinkError` sentence (the page shows it and its defaults). Every value goes back through the
frozen configs (`from_dict` and their checks), so a link can never make a config the widgets
could not. Links carry settings only: never a run's owner secret.

Example:
    >>> from unet_demo.config import UNetConfig
    >>> token = encode_link(BuildLink(UNetConfig(depth=2, base_filters=32)))
    >>> token.startswith("1."), len(token) < 60
    (True, True)
    >>> decode_link(token, "build").model.base_filters
    32
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import zlib
from typing import Any

from unet_demo.config import AugmentConfig, UNetConfig
from unet_demo.errors import UNetDemoError
from unet_demo.training.presets import PRESET_NAMES, get_preset
from unet_demo.training.spec import RunSpec

LINK_PARAM = "x"
"""The URL query parameter that holds a page's settings (``?x=1.eNq...``)."""
LINK_VERSION = 1
"""Format version written before the first dot; a link of another version is refused."""
MAX_LINK_CHARS = 2000
"""Longest token read (browsers and chat tools cut longer URLs; ours stay far below)."""
MAX_JSON_BYTES = 16_000
"""Most bytes a token may inflate to (guards against a small token that unpacks to a lot)."""
MAX_LABEL_CHARS = 60
LINK_KINDS = ("build", "augment", "train")
"""The pages that write links; a link made on one page is refused by another."""

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
# zlib's preset dictionary of format 1: the option names and common values, so even the first
# mention of "learning_rate" costs a few bits. Frozen with the format: changing it would make
# every link already shared unreadable, so a change needs LINK_VERSION + 1 (a test checks it).
_ZDICT_V1 = (
    '"loss":,"bce_weight":,"dice_weight":,"focal_gamma":,"tversky_alpha":,"tversky_beta":,"op'
    'timizer":,"learning_rate":,"weight_decay":,"momentum":,"schedule":,"epochs":,"batch_size'
    '":,"early_stopping_patience":,"augment":,"seed":,"deterministic":,"dataset":,"image_size'
    '":,"normalization":,"max_train_images":,"hflip_p":,"vflip_p":,"rotate_p":,"rotate_limit"'
    ':,"affine_p":,"shift_limit":,"scale_limit":,"affine_rotate_limit":,"crop_p":,"crop_scale'
    '_min":,"brightness_contrast_p":,"brightness_limit":,"contrast_limit":,"gamma_p":,"gamma_'
    'min":,"gamma_max":,"noise_p":,"noise_std_max":,"elastic_p":,"elastic_alpha":,"elastic_si'
    'gma":,"grid_p":,"grid_steps":,"grid_limit":,"clahe_p":,"clahe_clip":,"blur_p":,"blur_lim'
    'it":,"border_mode":,"variant":,"input_height":,"input_width":,"input_depth":,"input_chan'
    'nels":,"num_classes":,"depth":,"base_filters":,"filter_growth":,"kernel_size":,"convs_pe'
    'r_block":,"dropout_rate":,"dropout_where":,"l1":,"l2":,"upsampling":,"interpolation":,"a'
    'ctivation":,"kernel_initializer":,"deep_supervision":,"backbone":,"encoder_weights":,"fr'
    'eeze_encoder":"classic","attention","residual","unetpp","lightweight","unet3d","pretrain'
    'ed","none","batch","group","instance","layer","relu","leaky_relu","elu","gelu","he_norma'
    'l","he_uniform","glorot_uniform","glorot_normal","bce","dice","bce_dice","focal","tversk'
    'y","generalized_dice","cce","cce_dice","adam","adamw","sgd","constant","plateau","cosine'
    '","exponential","poly","upsample_conv","nearest","decoder","classroom","quality","brain_'
    'skullstrip","brain_tissue","nuclei","synthetic_lesions""augment":{"data":{"model":{"trai'
    'n":{"k":"train","l":"","p":"s":{"u":true,false,'
).encode("ascii")
_FIX = "Ask for a fresh link, or set the widgets by hand."


class LinkError(UNetDemoError):
    """A link that cannot be read: garbled, cut, too long, of another version or another page."""


# --------------------------------------------------------------------------- typed links

@dataclasses.dataclass(frozen=True)
class BuildLink:
    """The Build page: the designed U-Net and the batch size of its memory figures.

    Args:
        model: the `UNetConfig` the widgets describe.
        batch_size: the "Batch size (for the memory figures)" slider.
    """

    model: UNetConfig = dataclasses.field(default_factory=UNetConfig)
    batch_size: int = 8
    kind = "build"


@dataclasses.dataclass(frozen=True)
class AugmentLink:
    """The Augment page: the pipeline, and which image the gallery starts from.

    Args:
        augment: the `AugmentConfig` of the sliders (its seed included).
        dataset: the bundled dataset the gallery shows ("" = the session's dataset).
        image_index: 0-based training image of the gallery (-1 = the page's choice).
        image_only: the "augment the image only" pitfall toggle.
    """

    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    dataset: str = ""
    image_index: int = -1
    image_only: bool = False
    kind = "augment"


@dataclasses.dataclass(frozen=True)
class TrainLink:
    """The Train page: the run it would start, the preset it starts from, and the form's extras.

    Args:
        spec: the `RunSpec` (data, augmentation, model, training) the Start button would use.
        preset: the preset radio ("classroom" or "quality"); the spec is stored as its diff.
        built_model: True when the "Build page model" is chosen (the model travels in the link).
        label: the optional run label.

    Example:
        >>> link = TrainLink(get_preset("nuclei", "classroom"))
        >>> decode_link(encode_link(link), "train") == link
        True
    """

    spec: RunSpec = dataclasses.field(default_factory=RunSpec)
    preset: str = PRESET_NAMES[0]
    built_model: bool = False
    label: str = ""
    kind = "train"


Link = BuildLink | AugmentLink | TrainLink


# --------------------------------------------------------------------------- token format

def encode_payload(payload: dict[str, Any]) -> str:
    """Pack a JSON-able dict as ``"<version>.<base64url(zlib(json))>"`` (no padding).

    Args:
        payload: plain JSON values only.

    Example:
        >>> encode_payload({"k": "build"})
        '1.ePm7WTFng6hNKs3MSVGqBQAcAQQ2'
        >>> decode_payload(encode_payload({"k": "build"}))
        {'k': 'build'}
    """
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    deflater = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zdict=_ZDICT_V1)
    packed = deflater.compress(text.encode("utf-8")) + deflater.flush()
    return f"{LINK_VERSION}." + base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")


def decode_payload(token: Any) -> dict[str, Any]:
    """Unpack `encode_payload`'s token, checking length, version and contents.

    Args:
        token: the ``x`` query parameter as received (any type; only a str can pass).

    Raises:
        LinkError: the token is empty, too long, of another version, cut or garbled.

    Example:
        >>> decode_payload("2.abc")
        Traceback (most recent call last):
        ...
        unet_demo.training.links.LinkError: This link was made by a newer version of the app (link format 2, this app reads 1); the settings below are the defaults. Ask for a fresh link, or set the widgets by hand.
    """
    if not isinstance(token, str) or not token.strip():
        raise LinkError(f"This link has no settings in it (the x= part is empty). {_FIX}")
    token = token.strip()
    if len(token) > MAX_LINK_CHARS:
        raise LinkError(f"This link's settings are {len(token)} characters long, more than the "
                        f"{MAX_LINK_CHARS} a link may carry (was it pasted twice?); the settings "
                        f"below are the defaults. {_FIX}")
    version, dot, body = token.partition(".")
    if not dot or not version.isdigit():
        raise LinkError("This link's settings are garbled (they should start with "
                        f"'{LINK_VERSION}.'); the settings below are the defaults. {_FIX}")
    if int(version) != LINK_VERSION:
        age = "a newer" if int(version) > LINK_VERSION else "an older"
        raise LinkError(f"This link was made by {age} version of the app (link format "
                        f"{int(version)}, this app reads {LINK_VERSION}); the settings below "
                        f"are the defaults. {_FIX}")
    garbled = LinkError("This link's settings are garbled or cut off (was only part of it "
                        f"copied?); the settings below are the defaults. {_FIX}")
    if not _TOKEN.match(body):
        raise garbled
    try:
        packed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        inflater = zlib.decompressobj(15, zdict=_ZDICT_V1)
        raw = inflater.decompress(packed, MAX_JSON_BYTES)
        if inflater.unconsumed_tail:
            raise LinkError(f"This link's settings unpack to more than {MAX_JSON_BYTES} bytes, "
                            f"far more than any page writes; the settings below are the "
                            f"defaults. {_FIX}")
        if not inflater.eof:
            raise garbled
        payload = json.loads(raw.decode("utf-8"))
    except (binascii.Error, zlib.error, ValueError):
        raise garbled from None
    if not isinstance(payload, dict):
        raise garbled
    return payload


# --------------------------------------------------------------------------- configs <-> diffs

_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def config_diff(config: Any, base: Any) -> dict[str, Any]:
    """The fields of a frozen config that differ from `base` (what a link stores).

    Args:
        config: a frozen flat config (`UNetConfig`, `AugmentConfig`, ...).
        base: the same kind of config to compare with.

    Example:
        >>> config_diff(UNetConfig(depth=2), UNetConfig())
        {'depth': 2}
    """
    base_values = base.to_dict()
    return {name: value for name, value in config.to_dict().items()
            if value != base_values[name]}


def config_from_diff(kind: type, base: Any, diff: Any, what: str) -> Any:
    """`base` with the link's changed fields applied, each type- and range-checked.

    Args:
        kind: the config class.
        base: the starting config (defaults or the preset's).
        diff: the dict stored in the link.
        what: how the message names this part, e.g. "model".

    Raises:
        LinkError: unknown fields, wrong types or values the config refuses.

    Example:
        >>> config_from_diff(UNetConfig, UNetConfig(), {"depth": 2}, "model").depth
        2
        >>> config_from_diff(UNetConfig, UNetConfig(), {"depth": "deep"}, "model")
        Traceback (most recent call last):
        ...
        unet_demo.training.links.LinkError: This link's model setting depth must be a whole number (int). Received: 'deep'. Ask for a fresh link, or set the widgets by hand.
    """
    if not isinstance(diff, dict):
        raise LinkError(f"This link's {what} settings are garbled. {_FIX}")
    fields = {field.name: str(field.type) for field in dataclasses.fields(kind)}
    values = base.to_dict()
    for name, value in diff.items():
        expected = fields.get(name)
        if expected is None:
            raise LinkError(f"This link's {what} settings name an unknown option {name!r} "
                            f"(made by another version of the app?). {_FIX}")
        allowed = _TYPES.get(expected, (object,))
        if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
            word = {"int": "whole number", "float": "number", "bool": "true/false",
                    "str": "text"}.get(expected, expected)
            raise LinkError(f"This link's {what} setting {name} must be a {word} ({expected}). "
                            f"Received: {value!r}. {_FIX}")
        values[name] = float(value) if expected == "float" else value
    try:
        return kind.from_dict(values)
    except UNetDemoError as error:
        raise LinkError(f"This link's {what} settings are not valid: {error} {_FIX}") from None


def _check_value(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise LinkError(f"This link's {name} is garbled. Received: {value!r}. {_FIX}")
    return value


# --------------------------------------------------------------------------- links

def encode_link(link: Link) -> str:
    """The ``x`` parameter of a page's link.

    Args:
        link: a `BuildLink`, `AugmentLink` or `TrainLink`.

    Example:
        >>> from unet_demo.config import AugmentConfig
        >>> token = encode_link(AugmentLink(AugmentConfig(hflip_p=0.5, seed=3), "nuclei", 4))
        >>> decode_link(token, "augment").augment.seed
        3
    """
    if isinstance(link, BuildLink):
        payload: dict[str, Any] = {"m": config_diff(link.model, UNetConfig()),
                                   "b": link.batch_size}
    elif isinstance(link, AugmentLink):
        payload = {"a": config_diff(link.augment, AugmentConfig()), "d": link.dataset,
                   "i": link.image_index, "o": link.image_only}
    elif isinstance(link, TrainLink):
        base = get_preset(link.spec.data.dataset, link.preset)
        payload = {"d": link.spec.data.dataset, "p": link.preset, "u": link.built_model,
                   "l": link.label,
                   "s": {part: diff for part in ("data", "augment", "model", "train")
                         if (diff := config_diff(getattr(link.spec, part), getattr(base, part)))}}
    else:
        raise LinkError(f"Only Build, Augment and Train settings make links. Received: "
                        f"{type(link).__name__}.")
    return encode_payload({"k": link.kind, **payload})


def decode_link(token: Any, kind: str) -> Link:
    """Read the ``x`` parameter on the page `kind` ("build", "augment" or "train").

    Args:
        token: the query parameter's value.
        kind: the page reading it; a link from another page is refused.

    Raises:
        LinkError: one sentence saying what is wrong with the link (the page shows it).

    Example:
        >>> token = encode_link(BuildLink(UNetConfig(depth=2)))
        >>> decode_link(token, "train")
        Traceback (most recent call last):
        ...
        unet_demo.training.links.LinkError: This link holds Build page settings: open it on the Build page (the settings below are the defaults).
    """
    if kind not in LINK_KINDS:
        raise LinkError(f"kind must be one of {list(LINK_KINDS)}. Received: {kind!r}.")
    payload = decode_payload(token)
    found = payload.get("k")
    if found != kind:
        if found in LINK_KINDS:
            raise LinkError(f"This link holds {found.title()} page settings: open it on the "
                            f"{found.title()} page (the settings below are the defaults).")
        raise LinkError(f"This link's settings are garbled (no page named). {_FIX}")
    try:
        if kind == "build":
            model = config_from_diff(UNetConfig, UNetConfig(), payload.get("m", {}), "model")
            return BuildLink(model, _check_value("batch size", payload.get("b", 8), int))
        if kind == "augment":
            augment = config_from_diff(AugmentConfig, AugmentConfig(), payload.get("a", {}),
                                       "augmentation")
            return AugmentLink(augment, _check_value("dataset", payload.get("d", ""), str),
                               _check_value("image number", payload.get("i", -1), int),
                               _check_value("pitfall toggle", payload.get("o", False), bool))
        return _train_link(payload)
    except LinkError:
        raise
    except UNetDemoError as error:
        raise LinkError(f"This link's settings are not valid: {error} {_FIX}") from None


def _train_link(payload: dict[str, Any]) -> TrainLink:
    dataset = _check_value("dataset", payload.get("d"), str)
    preset = _check_value("preset", payload.get("p", PRESET_NAMES[0]), str)
    label = _check_value("run label", payload.get("l", ""), str)
    if len(label) > MAX_LABEL_CHARS:
        raise LinkError(f"This link's run label is longer than {MAX_LABEL_CHARS} characters. "
                        f"{_FIX}")
    base = get_preset(dataset, preset)
    parts = payload.get("s", {})
    if not isinstance(parts, dict) or set(parts) - {"data", "augment", "model", "train"}:
        raise LinkError(f"This link's run settings are garbled. {_FIX}")
    configs = {name: config_from_diff(type(getattr(base, name)), getattr(base, name),
                                      parts.get(name, {}), name)
               for name in ("data", "augment", "model", "train")}
    if configs["data"].dataset != dataset:
        raise LinkError(f"This link names two datasets ({dataset!r} and "
                        f"{configs['data'].dataset!r}). {_FIX}")
    return TrainLink(RunSpec(**configs), preset,
                     _check_value("model choice", payload.get("u", False), bool), label)
