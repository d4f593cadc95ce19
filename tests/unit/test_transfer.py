"""Transfer learning offline (`unet_demo.models.transfer`): the shipped encoder loads without a
network and fits only its architecture, the guide's schedule freezes and unfreezes the right
layers, and a tiny transfer run trains through the real runner with its phases recorded."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

from unet_demo.config import DataConfig, TrainConfig, UNetConfig
from unet_demo.errors import UNetDemoError
from unet_demo.models import transfer
from unet_demo.models.builder import build_unet

SHIPPED = "brain_tissue_classic16"
ENCODER_BUDGET_BYTES = 1_000_000  # scripts/pretrain_encoder.py refuses a bigger encoder too


def _shipped_config(size: int = 32) -> UNetConfig:
    return transfer.match_encoder(UNetConfig(input_height=size, input_width=size), SHIPPED)


def _stored(name: str = SHIPPED) -> dict[str, np.ndarray]:
    with np.load(transfer.encoders_dir() / name / transfer.ENCODER_FILE) as stored:
        return {key: stored[key] for key in stored.files}


# --------------------------------------------------------------------------- the schedule

@pytest.mark.parametrize("epochs, frozen, plan", [
    (6, 0, [("all", 0, 6)]),
    (6, 2, [("decoder", 0, 2), ("last_level", 2, 6)]),
    (6, 6, [("decoder", 0, 6)]),
    (3, 9, [("decoder", 0, 3)]),
])
def test_phase_plan(epochs, frozen, plan):
    assert transfer.phase_plan(TrainConfig(epochs=epochs, frozen_epochs=frozen)) == plan


@pytest.mark.parametrize("variant", ["classic", "residual", "attention", "dense", "unetpp"])
def test_each_phase_freezes_exactly_the_right_layers(variant):
    cfg = UNetConfig(variant=variant, input_height=16, input_width=16, depth=2, base_filters=2,
                     normalization="group")
    model = build_unet(cfg)
    weighted = [layer for layer in model.layers if layer.weights]
    expected = {
        "decoder": lambda name: not name.startswith(("enc", "bottleneck")),
        "last_level": lambda name: not name.startswith("enc"),
        "all": lambda name: True,
    }
    for phase in ("decoder", "last_level", "all", "decoder"):
        counts = transfer.set_phase(model, cfg, phase)
        flags = {layer.name: layer.trainable for layer in weighted}
        assert flags == {name: expected[phase](name) for name in flags}, phase
        assert counts["trainable"] == sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert transfer.set_phase(model, cfg, "all")["frozen"] == 0


def test_the_backbone_of_the_pretrained_variant_unfreezes_only_after_its_last_skip():
    cfg = UNetConfig(variant="pretrained", backbone="vgg16", depth=4, input_height=32,
                     input_width=32, encoder_weights="none")
    model = build_unet(cfg, load_weights=False)
    transfer.set_phase(model, cfg, "decoder")
    assert not any(model.get_layer(n).trainable for n in ("block1_conv1", "block5_conv3"))
    assert model.get_layer("dec0_conv1").trainable
    transfer.set_phase(model, cfg, "last_level")
    assert model.get_layer("block5_conv1").trainable and model.get_layer("block5_conv3").trainable
    assert not model.get_layer("block4_conv3").trainable  # the last skip tap stays frozen


# --------------------------------------------------------------------------- shipped encoder

def test_the_shipped_encoder_is_small_and_its_card_says_how_it_was_made():
    folder = transfer.encoders_dir() / SHIPPED
    assert SHIPPED in transfer.list_encoders()
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size <= ENCODER_BUDGET_BYTES, size
    card = transfer.encoder_card(SHIPPED)
    assert card["pretraining"]["dataset"] == "brain_tissue"
    assert card["made_by"] == "scripts/pretrain_encoder.py"
    assert (folder / "README.md").read_text().count("not for diagnosis") == 1
    assert card["pretraining"]["test"]["dice"] > 0.5  # it learnt something


def test_the_shipped_encoder_loads_offline_into_the_encoder_only(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("loading the encoder tried to open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    cfg = _shipped_config()
    model = build_unet(cfg)
    decoder_before = model.get_layer("dec0_conv1").get_weights()[0].copy()
    assert transfer.load_encoder(model, cfg, SHIPPED) == 4 * (cfg.depth + 1)
    stored = _stored()
    for name in ("enc0_conv1", "bottleneck_conv2", "enc2_norm1"):
        np.testing.assert_array_equal(model.get_layer(name).get_weights()[0],
                                      stored[f"{name}/0"].astype(np.float32))
    np.testing.assert_array_equal(model.get_layer("dec0_conv1").get_weights()[0], decoder_before)


def test_another_architecture_is_refused_before_any_weight_changes():
    cfg = UNetConfig(input_height=32, input_width=32, base_filters=8, normalization="group")
    model = build_unet(cfg)
    before = model.get_layer("enc0_conv1").get_weights()[0].copy()
    with pytest.raises(UNetDemoError, match="was made for a classic U-Net, depth 3, 16 base"):
        transfer.load_encoder(model, cfg, SHIPPED)
    np.testing.assert_array_equal(model.get_layer("enc0_conv1").get_weights()[0], before)
    with pytest.raises(UNetDemoError, match="No shipped encoder named 'imagenet'"):
        transfer.load_encoder(model, cfg, "imagenet")
    with pytest.raises(UNetDemoError, match="init_encoder must be empty"):
        TrainConfig(init_encoder="../models")


def test_the_cli_gives_the_model_the_encoders_shape():
    import argparse

    from unet_demo.commands.train import build_spec, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["train", "--dataset", "brain_skullstrip", "--init-encoder", SHIPPED,
                              "--frozen-epochs", "3", "--unfreeze-lr-factor", "0.2"])
    spec = build_spec(args)
    assert (spec.train.init_encoder, spec.train.frozen_epochs) == (SHIPPED, 3)
    assert spec.train.unfreeze_lr_factor == 0.2
    assert (spec.model.base_filters, spec.model.normalization) == (16, "group")


# --------------------------------------------------------------------------- a real run

@pytest.mark.slow  # about 20 s alone on 2 cores; minutes when the machine is shared
def test_a_tiny_transfer_run_resumed_at_the_switch_keeps_frozen_levels_and_phases(tmp_path,
                                                                              monkeypatch):
    import keras

    from unet_demo.training.events import PhaseStart, read_events
    from unet_demo.training.live import LiveRun, event_lines
    from unet_demo.training.rundir import load_history
    from unet_demo.training.runner import run_training
    from unet_demo.training.spec import RunSpec

    monkeypatch.setenv("UNET_DEMO_XLA", "0")  # no compile per phase: the schedule is tested
    spec = RunSpec(data=DataConfig(dataset="brain_skullstrip", image_size=32, max_train_images=4),
                   model=_shipped_config(),
                   train=TrainConfig(epochs=3, batch_size=2, learning_rate=1e-2, seed=3,
                                     init_encoder=SHIPPED, frozen_epochs=1,
                                     unfreeze_lr_factor=0.1))
    # Stopped right after the switch to phase 2, then resumed from the phase-1 checkpoint:
    # the resume must enter phase 2 again (new flags, new optimizer at the lower rate).
    seen: list = []
    run_dir = run_training(spec, tmp_path / "run", on_event=seen.append,
                           should_stop=lambda: any(isinstance(e, PhaseStart) and
                                                   e.phase == "last_level" for e in seen))
    assert type(seen[-1]).__name__ == "Stopped" and seen[-1].epoch == 2
    run_training(spec, run_dir, resume=True)
    events = read_events(run_dir)[0]
    phases = [e for e in events if isinstance(e, PhaseStart)]
    assert [(e.epoch, e.phase) for e in phases] == [(1, "decoder"), (2, "last_level"),
                                                    (2, "last_level")]
    events = events[[type(e).__name__ for e in events].index("Stopped") + 1:]
    phases = [phases[0]] + [e for e in events if isinstance(e, PhaseStart)]
    printed = "\n".join(event_lines(LiveRun("r"), read_events(run_dir)[0]))  # as the CLI
    assert "Epoch 1: encoder frozen" in printed
    assert "Epoch 2: the deepest encoder level is unfrozen" in printed
    assert phases[0].trainable_params < phases[1].trainable_params
    assert phases[1].learning_rate == pytest.approx(1e-3)
    history = load_history(run_dir)
    assert [row["phase"] for row in history] == [1.0, 2.0, 2.0]
    assert [row["lr"] for row in history] == pytest.approx([1e-2, 1e-3, 1e-3])
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    assert "phase" not in metrics["train"]
    card = (Path(run_dir) / "model_card.md").read_text()
    assert f"Transfer: encoder from the shipped encoder {SHIPPED}; encoder frozen for 1" in card
    model = keras.saving.load_model(Path(run_dir) / "model.keras", compile=False)
    stored = _stored()
    # enc0 never learns (frozen in both phases); the bottleneck learns in phase 2.
    np.testing.assert_array_equal(model.get_layer("enc0_conv1").get_weights()[0],
                                  stored["enc0_conv1/0"].astype(np.float32))
    assert not np.array_equal(model.get_layer("bottleneck_conv1").get_weights()[0],
                              stored["bottleneck_conv1/0"].astype(np.float32))
    assert np.isfinite(metrics["test"]["dice"])
