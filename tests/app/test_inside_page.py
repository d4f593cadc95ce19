"""Inside page: grids for every level, attention maps, receptive field, ablation chart, loss maps.

One bundled model (brain_skullstrip, classic U-Net) and one tiny attention U-Net in a finished
run folder; changing the image changes what is shown.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from unet_demo import DISCLAIMER

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "8_Inside.py")
GRID_TAPS = ("enc0_act2", "enc1_act2", "enc2_act2", "bottleneck_act2", "dec2_up", "dec2_act2",
             "dec1_up", "dec1_act2", "dec0_up", "dec0_act2", "output")


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _images(at: AppTest) -> dict[str, str]:
    """caption -> media URL of every picture on the page."""
    return {img.caption: img.url for element in at.get("image") for img in element.proto.imgs}


def _pictures(at: AppTest) -> list[tuple[str, str]]:
    """(what, media URL) of every picture in page order; "what" leaves out image-dependent text."""
    found = []
    for element in at.get("image"):
        for img in element.proto.imgs:
            what = img.caption.split(" · ")[0].split(":")[0].split(" — ")[0]
            found.append((what, img.url))
    return found


def _grid_names(at: AppTest) -> set[str]:
    return {caption.split(" · ")[0] for caption in _images(at) if " · " in caption}


@pytest.fixture(scope="module")
def attention_run(tmp_path_factory) -> Path:
    """A finished run folder as the Train page leaves it: config, Finished event, model.keras.

    The attention U-Net (32x32, depth 2) is fitted for one quick Keras epoch on 16 lesion
    images; the full training engine is covered by the training tests and is slower here.
    """
    import keras

    from unet_demo.config import DataConfig, TrainConfig, UNetConfig
    from unet_demo.data.preprocess import prepare_batch
    from unet_demo.data.sources import load_split_arrays
    from unet_demo.models.builder import build_unet
    from unet_demo.training import events
    from unet_demo.training.rundir import CONFIG_FILE, atomic_write_json
    from unet_demo.training.spec import RunSpec

    runs = tmp_path_factory.mktemp("runs")
    run_dir = runs / "run-inside-attention"
    spec = RunSpec(
        data=DataConfig(dataset="synthetic_lesions", image_size=32, max_train_images=16),
        model=UNetConfig(variant="attention", input_height=32, input_width=32, depth=2,
                         base_filters=4),
        train=TrainConfig(epochs=1, batch_size=8),
    )
    keras.utils.set_random_seed(0)
    images, masks, _ = load_split_arrays("synthetic_lesions", "train")
    x, y = prepare_batch(images[:16], masks[:16], size=32, channels=1)
    model = build_unet(spec.model)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, (y > 0).astype("float32")[..., None], epochs=1, batch_size=8, verbose=0)
    run_dir.mkdir()
    model.save(run_dir / "model.keras")
    atomic_write_json(run_dir / CONFIG_FILE, spec.to_dict())
    events.append_event(run_dir, events.Finished(best_epoch=1, metrics={"val_dice": 0.1}))
    return runs


def test_bundled_model_every_level_ablation_loss_maps_and_a_new_image(monkeypatch, tmp_path):
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    at = _run(AppTest.from_file(PAGE, default_timeout=300))
    assert at.title[0].value == "Inside the U-Net"
    assert any(DISCLAIMER in c.value for c in at.caption)
    assert [t.label for t in at.tabs] == ["Feature maps", "Attention gates", "Receptive field",
                                          "Skip ablation", "Loss maps"]
    assert _grid_names(at) >= set(GRID_TAPS)
    shapes = {caption.split(" · ")[0]: caption.split(" · ")[1] for caption in _images(at)
              if " · " in caption}
    assert shapes["bottleneck_act2"] == "16×16×128" and shapes["enc0_act2"] == "128×128×16"
    assert any("no attention gates" in i.value for i in at.info)
    assert any("trained with" in i.value for i in at.info)
    charts = at.get("plotly_chart")
    assert any("skip connections switched off" in c.proto.spec for c in charts)
    assert any("Receptive field" in c.proto.spec for c in charts)
    captions = list(_images(at))
    assert any(c.startswith("output: theoretical 96 px") for c in captions)
    # Every caption, duplicates included (one loss can pull the same share at both stages).
    loss_captions = [img.caption for element in at.get("image") for img in element.proto.imgs
                     if "of the pull on the foreground" in img.caption]
    assert len(loss_captions) == 8 and any(c.startswith("Dice:") for c in loss_captions)
    assert any(c.startswith("intact model — Dice") for c in captions)

    before = _pictures(at)
    at.slider(key="inside.index").set_value(5)
    _run(at)
    after = _pictures(at)
    assert [name for name, _ in before] == [name for name, _ in after]
    changed = {name for (name, old), (_, new) in zip(before, after, strict=True) if old != new}
    assert changed >= set(GRID_TAPS) | {"model input", "prediction", "Dice", "Tversky"}, changed

    at.radio(key="inside.ablate").set_value("all")
    at.radio(key="inside.ablation_mode").set_value("mean")
    _run(at)
    assert any(c.startswith("skip all off (mean)") for c in _images(at))


def test_tiny_attention_run_shows_its_gates_and_every_level(monkeypatch, attention_run):
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(attention_run))
    at = _run(AppTest.from_file(PAGE, default_timeout=300))
    model = at.selectbox(key="inside.model")
    run_label = next(o for o in model.options if o.startswith("Run: run-inside-attention"))
    model.set_value(run_label)
    _run(at)
    names = _grid_names(at)
    assert names >= {"enc0_act2", "enc1_act2", "bottleneck_act2", "dec1_up", "attn1_gate",
                     "dec0_up", "attn0_gate", "dec0_act2", "output"}, names
    gates = [c for c in _images(at) if c.startswith(("attn0_resample", "attn1_resample"))]
    assert len(gates) == 2
    assert all("coefficients" in c for c in gates)
    assert any("32×32×1" in c for c in _images(at) if c.startswith("model input"))


def test_an_upload_is_prepared_like_the_model_was_trained(tmp_path):
    import numpy as np

    from tests.bad_files import png_bytes
    from unet_demo.inference.registry import open_model
    from unet_demo.ui.inside_ui import inside_input, inside_maps

    handle = open_model("bundled:brain_skullstrip")
    data = png_bytes(np.tile(np.arange(200, dtype=np.uint8), (150, 1)))
    source = ("", "", 0, "ramp.png", data)
    ready = inside_input("bundled:brain_skullstrip", handle.model_id, source)
    assert ready["image"].shape == (128, 128, 1) and ready["truth"] is None
    assert ready["label"] == "ramp.png" and 0.99 < float(ready["image"].max()) <= 1.0
    maps = inside_maps("bundled:brain_skullstrip", handle.model_id, source)
    assert maps["maps"]["output"].shape == (128, 128, 1)
