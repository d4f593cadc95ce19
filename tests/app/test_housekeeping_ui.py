"""Runs folder budget on a page: the removed-run notice, the pin checkbox and the size caption."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from unet_demo.training import events as ev
from unet_demo.training import housekeeping, rundir


def _script(root: str, run_id: str) -> None:
    import streamlit as st

    from unet_demo.ui.housekeeping_ui import disk_caption, pin_toggle, removed_notice

    st.session_state["removed"] = removed_notice(run_id, root=root)
    st.session_state["pinned"] = pin_toggle(run_id, root=root)
    disk_caption(root=root)


def _make_run(root: Path, run_id: str, label: str) -> Path:
    path = root / run_id
    rundir.atomic_write_json(path / rundir.CONFIG_FILE, {"data": {"dataset": "nuclei"}})
    rundir.atomic_write_text(path / rundir.LABEL_FILE, label)
    (path / rundir.MODEL_FILE).write_bytes(b"x" * 50_000)
    ev.append_event(path, ev.Finished(best_epoch=1, metrics={}, time=1_000.0))
    return path


def _run(root: Path, run_id: str) -> AppTest:
    at = AppTest.from_function(_script, args=(str(root), run_id), default_timeout=30).run()
    assert not at.exception, at.exception
    return at


def test_removed_notice_says_when_and_why_a_run_was_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("UNET_DEMO_RUNS_MAX_GB", "2")
    _make_run(tmp_path, "20261202-010000-abc123", "my first try")
    removed = housekeeping.enforce_budget(tmp_path, 20 * 1024)
    assert [r.run_id for r in removed] == ["20261202-010000-abc123"]

    at = _run(tmp_path, "20261202-010000-abc123")
    assert at.session_state["removed"] is True
    assert at.session_state["pinned"] is False
    assert len(at.info) == 1
    text = at.info[0].value
    assert text.startswith("Run 20261202-010000-abc123 (my first try) was removed on ")
    assert "to keep the runs folder under 20 KB" in text
    assert not at.checkbox  # no pin box for a run that is gone
    assert at.caption[0].value.startswith("Runs folder: ")
    assert "of its 2 GB budget" in at.caption[0].value


def test_no_notice_for_a_present_or_unknown_run_and_the_pin_box_pins(tmp_path, monkeypatch):
    monkeypatch.delenv("UNET_DEMO_RUNS_MAX_GB", raising=False)
    run = _make_run(tmp_path, "here", "kept run")
    at = _run(tmp_path, "here")
    assert at.session_state["removed"] is False and not at.info
    assert "no size limit" in at.caption[0].value
    box = at.checkbox[0]
    assert box.label == "Keep this run (never removed to save space)" and box.value is False
    box.check().run()
    assert housekeeping.is_pinned(run) and at.session_state["pinned"] is True
    at.checkbox[0].uncheck().run()
    assert not housekeeping.is_pinned(run) and at.session_state["pinned"] is False
    housekeeping.set_pinned(run, True)  # pinned elsewhere (CLI): the box follows
    at.run()
    assert at.checkbox[0].value is True
    assert _run(tmp_path, "never-existed").session_state["removed"] is False
