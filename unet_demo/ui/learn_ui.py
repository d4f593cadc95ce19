"""Learn page: concept sections with try-it links, a searchable glossary and a scored quiz.

All content and scoring live in `unet_demo.lessons.learn`; this module only draws widgets. The quiz
keeps its answers in the radios' own session state. "Reset quiz" moves to a new round, whose
widget keys are new, so every radio starts empty again (and a shuffled quiz gets a new order).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from unet_demo.lessons import learn

STATE_PREFIX = "learn."
QUIZ_ROUND_KEY = "learn.quiz_round"
QUIZ_SHUFFLE_KEY = "learn.quiz_shuffle"
GLOSSARY_QUERY_KEY = "learn.glossary_query"


def quiz_radio_key(question_key: str, quiz_round: int = 0, shuffled: bool = False) -> str:
    """Session-state key of the radio that answers one question.

    Args:
        question_key: `QuizQuestion.key`.
        quiz_round: how many times the quiz was reset (0 at first).
        shuffled: whether the shuffled order is shown (option positions differ then).

    Example:
        >>> quiz_radio_key("origin")
        'learn.quiz.0.fixed.origin'
    """
    order = "shuffled" if shuffled else "fixed"
    return f"{STATE_PREFIX}quiz.{quiz_round}.{order}.{question_key}"


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


def try_it_link(page: str, label: str) -> None:
    """Link to the page where a concept can be tried.

    Falls back to a caption when the page is not registered, which happens when this page
    runs on its own (for instance in an AppTest of this file, without the app's home page).

    Args:
        page: page file relative to the repository root, e.g. "pages/3_Build.py".
        label: link text.

    Example:
        >>> try_it_link("pages/3_Build.py", "Build a model")  # doctest: +SKIP
    """
    try:
        st.page_link(page, label=label, icon=":material/science:")
    except StreamlitPageNotFoundError:
        st.caption(f"Try it: {label} ({learn.TRY_IT_PAGES.get(page, page)} page)")


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


def _reset_quiz() -> None:
    st.session_state[QUIZ_ROUND_KEY] = st.session_state.get(QUIZ_ROUND_KEY, 0) + 1


def quiz_ui() -> None:
    """The quiz: one radio per question, feedback after each answer, running score, reset.

    Example:
        >>> quiz_ui()  # doctest: +SKIP
    """
    quiz_round = st.session_state.setdefault(QUIZ_ROUND_KEY, 0)
    shuffled = st.toggle(
        "Shuffle questions and options",
        key=QUIZ_SHUFFLE_KEY,
        help="A new order on every reset, so the answers cannot be learned by position.",
    )
    questions = learn.quiz_questions(seed=quiz_round if shuffled else None)
    score_area = st.container(border=True)

    answers: dict[str, int | None] = {}
    previous_chapter = None
    for number, question in enumerate(questions, start=1):
        if not shuffled and question.chapter != previous_chapter:
            st.subheader(learn.CHAPTERS[question.chapter], divider="gray")
            previous_chapter = question.chapter
        st.markdown(f"**{number}. {question.question}**")
        answer = st.radio(
            f"Question {number}",
            options=list(range(len(question.options))),
            format_func=question.options.__getitem__,
            index=None,
            key=quiz_radio_key(question.key, quiz_round, shuffled),
            label_visibility="collapsed",
        )
        answers[question.key] = answer
        where = f"{learn.CHAPTERS[question.chapter]} · " if shuffled else ""
        st.caption(f"{where}Topic: {question.topic}")
        if answer is None:
            continue
        if learn.is_correct(question, answer):
            st.success(f"Correct. {question.explanation}", icon=":material/check_circle:")
        else:
            st.warning(
                f"Not quite: the answer is **{question.correct_option}**. "
                f"{question.explanation}",
                icon=":material/lightbulb:",
            )

    correct, total = learn.score(answers, questions)
    answered = sum(answer is not None for answer in answers.values())
    # the sidebar keeps the running score in view while scrolling through the questions
    st.sidebar.markdown(f"**Quiz score: {correct} / {total}**  \n{answered} answered")
    with score_area:
        left, right = st.columns([3, 1])
        left.metric("Score", f"{correct} / {total}",
                    help="Correct answers out of all questions; unanswered count as not correct.")
        left.progress(answered / total, text=f"{answered} of {total} answered")
        right.button("Reset quiz", on_click=_reset_quiz, key=f"{STATE_PREFIX}quiz_reset",
                     help="Clear every answer and start again.")
        if answered:
            with st.expander("Score by chapter"):
                st.dataframe(pd.DataFrame(learn.chapter_scores(answers, questions)),
                             hide_index=True, width="stretch")
