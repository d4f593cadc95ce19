"""Train page: the event folding and progress maths, and the page itself through AppTest.

The AppTest cases run a real (tiny) training job in a worker process of the real job manager,
with the runs folder pointed at a temporary directory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from unet_demo.config import UNetConfig
from unet_demo.inference.labels import labels_from_probabilities
from unet_demo.plots.images import snapshot_overlay
from unet_demo.plots.training import training_curves_figure
from unet_demo.training.events import (
    BatchEnd,
    EpochEnd,
    Finished,
    Started,
    Stopped,
    ValidationSnapshot,
    append_event,
    read_events,
)
from unet_demo.training.jobs import valid_run_id
from unet_demo.training.live import LiveRun, progress_text

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "4_Train.py")
TINY_MODEL = UNetConfig(depth=2, base_filters=4, normalization="batch")


# --------------------------------------------------------------------------- pure parts

def test_live_run_folds_events_and_replaces_epochs_after_resume():
    live = LiveRun("r")
    live.apply([
        Started(epochs=3, batches_per_epoch=4, time=0.0),
        BatchEnd(epoch=1, batch=4, num_batches=4, loss=0.9, images_per_sec=10.0, time=1.0),
        EpochEnd(epoch=1, metrics={"loss": 0.9, "val_dice": 0.4}, seconds=1.0),
        ValidationSnapshot(epoch=1, path="snapshots/epoch_0001.npz"),
        EpochEnd(epoch=2, metrics={"loss": 0.7, "val_dice": 0.5}, seconds=1.0),
    ])
    assert [row["epoch"] for row in live.history] == [1, 2]
    assert live.snapshots == {1: "snapshots/epoch_0001.npz"}
    assert live.status == "running"
    # Resumed after epoch 1: epoch 2 is trained again and must not appear twice.
    live.apply([Started(epochs=3, batches_per_epoch=4, initial_epoch=1, time=5.0),
                EpochEnd(epoch=2, metrics={"loss": 0.6, "val_dice": 0.55}, seconds=1.0),
                Finished(best_epoch=2, metrics={"val_dice": 0.55}, epochs_run=2)])
    assert [row["epoch"] for row in live.history] == [1, 2]
    assert live.history[1]["loss"] == 0.6
    assert live.status == "finished"


def test_progress_text_counts_batches_and_estimates_time_left():
    live = LiveRun("r")
    assert progress_text(live)[0] == 0.0
    live.apply([Started(epochs=4, batches_per_epoch=5, time=100.0),
                EpochEnd(epoch=1, metrics={}, seconds=10.0, time=110.0),
                BatchEnd(epoch=2, batch=5, num_batches=5, loss=0.5, images_per_sec=8.0,
                         time=120.0)])
    fraction, text = progress_text(live, now=120.0)
    assert fraction == pytest.approx(0.5)
    # The first epoch (compilation) is left out: 5 steps took 10 s, 10 remain: 20 s left.
    assert text == "Epoch 2/4 · batch 5/5 · ETA 0:20 · 8.0 images/s"
    live.apply([Stopped(epoch=2, batch=5)])
    assert live.status == "stopped"


def test_run_ids_from_the_url_are_checked():
    assert valid_run_id("20261123-101500-ab12cd") == "20261123-101500-ab12cd"
    for bad in ("../x", "/etc/passwd", "", None, "a/b", "x" * 200):
        assert valid_run_id(bad) is None


def test_curves_have_one_point_per_epoch_and_overlay_marks_prediction():
    rows = [{"epoch": e, "loss": 1.0 / e, "val_loss": float("nan"), "dice": 0.1 * e,
             "val_dice": None, "lr": 1e-3} for e in (1, 2)]
    figure = training_curves_figure(rows, total_epochs=4)
    assert all(list(trace.x) == [1, 2] for trace in figure.data)
    assert list(figure.data[1].y) == [None, None]  # NaN becomes a gap
    image = np.zeros((8, 8, 1), np.float32)
    truth = np.zeros((8, 8), np.uint8)
    truth[2:6, 2:6] = 1
    prediction = np.zeros((8, 8, 1), np.float32)
    prediction[0, 0] = 0.9
    labels = labels_from_probabilities(prediction[None], 1)[0]
    rgb = snapshot_overlay(image, truth, labels)
    assert tuple(rgb[0, 0]) != (0, 0, 0) and tuple(rgb[7, 7]) == (0, 0, 0)
    assert tuple(rgb[2, 2]) == (51, 153, 255)  # outline of the truth


# --------------------------------------------------------------------------- AppTest

@pytest.fixture()
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def _app(timeout: float = 60, *, build_model: bool = True):
    """The Train page with a tiny Build page model in the session, picked on Train (fast)."""
    from streamlit.testing.v1 import AppTest

    from unet_demo.ui.state import DATASET_KEY, UNET_CONFIG_KEY

    at = AppTest.from_file(PAGE, default_timeout=timeout)
    at.session_state[UNET_CONFIG_KEY] = TINY_MODEL
    at.session_state[DATASET_KEY] = "synthetic_lesions"
    if build_model:
        at.session_state["train.model_source"] = "Build page model"
    return at


def _tiny_settings(at, epochs: int = 2) -> None:
    at.number_input(key="train.max_train_images").set_value(8)
    at.number_input(key="train.epochs").set_value(epochs)
    at.number_input(key="train.batch_size").set_value(4)
    at.checkbox(key="train.augment").set_value(False)


def _curve_traces(at) -> list[dict]:
    charts = at.get("plotly_chart")
    assert charts, "no plotly chart on the page"
    return json.loads(charts[0].proto.spec)["data"]


def _page_text(at) -> str:
    parts = []
    for kind in ("markdown", "caption", "success", "warning", "error", "info", "subheader"):
        parts += [str(element.value) for element in at.get(kind)]
    return "\n".join(parts)


def test_page_shows_settings_and_disclaimer(runs_dir):
    at = _app(build_model=False).run()
    assert not at.exception
    assert "not for diagnosis" in _page_text(at)
    assert at.selectbox(key="train.dataset").value == "synthetic_lesions"
    assert at.radio(key="train.model_source").value == "Preset model"
    assert not at.button(key="train.start").disabled
    assert at.button(key="train.stop").disabled


def test_texts_say_what_training_does(runs_dir, tmp_path, monkeypatch):
    from unet_demo.ui.state import UNET_CONFIG_KEY
    from unet_demo.ui.train_ui import DETERMINISM_NOTE

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_keras_home"))
    at = _app()
    at.session_state[UNET_CONFIG_KEY] = UNetConfig(variant="pretrained", backbone="vgg16",
                                                   depth=4)
    at.run()
    assert not at.exception, at.exception
    warnings = [str(w.value) for w in at.warning]
    assert any("No local ImageNet weights for vgg16" in text
               and "starts from random weights" in text for text in warnings), warnings
    # Early stopping watches validation Dice (runner.BEST_MONITOR), not the loss.
    patience_help = at.number_input(key="train.early_stopping_patience").help
    assert "validation Dice" in patience_help and "validation loss" not in patience_help
    assert "validation Dice" in _page_text(at)
    # On the CPU with XLA op determinism is left off; the A/B note says so.
    assert "op-determinism mode is left off" in DETERMINISM_NOTE


@pytest.mark.slow
def test_tiny_job_runs_to_the_end_and_the_chart_has_one_point_per_epoch(runs_dir):
    at = _app().run()
    _tiny_settings(at, epochs=2)
    at.button(key="train.start").click().run()
    assert not at.exception, at.exception
    run_id = at.session_state["train.run_id"]
    assert at.query_params["run"] == [run_id] or at.query_params["run"] == run_id
    assert at.button(key="train.start").disabled  # no second job from a second click
    deadline = time.time() + 240
    while time.time() < deadline:
        time.sleep(2.0)
        at.run()
        assert not at.exception, at.exception
        if "Finished after" in _page_text(at):
            break
    else:
        pytest.fail(f"run did not finish in time; page says:\n{_page_text(at)}")
    traces = _curve_traces(at)
    assert [trace["name"] for trace in traces][:2] == ["train loss", "val loss"]
    for trace in traces:
        assert trace["x"] == [1, 2]
        assert all(value is not None for value in trace["y"])
    assert not at.button(key="train.start").disabled
    assert at.get("image"), "no validation snapshot strip"
    scrubber = at.select_slider(key=f"train.scrub.{run_id}")
    assert scrubber.value == 2 and list(scrubber.options) == ["1", "2"]
    from unet_demo.training.jobs import get_job_manager

    assert get_job_manager().wait(run_id, timeout=60)  # the worker exits after Finished
    # One wording on the page, in metrics.json and in the model card.
    run_dir = runs_dir / run_id
    metrics = json.loads((run_dir / "metrics.json").read_text())
    kept = metrics["kept_text"]
    assert kept.startswith(f"Kept: epoch {metrics['best_epoch']} (")
    assert metrics["kept_epoch"] == metrics["best_epoch"] == 2  # no early stopping: last
    assert f"- {kept}" in (run_dir / "model_card.md").read_text()
    assert any(kept in str(s.value) for s in at.success), _page_text(at)
    at.run()
    table = at.dataframe[0].value
    assert list(table["run"]) == [run_id] and list(table["status"]) == ["finished"]


def _someone_elses_run(monkeypatch, epochs: int):
    """A run started by another browser (another owner secret) on a 1-slot server."""
    from unet_demo.training.jobs import get_job_manager
    from unet_demo.training.presets import get_preset

    monkeypatch.setenv("UNET_DEMO_MAX_JOBS", "1")
    manager = get_job_manager()
    for earlier in manager.running_ids():  # a worker of another test may still be exiting
        manager.wait(earlier, timeout=60)
    spec = get_preset("synthetic_lesions", "classroom")
    spec = spec.replace(model=TINY_MODEL, data=spec.data.replace(max_train_images=8),
                        train=spec.train.replace(epochs=epochs, batch_size=4, augment=False))
    return manager, manager.start(spec, label="someone else's run",
                                  owner="another-browser-secret-0123456789")


def test_a_start_on_a_busy_server_is_queued_and_only_its_owner_can_cancel_it(
        runs_dir, monkeypatch):
    manager, other = _someone_elses_run(monkeypatch, epochs=200)
    try:
        at = _app().run()
        _tiny_settings(at)
        began = time.time()
        at.button(key="train.start").click().run()
        assert time.time() - began < 15
        assert not at.exception, at.exception
        run_id = at.session_state["train.run_id"]
        assert manager.is_queued(run_id)
        text = _page_text(at)
        assert f"Queued run {run_id}" in text and "number 1 in line" in text, text
        assert "Estimated start in about" in text
        assert at.button(key="train.stop").label == "Cancel"
        assert not at.button(key="train.stop").disabled
        assert at.button(key="train.start").disabled  # one run per person
        # A second browser opens the link: it watches, read-only, and cannot cancel.
        watcher = _app()
        watcher.query_params["run"] = run_id
        watcher.run()
        assert not watcher.exception, watcher.exception
        assert "someone else's run (read-only)" in _page_text(watcher)
        assert watcher.button(key="train.stop").disabled
        assert not watcher.button(key="train.start").disabled  # its own run is allowed
        # Even a forged click with the watcher's owner secret is refused by the engine.
        from unet_demo.training.jobs import NotOwnerError

        watcher_secret = watcher.session_state["owner.secret"]
        assert watcher_secret != at.session_state["owner.secret"]
        with pytest.raises(NotOwnerError):
            manager.cancel(run_id, owner=watcher_secret)
        assert manager.is_queued(run_id)
        # Nor can it stop the neighbour's running run.
        watcher.query_params["run"] = other
        watcher.session_state["train.run_id"] = other
        watcher.run()
        assert watcher.button(key="train.stop").disabled
        with pytest.raises(NotOwnerError):
            manager.stop(other, owner=watcher_secret)
        assert manager.is_running(other) and not (runs_dir / other / "STOP").exists()
        # The owner cancels.
        at.button(key="train.stop").click().run()
        assert not at.exception, at.exception
        assert not manager.is_queued(run_id)
        assert "Cancelled run" in _page_text(at)
        at.run()
        assert "Cancelled by its owner while it waited in the queue" in _page_text(at)
        assert not at.button(key="train.start").disabled
    finally:
        manager.stop(other, grace_s=0)  # no need to wait for a batch: kill it now
    assert not manager.is_running(other)


@pytest.mark.slow
def test_a_queued_run_starts_by_itself_and_its_curves_appear(runs_dir, monkeypatch):
    manager, other = _someone_elses_run(monkeypatch, epochs=1)
    try:
        at = _app().run()
        _tiny_settings(at, epochs=1)
        at.button(key="train.start").click().run()
        run_id = at.session_state["train.run_id"]
        assert manager.is_queued(run_id) or manager.is_running(run_id)
        deadline = time.time() + 300
        while time.time() < deadline:
            time.sleep(2.0)
            at.run()
            assert not at.exception, at.exception
            if "Finished after" in _page_text(at):
                break
        else:
            pytest.fail(f"queued run did not finish in time; page says:\n{_page_text(at)}")
        assert [trace["x"] for trace in _curve_traces(at)][0] == [1]
        assert manager.wait(run_id, timeout=60)
    finally:
        manager.kill(other)
    assert rundir_status(runs_dir, other) == "finished"


def rundir_status(runs_dir: Path, run_id: str) -> str:
    from unet_demo.training.rundir import load_run

    return load_run(runs_dir / run_id).status


def test_a_reload_reattaches_to_the_run_in_the_url(runs_dir):
    run_dir = runs_dir / "20261123-090000-feed01"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"data": {"dataset": "synthetic_lesions"}}))
    append_event(run_dir, Started(epochs=3, batches_per_epoch=2))
    for epoch in (1, 2):
        append_event(run_dir, EpochEnd(epoch=epoch, seconds=1.0, metrics={
            "loss": 0.5 / epoch, "val_loss": 0.6 / epoch, "dice": 0.3 * epoch,
            "val_dice": 0.25 * epoch, "lr": 1e-3}))
    append_event(run_dir, Stopped(epoch=3, batch=1))
    at = _app()
    at.query_params["run"] = run_dir.name
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["train.run_id"] == run_dir.name
    assert [trace["x"] for trace in _curve_traces(at)][0] == [1, 2]
    assert any("Stopped during epoch 3" in str(w.value) for w in at.warning)


def test_an_uploaded_zip_dataset_can_be_picked_and_forms_a_run(runs_dir):
    from tests.unit.test_upload_dataset import good_members, make_zip
    from unet_demo.data.upload_dataset import inspect_zip, save_uploaded_dataset
    from unet_demo.ui.train_ui import spec_from_state

    report = inspect_zip(make_zip(good_members(10)), name="mine.zip", image_size=64)
    dataset = "upload:" + save_uploaded_dataset(report)
    at = _app().run()
    assert f"Uploaded: mine.zip ({dataset})" in at.selectbox(key="train.dataset").options
    at.selectbox(key="train.dataset").set_value(dataset).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="train.loss").value == "bce_dice"  # binary masks
    from unet_demo.ui.state import UNET_CONFIG_KEY

    keys = [key for key in at.session_state if key.startswith("train.")] + [UNET_CONFIG_KEY]
    spec = spec_from_state({key: at.session_state[key] for key in keys})
    assert spec.data.dataset == dataset and spec.model == TINY_MODEL


# --------------------------------------------------------------------------- classroom-ready

HOME = str(Path(PAGE).parents[1] / "streamlit_app.py")
ISSUE_MODEL = UNetConfig(depth=3, base_filters=16, normalization="batch")


def _menu_app(timeout: float = 60):
    """The whole app (menu) with a BatchNorm base-16 model left by the Build page."""
    from streamlit.testing.v1 import AppTest

    from unet_demo.ui.state import DATASET_KEY, UNET_CONFIG_KEY

    at = AppTest.from_file(HOME, default_timeout=timeout)
    at.session_state[UNET_CONFIG_KEY] = ISSUE_MODEL
    at.session_state[DATASET_KEY] = "brain_skullstrip"
    return at.run()


def test_after_the_build_page_train_defaults_to_the_preset_model_and_warns(runs_dir):
    from unet_demo.training.presets import get_preset
    from unet_demo.ui.train_ui import spec_from_state

    at = _menu_app()
    at.switch_page("pages/3_Build.py").run()
    at.switch_page("pages/4_Train.py").run()
    assert not at.exception, at.exception
    assert at.radio(key="train.model_source").value == "Preset model"
    state = {key: at.session_state[key] for key in at.session_state if key.startswith("train.")}
    preset = get_preset("brain_skullstrip", "classroom")
    assert spec_from_state(state).model == preset.model  # base 8, GroupNorm
    assert not [w for w in at.warning if "BatchNorm" in str(w.value)]
    assert any("Estimated time: about" in str(c.value) for c in at.caption)
    # Picking the Build page's model on Train trains it, with a warning before the start.
    at.radio(key="train.model_source").set_value("Build page model").run()
    warnings = [str(w.value) for w in at.warning]
    assert any(text.startswith("BatchNorm with batches of 8") for text in warnings), warnings
    assert any("estimated to take about" in text for text in warnings), warnings
    # The preset's model for many epochs: only the time warning.
    at.radio(key="train.model_source").set_value("Preset model").run()
    at.number_input(key="train.epochs").set_value(60).run()
    warnings = [str(w.value) for w in at.warning]
    assert len(warnings) == 1 and "longer than 2:00" in warnings[0], warnings


def _fake_finished_run(root, run_id, dice, *, loss="bce_dice", status="finished", kept=None):
    from unet_demo.training import rundir
    from unet_demo.training.presets import get_preset

    spec = get_preset("synthetic_lesions", "classroom")
    spec = spec.replace(train=spec.train.replace(loss=loss))
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(spec.to_json())
    rows = [{"epoch": e, "loss": 0.5 / e, "val_loss": 0.6 / e, "dice": d + 0.1,
             "val_dice": d, "lr": 3e-3 / e, "seconds": 1.0} for e, d in enumerate(dice, 1)]
    rundir.write_history_csv(run_dir, rows)
    append_event(run_dir, Started(epochs=len(dice), batches_per_epoch=2))
    for row in rows:
        append_event(run_dir, EpochEnd(epoch=row["epoch"], seconds=1.0, metrics={
            k: v for k, v in row.items() if k != "epoch"}))
    if status == "finished":
        append_event(run_dir, Finished(best_epoch=kept or len(dice), metrics={},
                                       epochs_run=len(dice)))
    else:
        append_event(run_dir, Stopped(epoch=len(dice) + 1, batch=1))
    return run_dir


def test_finished_run_says_which_epochs_weights_are_kept(runs_dir):
    run_dir = _fake_finished_run(runs_dir, "20261123-090000-0000aa",
                                 [0.478, 0.495, 0.687, 0.591, 0.661, 0.6, 0.64, 0.615])
    at = _app()
    at.query_params["run"] = run_dir.name
    at.run()
    assert not at.exception, at.exception
    success = [str(s.value) for s in at.success]
    assert success == ["Finished after 8 epoch(s). Kept: epoch 8 (last epoch, validation Dice "
                       "0.615); best validation Dice 0.687 at epoch 3."], success
    best = next(m for m in at.metric if m.label.startswith("Best val Dice"))
    assert best.label == "Best val Dice (epoch 3)" and best.value == "0.687"


def test_the_run_stays_in_the_url_and_the_form_across_pages(runs_dir):
    run_dir = _fake_finished_run(runs_dir, "20261123-090000-0000bb", [0.5, 0.6])
    at = _menu_app()
    at.switch_page("pages/4_Train.py").run()
    assert "run" not in at.query_params
    at.number_input(key="train.epochs").set_value(3).run()
    at.number_input(key="train.batch_size").set_value(4).run()
    at.selectbox(key="train.loss").set_value("dice").run()
    at.select_slider(key="train.learning_rate").set_value(1e-3).run()
    at.number_input(key="train.seed").set_value(7).run()
    at.text_input(key="train.label").input("dice loss").run()
    show = next(b for b in at.button if b.label == "Show this run")
    show.click().run()
    assert at.query_params["run"] in ([run_dir.name], run_dir.name)
    at.run()  # an ordinary rerun keeps it
    assert at.query_params["run"] in ([run_dir.name], run_dir.name)
    # Round trip through another page. Streamlit clears the query string on a page switch
    # in the browser; AppTest keeps it, so clear it here as the browser does.
    at.switch_page("pages/1_Data.py").run()
    assert not at.exception, at.exception
    at.query_params.clear()
    at.switch_page("pages/4_Train.py").run()
    assert not at.exception, at.exception
    assert at.query_params["run"] in ([run_dir.name], run_dir.name)
    assert at.number_input(key="train.epochs").value == 3
    assert at.number_input(key="train.batch_size").value == 4
    assert at.selectbox(key="train.loss").value == "dice"
    assert at.select_slider(key="train.learning_rate").value == 1e-3
    assert at.number_input(key="train.seed").value == 7
    assert at.text_input(key="train.label").value == "dice loss"


def test_ab_compares_dice_on_one_axis_losses_apart_and_lists_differing_settings(runs_dir):
    _fake_finished_run(runs_dir, "20261123-080000-0000c1", [0.3, 0.4])  # old, finished
    _fake_finished_run(runs_dir, "20261123-090000-0000c2", [0.5, 0.7], loss="bce")
    _fake_finished_run(runs_dir, "20261123-100000-0000c3", [0.6, 0.8], loss="dice")
    _fake_finished_run(runs_dir, "20261123-110000-0000c4", [0.2], status="stopped")
    import os

    for age, name in enumerate(sorted(p.name for p in runs_dir.iterdir())):
        os.utime(runs_dir / name / "config.json", (1e9 + age * 60, 1e9 + age * 60))
    at = _app().run()
    assert not at.exception, at.exception
    picked = at.multiselect[0]
    assert sorted(picked.value) == ["20261123-090000-0000c2", "20261123-100000-0000c3"]
    charts = at.get("plotly_chart")
    figure = json.loads(charts[-1].proto.spec)
    dice = [t for t in figure["data"] if t["name"].endswith("val Dice")]
    losses = [t for t in figure["data"] if "loss" in t["name"]]
    assert len(dice) == 2 and {t.get("yaxis", "y") for t in dice} == {"y"}
    assert len(losses) == 4 and "y" not in {t.get("yaxis", "y") for t in losses}
    assert len({t["yaxis"] for t in losses}) == 2  # one axis per run's loss
    titles = [a["text"] for a in figure["layout"]["annotations"]]
    assert "A: loss (Dice), own axis" in titles and "B: loss (Binary cross-entropy), own axis" \
        in titles
    diff = at.dataframe[-1].value
    assert list(diff["setting"]) == ["train.loss"]


def test_every_train_control_says_why(runs_dir):
    _fake_finished_run(runs_dir, "20261123-090000-0000d1", [0.5, 0.6])
    _fake_finished_run(runs_dir, "20261123-090000-0000d2", [0.5, 0.7])
    at = _app(build_model=False).run()
    assert not at.exception, at.exception
    missing = []
    for kind in ("selectbox", "radio", "number_input", "select_slider", "checkbox",
                 "text_input", "multiselect", "button"):
        for widget in at.get(kind):
            if not (getattr(widget, "help", None) or "").strip():
                missing.append(f"{kind} {getattr(widget, 'label', '?')}")
    assert not missing, missing


def test_learning_rate_axis_has_readable_log_ticks():
    rows = [{"epoch": e, "loss": 1.0, "lr": lr} for e, lr in
            enumerate((3e-3, 2.6e-3, 1.5e-3, 5e-4, 1.2e-4), start=1)]
    axis = training_curves_figure(rows).layout.yaxis3
    assert axis.type == "log"
    assert list(axis.ticktext) == ["1e-4", "2e-4", "5e-4", "1e-3", "2e-3", "5e-3"]
    assert [float(t) for t in axis.ticktext] == pytest.approx(list(axis.tickvals))
    assert 10 ** axis.range[0] <= 1e-4 and 10 ** axis.range[1] >= 5e-3  # every tick shows
    # A narrow span (the first epochs of a cosine schedule) still gets three ticks.
    narrow = training_curves_figure([{"epoch": 1, "lr": 3e-3}, {"epoch": 2, "lr": 1.5e-3}])
    assert list(narrow.layout.yaxis3.ticktext) == ["1e-3", "2e-3", "5e-3"]


def test_a_link_to_a_run_removed_to_save_space_says_so(runs_dir, monkeypatch):
    from unet_demo.training import housekeeping

    old = runs_dir / "20261101-090000-0ld0ne"
    old.mkdir(parents=True)
    (old / "config.json").write_text(json.dumps({"data": {"dataset": "synthetic_lesions"}}))
    (old / "blob.bin").write_bytes(b"x" * 200_000)
    append_event(old, Started(epochs=1, batches_per_epoch=1, time=1.0))
    append_event(old, Stopped(epoch=1, batch=1, time=2.0))
    removed = housekeeping.enforce_budget(runs_dir, max_bytes=1000)
    assert [record.run_id for record in removed] == [old.name]
    monkeypatch.setenv("UNET_DEMO_RUNS_MAX_GB", "0.000001")
    at = _app()
    at.query_params["run"] = old.name
    at.run()
    assert not at.exception, at.exception
    assert any(f"Run {old.name}" in str(i.value) and "was removed" in str(i.value)
               for i in at.info), _page_text(at)
    assert "train.run_id" not in at.session_state


@pytest.mark.slow
def test_the_owner_resumes_a_stopped_run_from_its_last_epoch(runs_dir):
    from tests.unit.training_helpers import tiny_spec
    from unet_demo.training import rundir
    from unet_demo.training.jobs import get_job_manager, owner_key
    from unet_demo.training.runner import run_training

    run_dir = runs_dir / "20261202-080000-5t0pped"
    done = {"epochs": 0}

    def stop_in_epoch_two(event):
        if isinstance(event, EpochEnd):
            done["epochs"] = event.epoch

    run_training(tiny_spec(epochs=3), run_dir, on_event=stop_in_epoch_two,
                 should_stop=lambda: done["epochs"] >= 1)
    assert rundir.load_run(run_dir).status == "stopped"
    secret = "resuming-browser-secret-0123456789"
    rundir.atomic_write_json(run_dir / rundir.JOB_FILE, {"owner": owner_key(secret)})
    watcher = _app()
    watcher.query_params["run"] = run_dir.name
    watcher.run()
    assert not any(b.key == "train.resume" for b in watcher.button)  # not the owner's page
    at = _app()
    at.session_state["owner.secret"] = secret
    at.query_params["run"] = run_dir.name
    at.run()
    assert not at.exception, at.exception
    at.button(key="train.resume").click().run()
    assert not at.exception, at.exception
    assert "Resuming run" in _page_text(at), _page_text(at)
    assert get_job_manager().wait(run_dir.name, timeout=240)
    assert rundir.load_run(run_dir).status == "finished"
    assert [row["epoch"] for row in rundir.load_history(run_dir)] == [1, 2, 3]
    started = [e for e in read_events(run_dir)[0] if isinstance(e, Started)]
    assert [e.initial_epoch for e in started] == [0, 1]  # continued, not retrained
