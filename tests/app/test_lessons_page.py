"""AppTest of the Lessons page: replayed curves and snapshots, the measured answer, Run it live,
Open in Train/Build links and the class plan. Viewing never trains (nor imports TensorFlow)."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

from unet_demo.lessons.catalogue import get_experiment, list_experiments
from unet_demo.lessons.class_plan import CLASS_PLAN
from unet_demo.lessons.recordings import load_experiment
from unet_demo.lessons.replay import answer_sentence, format_measure
from unet_demo.training.links import decode_link
from unet_demo.training.spec import RunSpec

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "9_Lessons.py")
RECORDED = [e for e in list_experiments() if load_experiment(e).runs]


def _app():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(PAGE, default_timeout=60)


def _open(at, key: str):
    at.selectbox(key="lessons.experiment").set_value(key).run()
    assert not at.exception, at.exception
    return at


def _images(at) -> list:
    return at.get("image")


def test_page_lists_every_experiment_and_renders_each_from_its_recording():
    tensorflow_before = "tensorflow" in sys.modules
    at = _app().run()
    assert not at.exception, at.exception
    options = at.selectbox(key="lessons.experiment").options
    assert len(options) == len(list_experiments()) >= 12
    assert "Education and research only" in " ".join(c.value for c in at.caption)
    for experiment in RECORDED:
        began = time.perf_counter()
        _open(at, experiment.key)
        seconds = time.perf_counter() - began
        assert seconds < 10, f"{experiment.key} took {seconds:.1f} s"  # ~0.3 s when idle
        recording = load_experiment(experiment)
        charts = at.get("plotly_chart")
        spec = json.loads(charts[0].proto.spec)
        names = [trace["name"] for trace in spec["data"]]
        for key in recording.runs:
            label = experiment.run(key).label
            assert f"{label} val" in names and f"{label} train" in names
        assert len(spec["frames"]) == max(len(r.history) for r in recording.runs.values())
        assert len(_images(at)) == len(recording.runs)
        measured = at.success[0].value
        assert answer_sentence(recording) in measured
        for key, run in recording.runs.items():
            name = experiment.measures[0]
            assert f"{experiment.run(key).label} {format_measure(name, run.measure(name))}" \
                in measured
    if RECORDED:  # the address names the open lesson, so it can be shared
        assert RECORDED[-1].key in at.query_params["lesson"]
    if not tensorflow_before:
        assert "tensorflow" not in sys.modules, "viewing a lesson imported TensorFlow"


def test_epoch_scrubber_shows_every_run_at_that_epoch():
    if not RECORDED:
        pytest.skip("nothing recorded yet")
    experiment = RECORDED[0]
    at = _open(_app().run(), experiment.key)
    slider = at.select_slider(key=f"lessons.epoch.{experiment.key}")
    slider.set_value(1).run()
    captions = [image.proto.imgs[0].caption for image in _images(at)]
    assert len(captions) == len(load_experiment(experiment).runs)
    assert all("(epoch 1," in caption for caption in captions), captions
    assert any("epoch 1:" in c.value for c in at.caption)
    at.toggle(key="lessons.probability").set_value(True).run()
    assert not at.exception, at.exception
    assert "probability" in " ".join(c.value for c in at.caption)


class _NoSlots:
    """A backend with no free slot: submitted runs stay queued (nothing trains in the test)."""

    name = "local"

    def capacity(self) -> int:
        return 0

    def launch(self, run_dir):  # pragma: no cover - never called with capacity 0
        raise AssertionError("a lesson test must not start training")

    def kill(self, run_dir, info):  # pragma: no cover
        pass


@pytest.fixture()
def queue(tmp_path, monkeypatch):
    from unet_demo.training import jobs

    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    manager = jobs.JobManager(root=tmp_path / "runs", launcher=_NoSlots())
    monkeypatch.setattr(jobs, "_MANAGER", manager)
    yield manager
    for view in manager.queue_view():
        manager.cancel(view.run_id, token=None, owner=None)


def test_run_it_live_queues_the_recorded_spec_and_opens_train(queue):
    experiment = get_experiment("skip_connections")
    at = _open(_app().run(), experiment.key)
    at.radio(key="lessons.run.skip_connections").set_value("none").run()
    at.button(key="lessons.live").click().run()
    assert not at.exception, at.exception
    views = queue.queue_view()
    assert len(views) == 1 and views[0].state == "queued"
    run_id = views[0].run_id
    stored = RunSpec.from_json((queue.run_dir(run_id) / "config.json").read_text())
    assert stored == experiment.run("none").spec
    assert views[0].preset == "classroom" and "skip_connections" in views[0].label
    assert at.session_state["lessons.live_run"] == run_id


def test_open_in_train_and_build_carry_the_run_settings():
    experiment = get_experiment("skip_connections")
    at = _open(_app().run(), experiment.key)
    at.radio(key="lessons.run.skip_connections").set_value("level0").run()
    text = " ".join(c.value for c in at.caption)
    train = re.search(r"Open in Train \(Train page\?x=([A-Za-z0-9_.-]+)\)", text)
    build = re.search(r"Open in Build \(Build page\?x=([A-Za-z0-9_.-]+)\)", text)
    assert train and build, text
    spec = experiment.run("level0").spec
    link = decode_link(train.group(1), "train")
    assert link.spec == spec and link.built_model and link.preset == "classroom"
    assert decode_link(build.group(1), "build").model == spec.model
    assert "has no image-size box" in text


def test_class_plan_walks_from_first_to_last_step():
    at = _app().run()
    assert at.button(key="lessons.prev").disabled
    seen = []
    for number in range(1, len(CLASS_PLAN) + 1):
        text = " ".join(m.value for m in at.markdown)
        step = CLASS_PLAN[number - 1]
        assert f"Step {number} of {len(CLASS_PLAN)}: {step.title}" in text
        assert step.question in text
        seen.append(step.title)
        if number < len(CLASS_PLAN):
            at.button(key="lessons.next").click().run()
    assert at.button(key="lessons.next").disabled
    assert seen == [step.title for step in CLASS_PLAN]
    links = [c.value for c in at.caption if c.value.startswith("Link: Open step")]
    assert links and "Learn page" in links[0]
