"""Learn content: quiz integrity, coverage of every seed chapter, scoring, shuffling, glossary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from unet_demo.errors import UNetDemoError
from unet_demo.lessons import learn

REPO_ROOT = Path(__file__).resolve().parents[2]
SEEDS_DIR = Path("/work/shared/seeds")

# The seed documents: the guide has chapters 1-10, the notebook is one more "chapter".
SEED_CHAPTERS = {f"guide-{n}" for n in range(1, 11)} | {"notebook"}

# Concepts the Learn page must explain (section keys).
REQUIRED_SECTIONS = {
    "segmentation", "architecture", "layers", "input-size", "losses", "metrics",
    "preprocessing", "augmentation", "fitting", "variants", "evaluation-pitfalls", "clinical",
}


# ----------------------------------------------------------------------------- quiz integrity

def test_quiz_is_big_enough():
    assert len(learn.QUIZ) >= 24


@pytest.mark.parametrize("question", learn.QUIZ, ids=lambda q: q.key)
def test_question_is_well_formed(question):
    assert question.question.strip()
    assert len(question.options) >= 3
    assert len(set(question.options)) == len(question.options), "duplicate options"
    assert all(option.strip() for option in question.options)
    assert isinstance(question.correct, int)
    assert 0 <= question.correct < len(question.options)
    assert len(question.explanation.strip()) >= 20
    assert question.chapter in learn.CHAPTERS
    assert question.topic.strip()


def test_questions_and_keys_are_unique():
    keys = [q.key for q in learn.QUIZ]
    texts = [q.question.strip().lower() for q in learn.QUIZ]
    assert len(set(keys)) == len(keys)
    assert len(set(texts)) == len(texts)


def test_chapters_are_exactly_the_seed_chapters():
    assert set(learn.CHAPTERS) == SEED_CHAPTERS


@pytest.mark.parametrize("chapter", sorted(SEED_CHAPTERS))
def test_every_seed_chapter_has_a_question(chapter):
    assert learn.questions_by_chapter()[chapter], f"no quiz question for {chapter}"


def test_correct_answers_are_not_all_in_one_position():
    positions = {q.correct for q in learn.QUIZ}
    assert len(positions) >= 3


# ----------------------------------------------------------------------------- scoring

def test_score_all_correct_and_all_wrong():
    total = len(learn.QUIZ)
    assert learn.score({q.key: q.correct for q in learn.QUIZ}) == (total, total)
    wrong = {q.key: (q.correct + 1) % len(q.options) for q in learn.QUIZ}
    assert learn.score(wrong) == (0, total)


def test_score_counts_unanswered_as_not_correct():
    first, second, third = learn.QUIZ[:3]
    answers = {first.key: first.correct, second.key: None}
    assert learn.score(answers, learn.QUIZ[:3]) == (1, 3)
    assert learn.score([first.correct, None, (third.correct + 1) % len(third.options)],
                       learn.QUIZ[:3]) == (1, 3)
    assert learn.score({}) == (0, len(learn.QUIZ))


def test_score_rejects_bad_input():
    with pytest.raises(UNetDemoError, match="answers for"):
        learn.score([0, 1], learn.QUIZ[:3])
    with pytest.raises(UNetDemoError, match="unknown question"):
        learn.score({"no-such-question": 0})
    with pytest.raises(UNetDemoError, match="out of range"):
        learn.score({learn.QUIZ[0].key: 99})


def test_is_correct():
    question = learn.QUIZ[0]
    assert learn.is_correct(question, question.correct)
    assert not learn.is_correct(question, None)
    assert not learn.is_correct(question, (question.correct + 1) % len(question.options))


# ----------------------------------------------------------------------------- shuffling

def test_shuffle_is_deterministic_and_keeps_answers():
    first = learn.quiz_questions(seed=3)
    assert first == learn.quiz_questions(seed=3)
    assert learn.quiz_questions() == learn.QUIZ
    assert [q.key for q in first] != [q.key for q in learn.QUIZ]
    assert [q.key for q in learn.quiz_questions(seed=4)] != [q.key for q in first]
    original = {q.key: q for q in learn.QUIZ}
    moved_answers = 0
    for question in first:
        source = original[question.key]
        assert sorted(question.options) == sorted(source.options)
        assert question.correct_option == source.correct_option
        moved_answers += question.correct != source.correct
    assert moved_answers > 0


def test_scoring_a_shuffled_quiz_by_key():
    shuffled = learn.shuffled_quiz(11)
    answers = {q.key: q.correct for q in shuffled[:5]}
    assert learn.score(answers, shuffled) == (5, len(shuffled))
    # answers are option indices of the quiz they were given for: the shuffled quiz's right
    # indices, scored against the authored order, are mostly wrong there
    all_right = {q.key: q.correct for q in shuffled}
    assert learn.score(all_right, shuffled) == (len(shuffled), len(shuffled))
    assert learn.score(all_right, learn.QUIZ)[0] < len(learn.QUIZ)


# ----------------------------------------------------------------------------- sections

def test_required_sections_exist_and_are_unique():
    keys = [s.key for s in learn.SECTIONS]
    assert len(set(keys)) == len(keys)
    assert set(keys) >= REQUIRED_SECTIONS


@pytest.mark.parametrize("section", learn.SECTIONS, ids=lambda s: s.key)
def test_section_links_to_an_existing_page(section):
    assert section.try_it in learn.TRY_IT_PAGES
    assert (REPO_ROOT / section.try_it).is_file(), f"{section.try_it} does not exist"
    assert section.try_it_label.strip()
    assert len(section.body) >= 200
    assert section.chapters and set(section.chapters) <= set(learn.CHAPTERS)


def test_every_try_it_page_is_used():
    assert {s.try_it for s in learn.SECTIONS} == set(learn.TRY_IT_PAGES)


# ----------------------------------------------------------------------------- glossary

def test_glossary_size_and_uniqueness():
    terms = [e.term.lower() for e in learn.GLOSSARY]
    assert len(terms) >= 25
    assert len(set(terms)) == len(terms)
    assert all(e.definition.strip() for e in learn.GLOSSARY)


def test_glossary_search():
    assert learn.search_glossary("") == learn.GLOSSARY
    assert learn.search_glossary("   ") == learn.GLOSSARY
    assert [e.term for e in learn.search_glossary("JACCARD")] == ["IoU (Jaccard index)"]
    hits = learn.search_glossary("dice")
    assert hits[0].term.lower().startswith("dice")
    assert {"Dice coefficient", "Dice loss", "Generalised Dice loss"} <= {e.term for e in hits}
    assert learn.search_glossary("zzz-not-a-term") == ()


# ----------------------------------------------------------------------------- own words

def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _shingles(words: list[str], size: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + size]) for i in range(len(words) - size + 1)}


@pytest.mark.skipif(not SEEDS_DIR.is_dir(), reason="seed documents not on this machine")
def test_text_is_not_copied_from_the_seeds():
    size = 8
    seed_shingles: set[tuple[str, ...]] = set()
    for path in SEEDS_DIR.glob("*.txt"):
        seed_shingles |= _shingles(_words(path.read_text(encoding="utf-8")), size)
    texts = [s.title + ". " + s.body + " " + s.try_it_label for s in learn.SECTIONS]
    texts += [e.definition for e in learn.GLOSSARY]
    texts += [" ".join([q.question, *q.options, q.explanation]) for q in learn.QUIZ]
    copied = [text[:60] for text in texts if _shingles(_words(text), size) & seed_shingles]
    assert not copied, f"passages sharing {size} consecutive words with a seed: {copied}"
