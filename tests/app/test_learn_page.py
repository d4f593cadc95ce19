"""AppTest of the Learn page: sections, glossary search, quiz feedback, score and reset."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.errors import AppTestError

from unet_demo import DISCLAIMER
from unet_demo.lessons import learn
from unet_demo.ui.learn_ui import quiz_radio_key, quiz_try_key

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = REPO_ROOT / "pages" / "7_Learn.py"
HOME = REPO_ROOT / "streamlit_app.py"
TOTAL = len(learn.QUIZ)
FIRST = learn.QUIZ[0]


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def score_text(at: AppTest) -> str:
    return next(m.value for m in at.metric if m.label == "Score")


def test_page_runs_and_shows_every_part(app):
    assert app.title[0].value == "Learn U-Net"
    assert any(DISCLAIMER in c.value for c in app.caption)
    assert [t.label.split()[-1] for t in app.tabs] == ["Concepts", "Glossary", "Quiz"]
    titles = [e.label for e in app.expander]
    for number, section in enumerate(learn.SECTIONS, start=1):
        assert f"{number}. {section.title}" in titles
    # run without the home page, the try-it links fall back to captions naming the page
    try_it = [c.value for c in app.caption if c.value.startswith("Try it:")]
    assert len(try_it) == len(learn.SECTIONS) + len(learn.INSIDE_LINKS) + len(learn.LESSON_LINKS)
    assert sum("(Inside page)" in text for text in try_it) == len(learn.INSIDE_LINKS)
    assert sum("(Lessons page)" in text for text in try_it) == len(learn.LESSON_LINKS)
    assert len(app.radio) == TOTAL
    assert all(r.value is None for r in app.radio), "no answer may be preselected"
    assert score_text(app) == f"0 / {TOTAL}"
    assert not app.success and not app.warning
    chapter_headers = [h.value for h in app.subheader]
    assert chapter_headers == [learn.CHAPTERS[key] for key in learn.CHAPTERS]


def test_radio_for_question_one_exists(app):
    radio = app.radio(key=quiz_radio_key(FIRST.key))
    assert radio.options == list(FIRST.options)
    assert radio.value is None
    assert any(FIRST.question in m.value for m in app.markdown)


def test_correct_answer_shows_success_and_raises_score(app):
    app.radio(key=quiz_radio_key(FIRST.key)).set_value(FIRST.correct).run()
    assert not app.exception
    assert len(app.success) == 1
    assert FIRST.explanation in app.success[0].value
    assert not app.warning
    assert score_text(app) == f"1 / {TOTAL}"
    assert any(f"Quiz score: 1 / {TOTAL}" in m.value for m in app.sidebar.markdown)

    second = learn.QUIZ[1]
    app.radio(key=quiz_radio_key(second.key)).set_value(second.correct).run()
    assert len(app.success) == 2
    assert score_text(app) == f"2 / {TOTAL}"


def test_wrong_answer_shows_the_explanation_and_keeps_score(app):
    wrong = (FIRST.correct + 1) % len(FIRST.options)
    app.radio(key=quiz_radio_key(FIRST.key)).set_value(wrong).run()
    assert not app.exception
    assert not app.success
    assert len(app.warning) == 1
    feedback = app.warning[0].value
    assert FIRST.explanation in feedback
    assert FIRST.correct_option in feedback
    assert score_text(app) == f"0 / {TOTAL}"


def test_reset_clears_answers_and_score(app):
    app.radio(key=quiz_radio_key(FIRST.key)).set_value(FIRST.correct).run()
    assert score_text(app) == f"1 / {TOTAL}"
    app.button(key="learn.quiz_reset").click().run()
    assert not app.exception
    assert score_text(app) == f"0 / {TOTAL}"
    assert all(r.value is None for r in app.radio)
    assert not app.success


def test_shuffle_uses_the_seeded_order(app):
    app.toggle(key="learn.quiz_shuffle").set_value(True).run()
    assert not app.exception
    expected = learn.quiz_questions(seed=0)
    assert [r.options for r in app.radio] == [list(q.options) for q in expected]
    first = expected[0]
    app.radio(key=quiz_radio_key(first.key, 0, shuffled=True)).set_value(first.correct).run()
    assert len(app.success) == 1
    assert score_text(app) == f"1 / {TOTAL}"


def test_glossary_search_filters_entries(app):
    app.text_input(key="learn.glossary_query").input("jaccard").run()
    assert not app.exception
    assert any(c.value == f"1 of {len(learn.GLOSSARY)} terms" for c in app.caption)
    assert any("**IoU (Jaccard index)**" in m.value for m in app.markdown)
    app.text_input(key="learn.glossary_query").input("zzz-nothing").run()
    assert any("No term or definition" in i.value for i in app.info)


@pytest.mark.skipif(not HOME.is_file(), reason="the home page (streamlit_app.py) is not written yet")
def test_try_it_links_resolve_inside_the_app():
    at = AppTest.from_file(str(HOME), default_timeout=60)
    at.run()
    at.switch_page("pages/7_Learn.py").run()
    assert not at.exception, at.exception
    links = at.get("page_link")
    assert len(links) == len(learn.SECTIONS) + len(learn.INSIDE_LINKS) + len(learn.LESSON_LINKS)
    assert not [c for c in at.caption if c.value.startswith("Try it:")]


def _feedback(at: AppTest) -> list[str]:
    return [e.value for e in (*at.success, *at.warning)]


def test_submitted_answer_is_locked_and_a_change_does_not_score(app):
    wrong = (FIRST.correct + 1) % len(FIRST.options)
    app.radio(key=quiz_radio_key(FIRST.key)).set_value(wrong).run()
    radio = app.radio(key=quiz_radio_key(FIRST.key, locked=True))
    assert radio.disabled and radio.value == wrong
    before = _feedback(app)
    assert score_text(app) == f"0 / {TOTAL}"
    # a disabled radio cannot be clicked in the browser, and AppTest refuses it too
    with pytest.raises(AppTestError, match="disabled"):
        app.radio(key=quiz_radio_key(FIRST.key, locked=True)).set_value(FIRST.correct)
    app.run()
    assert not app.exception
    assert score_text(app) == f"0 / {TOTAL}"
    assert _feedback(app) == before and not app.success
    assert app.radio(key=quiz_radio_key(FIRST.key, locked=True)).disabled


def test_try_again_clears_the_answer_and_the_score_keeps_the_first_attempt(app):
    wrong = (FIRST.correct + 1) % len(FIRST.options)
    app.radio(key=quiz_radio_key(FIRST.key)).set_value(wrong).run()
    assert app.radio(key=quiz_radio_key(FIRST.key, locked=True)).value == wrong
    app.button(key=quiz_try_key(FIRST.key)).click().run()
    assert not app.exception
    retry = app.radio(key=quiz_radio_key(FIRST.key, attempt=1))
    assert retry.value is None and not retry.disabled
    assert not app.warning
    assert any("first answer" in c.value for c in app.caption)
    retry.set_value(FIRST.correct).run()
    assert len(app.success) == 1
    assert app.radio(key=quiz_radio_key(FIRST.key, attempt=1, locked=True)).disabled
    assert score_text(app) == f"0 / {TOTAL}"  # first attempts count
    assert any(f"Scored: your first answer, **{FIRST.options[wrong]}**" in c.value
               for c in app.caption)
    assert any("first answers" in c.value for c in app.caption)


def test_correct_answer_offers_no_try_again(app):
    app.radio(key=quiz_radio_key(FIRST.key)).set_value(FIRST.correct).run()
    assert not [b for b in app.button if b.key == quiz_try_key(FIRST.key)]


@pytest.mark.skipif(not HOME.is_file(), reason="the home page (streamlit_app.py) is not written yet")
def test_answers_and_feedback_survive_a_page_round_trip():
    at = AppTest.from_file(str(HOME), default_timeout=60)
    at.run()
    at.switch_page("pages/7_Learn.py").run()
    second = learn.QUIZ[1]
    wrong = (second.correct + 1) % len(second.options)
    at.radio(key=quiz_radio_key(FIRST.key)).set_value(FIRST.correct).run()
    at.radio(key=quiz_radio_key(second.key)).set_value(wrong).run()
    assert score_text(at) == f"1 / {TOTAL}"
    at.switch_page("pages/2_Augment.py").run()
    assert not at.exception, at.exception
    at.switch_page("pages/7_Learn.py").run()
    assert not at.exception, at.exception
    assert at.radio(key=quiz_radio_key(FIRST.key, locked=True)).value == FIRST.correct
    assert at.radio(key=quiz_radio_key(FIRST.key, locked=True)).disabled
    assert at.radio(key=quiz_radio_key(second.key, locked=True)).value == wrong
    assert len(at.success) == 1 and len(at.warning) == 1
    assert second.correct_option in at.warning[0].value
    assert score_text(at) == f"1 / {TOTAL}"
