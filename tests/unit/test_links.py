"""Shareable links (`unet_demo.training.links`): every field round-trips, bad links are refused
with one sentence, and a full Train state stays short."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import zlib

import pytest

from unet_demo.config import AugmentConfig, DataConfig, TrainConfig, UNetConfig
from unet_demo.errors import UNetDemoError
from unet_demo.training import links
from unet_demo.training.links import (
    LINK_VERSION,
    MAX_LINK_CHARS,
    AugmentLink,
    BuildLink,
    LinkError,
    TrainLink,
    decode_link,
    decode_payload,
    encode_link,
    encode_payload,
)
from unet_demo.training.presets import get_preset

FULL_MODEL = UNetConfig(
    variant="attention", input_height=96, input_width=80, input_depth=8, input_channels=3,
    num_classes=4, depth=2, base_filters=32, filter_growth=1.5, kernel_size=5,
    convs_per_block=3, normalization="instance", dropout_rate=0.25, dropout_where="decoder",
    l1=1e-5, l2=1e-4, upsampling="upsample_conv", interpolation="nearest", activation="gelu",
    kernel_initializer="glorot_uniform", deep_supervision=True, backbone="vgg16",
    encoder_weights="none", freeze_encoder=True, skip_connections="1")
FULL_AUGMENT = AugmentConfig(
    hflip_p=0.5, vflip_p=0.25, rotate_p=0.3, rotate_limit=30.0, affine_p=0.4, shift_limit=0.1,
    scale_limit=0.2, affine_rotate_limit=12.0, crop_p=0.2, crop_scale_min=0.5,
    brightness_contrast_p=0.5, brightness_limit=0.15, contrast_limit=0.25, gamma_p=0.2,
    gamma_min=70.0, gamma_max=130.0, noise_p=0.1, noise_std_max=0.07, elastic_p=0.2,
    elastic_alpha=50.0, elastic_sigma=8.0, grid_p=0.15, grid_steps=7, grid_limit=0.4,
    clahe_p=0.15, clahe_clip=3.5, blur_p=0.05, blur_limit=7, bias_field_p=0.35,
    bias_field_limit=0.15, border_mode="constant", seed=7, transform_mask=False)
# TrainConfig.workers (data-parallel workers, part 4 of issue 13) is being added alongside.
_NEWER_TRAIN_FIELDS = {"workers": 2} if "workers" in TrainConfig.__dataclass_fields__ else {}
FULL_TRAIN = TrainConfig(
    **_NEWER_TRAIN_FIELDS, loss="tversky", bce_weight=0.5, dice_weight=2.0, focal_gamma=1.5, tversky_alpha=0.4,
    tversky_beta=0.6, optimizer="sgd", learning_rate=3e-4, weight_decay=1e-3, momentum=0.8,
    schedule="poly", epochs=12, batch_size=4, early_stopping_patience=3, augment=True, seed=123,
    deterministic=False, init_encoder="brain_tissue_classic16", frozen_epochs=5,
    unfreeze_lr_factor=0.25)
FULL_DATA = DataConfig(dataset="nuclei", image_size=96, normalization="zscore",
                       max_train_images=40, mask_resize="bilinear", folds=3, fold=2)


def _differs_everywhere(config, base) -> bool:
    return all(getattr(config, f.name) != getattr(base, f.name)
               for f in dataclasses.fields(config) if f.name != "dataset")


def test_the_full_configs_change_every_field():
    # The round trips below only prove something if every field differs from the base.
    assert _differs_everywhere(FULL_MODEL, UNetConfig())
    assert _differs_everywhere(FULL_AUGMENT, AugmentConfig())
    base = get_preset("nuclei", "classroom")
    assert _differs_everywhere(FULL_TRAIN, base.train)
    assert _differs_everywhere(FULL_DATA, base.data)
    assert _differs_everywhere(FULL_MODEL, base.model)
    assert _differs_everywhere(FULL_AUGMENT, base.augment)


def test_build_link_round_trips_every_model_field():
    link = BuildLink(FULL_MODEL, batch_size=32)
    assert decode_link(encode_link(link), "build") == link
    assert decode_link(encode_link(BuildLink()), "build") == BuildLink()


def test_augment_link_round_trips_every_pipeline_field():
    link = AugmentLink(FULL_AUGMENT, dataset="nuclei", image_index=12, image_only=True)
    assert decode_link(encode_link(link), "augment") == link
    assert decode_link(encode_link(AugmentLink()), "augment") == AugmentLink()


@pytest.mark.parametrize("preset", ["classroom", "quality"])
def test_train_link_round_trips_every_field_of_the_run_spec(preset):
    base = get_preset("nuclei", preset)
    spec = base.replace(data=FULL_DATA, augment=FULL_AUGMENT, model=FULL_MODEL, train=FULL_TRAIN)
    link = TrainLink(spec, preset, built_model=True, label="tversky, sgd 3e-4 · ü")
    back = decode_link(encode_link(link), "train")
    assert back == link
    assert back.spec.to_dict() == spec.to_dict()
    # The preset itself is stored as nothing but its name and dataset.
    plain = TrainLink(base, preset)
    assert decode_link(encode_link(plain), "train") == plain


def test_floats_come_back_exactly_and_typed():
    link = BuildLink(UNetConfig(filter_growth=1.5, l2=1e-6, dropout_rate=0.05))
    model = decode_link(encode_link(link), "build").model
    assert model.l2 == 1e-6 and isinstance(model.filter_growth, float)
    # An integral float written by hand as an int comes back as a float.
    token = encode_payload({"k": "build", "m": {"filter_growth": 3}})
    assert decode_link(token, "build").model.filter_growth == 3.0
    assert isinstance(decode_link(token, "build").model.filter_growth, float)


def _full_train_link() -> TrainLink:
    base = get_preset("brain_skullstrip", "quality")
    model = FULL_MODEL.replace(input_channels=1, num_classes=1, variant="residual")
    spec = base.replace(data=base.data.replace(max_train_images=48), augment=FULL_AUGMENT,
                        model=model, train=FULL_TRAIN.replace(loss="dice"))
    return TrainLink(spec, "quality", built_model=True, label="residual, dice, sgd, lr 3e-4")


def test_a_full_train_state_stays_compact():
    token = encode_link(_full_train_link())
    # 650: the transfer-learning fields (init_encoder, frozen_epochs, unfreeze_lr_factor) are
    # not in the frozen format-1 dictionary, so their names cost about 25 characters.
    assert len(token) < 650, len(token)
    assert len(encode_link(TrainLink(get_preset("nuclei", "classroom")))) < 80
    assert len(encode_link(BuildLink(FULL_MODEL))) < 400


def test_the_token_is_url_safe_and_versioned():
    token = encode_link(_full_train_link())
    version, _, body = token.partition(".")
    assert version == str(LINK_VERSION) == "1"
    assert set(body) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_the_format_one_dictionary_is_frozen():
    # Every link already shared depends on these bytes: change them only with LINK_VERSION + 1.
    digest = hashlib.sha256(links._ZDICT_V1).hexdigest()[:16]
    assert (LINK_VERSION, digest) == (1, "5872c8e129109fac")


def _garble(token: str) -> str:
    return token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]


BAD_TOKENS = {
    "empty": ("", "no settings"),
    "spaces": ("   ", "no settings"),
    "no version": ("eNqrVspWslJKyilNUaoFABsfBEE", "garbled"),
    "version word": ("v1.abc", "garbled"),
    "newer": ("2." + encode_link(BuildLink())[2:], "newer version"),
    "older": ("0." + encode_link(BuildLink())[2:], "older version"),
    "bad characters": ("1.abc$%", "garbled"),
    "not base64 zlib": ("1.aGVsbG8gd29ybGQ", "garbled"),
    "cut": (encode_link(_full_train_link())[:120], "garbled or cut off"),
    "one letter changed": (_garble(encode_link(_full_train_link())), "garbled"),
    "too long": ("1." + "A" * MAX_LINK_CHARS, "characters long"),
    "not an object": (encode_payload([1, 2]), "garbled"),  # type: ignore[arg-type]
    "no page": (encode_payload({"m": {}}), "no page named"),
    "another page": (encode_link(BuildLink()), "open it on the Build page"),
}


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
def test_bad_links_give_one_clear_sentence(name):
    token, words = BAD_TOKENS[name]
    with pytest.raises(LinkError) as caught:
        decode_link(token, "train")
    message = str(caught.value)
    assert words in message, message
    assert "\n" not in message and "Traceback" not in message
    assert isinstance(caught.value, UNetDemoError)


def test_a_token_that_inflates_to_a_lot_is_refused():
    huge = json.dumps({"k": "build", "pad": "x" * 100_000}).encode()
    token = "1." + base64.urlsafe_b64encode(zlib.compress(huge, 9)).decode().rstrip("=")
    assert len(token) < MAX_LINK_CHARS
    with pytest.raises(LinkError, match="unpack to more than"):
        decode_payload(token)


BAD_VALUES = {
    "unknown model option": ({"k": "build", "m": {"depht": 2}}, "unknown option 'depht'"),
    "string for int": ({"k": "build", "m": {"depth": "deep"}}, "whole number"),
    "bool for int": ({"k": "build", "m": {"depth": True}}, "whole number"),
    "out of range": ({"k": "build", "m": {"depth": 9}}, "depth must be between"),
    "bad choice": ({"k": "build", "m": {"variant": "vit"}}, "variant must be one of"),
    "bad batch": ({"k": "build", "b": "8"}, "batch size is garbled"),
    "bad probability": ({"k": "augment", "a": {"hflip_p": 2.0}}, "hflip_p must be between"),
    "bad toggle": ({"k": "augment", "o": "yes"}, "pitfall toggle is garbled"),
    "unknown dataset": ({"k": "train", "d": "cats", "p": "classroom"}, "No presets for"),
    "unknown preset": ({"k": "train", "d": "nuclei", "p": "fast"}, "preset must be one of"),
    "unknown section": ({"k": "train", "d": "nuclei", "s": {"extra": {}}}, "garbled"),
    "two datasets": ({"k": "train", "d": "nuclei", "s": {"data": {"dataset": "brain_tissue"}}},
                     "two datasets"),
    "bad loss": ({"k": "train", "d": "nuclei", "s": {"train": {"loss": "l2"}}},
                 "loss must be one of"),
    "long label": ({"k": "train", "d": "nuclei", "l": "x" * 61}, "longer than 60"),
}


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_link_values_go_through_the_configs_checks(name):
    payload, words = BAD_VALUES[name]
    with pytest.raises(LinkError) as caught:
        decode_link(encode_payload(payload), payload["k"])
    assert words in str(caught.value), str(caught.value)


def test_links_hold_settings_only_never_an_owner_or_run():
    payload = decode_payload(encode_link(_full_train_link()))
    assert set(payload) == {"k", "d", "p", "u", "l", "s"}
    assert "owner" not in json.dumps(payload) and "run_id" not in json.dumps(payload)
