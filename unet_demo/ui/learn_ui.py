"""Learn page: concept sections with try-it links, a searchable glossary and a scored quiz.

All content and scoring live in `unet_demo.lessons.learn`; this module only draws widgets.

The quiz keeps each submitted answer (the option's text, so it survives a change of order) in
session state under non-widget keys (`QUIZ_ANSWERS_KEY`, `QUIZ_FIRST_KEY`), so answers and
feedback are still there after a visit to another page. A submitted answer is locked: its radio
is disabled and shows the feedback. "Try again" clears that answer and shows a fresh radio (a new
widget key); **the score counts first attempts only**, so a retry teaches but does not raise the
score (the page says so). "Reset quiz" clears every answer and moves to a new round (new widget
keys; a shuffled quiz gets a new order).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from unet_demo.lessons import learn

STATE_PREFIX = "learn."
QUIZ_ROUND_KEY = "learn.quiz_round"
QUIZ_SHUFFLE_KEY = "learn.quiz_shuffle"
QUIZ_ANSWERS_KEY = "learn.quiz_answers"
"""question key -> text of the current (locked) answer; a retry removes the entry."""
QUIZ_FIRST_KEY = "learn.quiz_first_answers"
"""question key -> text of the first answer: what the score counts."""
QUIZ_ATTEMPTS_KEY = "learn.quiz_attempts"
"""question key -> how many times "Try again" was pressed (part of the radio's key)."""
GLOSSARY_QUERY_KEY = "learn.glossary_query"


def quiz_radio_key(question_key: str, quiz_round: int = 0, shuffled: bool = False,
                   attempt: int = 0, locked: bool = False) -> str:
    """Session-state key of the radio that answers one question.

    Args:
        question_key: `QuizQuestion.key`.
        quiz_round: how many times the quiz was reset (0 at first).
        shuffled: whether the shuffled order is shown (option positions differ then).
        attempt: how many times "Try again" was pressed for this question.
        locked: the disabled radio that shows a submitted answer (its own key, so it is
            created with that answer selected, also after a visit to another page).

    Example:
        >>> quiz_radio_key("origin")
        'learn.quiz.0.fixed.origin'
        >>> quiz_radio_key("origin", attempt=1)
        'learn.quiz.0.fixed.origin.try1'
        >>> quiz_radio_key("origin", locked=True)
        'learn.quiz.0.fixed.origin.locked'
    """
    order = "shuffled" if shuffled else "fixed"
    suffix = (f".try{attempt}" if attempt else "") + (".locked" if locked else "")
    return f"{STATE_PREFIX}quiz.{quiz_round}.{order}.{question_key}{suffix}"


def quiz_try_key(question_key: str, quiz_round: int = 0) -> str:
    """Key of a question's "Try again" button.

    Args:
        question_key: `QuizQuestion.key`.
        quiz_round: how many times the quiz was reset.

    Example:
        >>> quiz_try_key("origin")
        'learn.quiz_try.0.origin'
    """
    return f"{STATE_PREFIX}quiz_try.{quiz_round}.{question_key}"


def learn_page() -> None:
    """Draw the whole Learn page below the title: three tabs.

    Example:
        >>> learn_page()  # doctest: +SKIP
    """
    st.markdown(
        "U-Net in short chapters, each with a link to the page where you can try it, a "
        "glossary, and a quiz with feedback on every answer."
    )
    concepts_tab, glossary_tab, quiz_tab = st.tabs([":material/menu_book: Concepts", ":material/sort_by_alpha: Glossary",
                                                 ":material/quiz: Quiz"])
    with concepts_tab:
        concepts_ui()
    with glossary_tab:
        glossary_ui()
    with quiz_tab:
        quiz_ui()


def try_it_link(page: str, label: str, query: dict[str, str] | None = None) -> None:
    """Link to the page where a concept can be tried.

    Falls back to a caption when the page is not registered, which happens when this page
    runs on its own (for instance in an AppTest of this file, without the app's home page).

    Args:
        page: page file relative to the repository root, e.g. "pages/3_Build.py".
        label: link text.
        query: optional query parameters of the link, e.g. ``{"lesson": "depth"}``.

    Example:
        >>> try_it_link("pages/3_Build.py", "Build a model")  # doctest: +SKIP
    """
    try:
        st.page_link(page, label=label, icon=":material/science:", query_params=query)
    except StreamlitPageNotFoundError:
        name = {learn.INSIDE_PAGE: "Inside", learn.LESSONS_PAGE: "Lessons"}.get(
            page, learn.TRY_IT_PAGES.get(page, page))
        st.caption(f"Try it: {label} ({name} page)")


def concepts_ui() -> None:
    """One expander per concept, each ending with its try-it link.

    Example:
        >>> concepts_ui()  # doctest: +SKIP
    """
    st.caption("Open a chapter; the link at its end takes you to the page where you can try it.")
    for number, section in enumerate(learn.SECTIONS, start=1):
        with st.expander(f"{number}. {section.title}"):
            st.markdown(section.body)
            sources = "; ".join(learn.CHAPTERS[key] for key in section.chapters)
            st.caption(f"Background reading: {sources}")
            try_it_link(section.try_it, section.try_it_label)
            if section.key in learn.INSIDE_LINKS:
                try_it_link(learn.INSIDE_PAGE, learn.INSIDE_LINKS[section.key])
            if section.key in learn.LESSON_LINKS:
                lesson, label = learn.LESSON_LINKS[section.key]
                try_it_link(learn.LESSONS_PAGE, label, {"lesson": lesson})


def glossary_ui() -> None:
    """A search box and the matching glossary entries.

    Example:
        >>> glossary_ui()  # doctest: +SKIP
    """
    query = st.text_input(
        "Search the glossary",
        key=GLOSSARY_QUERY_KEY,
        placeholder="e.g. dice, pooling, leakage",
        help="Matches terms and definitions, ignoring case.",
    )
    entries = learn.search_glossary(query)
    st.caption(f"{len(entries)} of {len(learn.GLOSSARY)} terms")
    if not entries:
        st.info(f"No term or definition contains {query.strip()!r}. Try a shorter word.")
        return
    st.markdown("\n".join(f"- **{e.term}**: {e.definition}" for e in entries))


def _store(key: str) -> dict:
    value = st.session_state.get(key)
    if not isinstance(value, dict):
        value = st.session_state[key] = {}
    return value


def _reset_quiz() -> None:
    st.session_state[QUIZ_ROUND_KEY] = st.session_state.get(QUIZ_ROUND_KEY, 0) + 1
    for key in (QUIZ_ANSWERS_KEY, QUIZ_FIRST_KEY, QUIZ_ATTEMPTS_KEY):
        st.session_state[key] = {}


def _submit(question_key: str, widget_key: str, options: tuple[str, ...]) -> None:
    """Lock the radio's choice as the answer; the first answer is also kept for the score."""
    answers = _store(QUIZ_ANSWERS_KEY)
    chosen = st.session_state.get(widget_key)
    if question_key in answers or chosen is None:
        return  # already locked: a change is ignored until "Try again"
    answers[question_key] = options[chosen]
    _store(QUIZ_FIRST_KEY).setdefault(question_key, options[chosen])


def _try_again(question_key: str) -> None:
    _store(QUIZ_ANSWERS_KEY).pop(question_key, None)
    attempts = _store(QUIZ_ATTEMPTS_KEY)
    attempts[question_key] = attempts.get(question_key, 0) + 1


def _index(question: learn.QuizQuestion, text: str | None) -> int | None:
    return question.options.index(text) if text in question.options else None


def quiz_ui() -> None:
    """The quiz: one radio per question, locked after answering, feedback, score, reset.

    Example:
        >>> quiz_ui()  # doctest: +SKIP
    """
    quiz_round = st.session_state.setdefault(QUIZ_ROUND_KEY, 0)
    shuffled = st.toggle(
        "Shuffle questions and options",
        key=QUIZ_SHUFFLE_KEY, persist_state="session",
        help="A new order on every reset, so the answers cannot be learned by position.",
    )
    questions = learn.quiz_questions(seed=quiz_round if shuffled else None)
    locked, first = _store(QUIZ_ANSWERS_KEY), _store(QUIZ_FIRST_KEY)
    attempts = _store(QUIZ_ATTEMPTS_KEY)
    score_area = st.container(border=True)

    previous_chapter = None
    for number, question in enumerate(questions, start=1):
        if not shuffled and question.chapter != previous_chapter:
            st.subheader(learn.CHAPTERS[question.chapter], divider="gray")
            previous_chapter = question.chapter
        st.markdown(f"**{number}. {question.question}**")
        answer = _index(question, locked.get(question.key))
        widget_key = quiz_radio_key(question.key, quiz_round, shuffled,
                                    attempts.get(question.key, 0), locked=answer is not None)
        st.radio(
            f"Question {number}",
            options=list(range(len(question.options))),
            format_func=question.options.__getitem__,
            index=answer,
            key=widget_key,
            disabled=answer is not None,
            on_change=_submit, args=(question.key, widget_key, question.options),
            label_visibility="collapsed",
        )
        where = f"{learn.CHAPTERS[question.chapter]} · " if shuffled else ""
        st.caption(f"{where}Topic: {question.topic}")
        if answer is None:
            if question.key in first:
                st.caption(f"Second try: your first answer, **{first[question.key]}**, is the "
                           "one scored.")
            continue
        if learn.is_correct(question, answer):
            st.success(f"Correct. {question.explanation}", icon=":material/check_circle:")
        else:
            st.warning(
                f"Not quite: the answer is **{question.correct_option}**. "
                f"{question.explanation}",
                icon=":material/lightbulb:",
            )
            st.button("Try again", key=quiz_try_key(question.key, quiz_round),
                      icon=":material/replay:", on_click=_try_again, args=(question.key,),
                      help="Answer this question again. The score keeps your first answer.")
        if first.get(question.key) not in (None, locked.get(question.key)):
            st.caption(f"Scored: your first answer, **{first[question.key]}**.")

    # the score counts first attempts: a retry teaches but does not change the score
    answers = {q.key: _index(q, first.get(q.key)) for q in questions}
    correct, total = learn.score(answers, questions)
    answered = sum(answer is not None for answer in answers.values())
    # the sidebar keeps the running score in view while scrolling through the questions
    st.sidebar.markdown(f"**Quiz score: {correct} / {total}**  \n{answered} answered")
    with score_area:
        left, right = st.columns([3, 1])
        left.metric("Score", f"{correct} / {total}",
                    help="Correct first answers out of all questions; unanswered count as not "
                         "correct. \"Try again\" lets you answer once more for the feedback, "
                         "but the score keeps your first answer.")
        left.caption("The score counts first answers; a retry does not change it.")
        left.progress(answered / total, text=f"{answered} of {total} answered")
        right.button("Reset quiz", on_click=_reset_quiz, key=f"{STATE_PREFIX}quiz_reset",
                     help="Clear every answer and start again.")
        if answered:
            with st.expander("Score by chapter"):
                st.dataframe(pd.DataFrame(learn.chapter_scores(answers, questions)),
                             hide_index=True, width="stretch")
