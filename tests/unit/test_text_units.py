"""Passages, title keys and query windows: the text units search is built on."""

from __future__ import annotations

from metamedia.domain import MediaItem
from metamedia.engine.passages import (
    MAX_PASSAGES,
    MAX_QUERY_WINDOWS,
    QUERY_WINDOW_WORDS,
    item_passages,
    query_windows,
    split_passages,
    split_sentences,
)
from metamedia.engine.titles import normalise_title, read_title_query

LEAD = (
    "Memento is a 2000 American neo-noir psychological thriller film written and directed "
    "by Christopher Nolan. The film stars Guy Pearce as Leonard Shelby, a man who suffers "
    "from anterograde amnesia. He searches for the people who killed his wife, using "
    "Polaroid photographs and tattoos. Dr. J. R. Smith co-stars."
)


def test_sentences_keep_abbreviations_and_initials_together() -> None:
    sentences = split_sentences(LEAD)
    assert len(sentences) == 4
    assert sentences[-1] == "Dr. J. R. Smith co-stars."


def test_short_sentences_join_their_neighbour() -> None:
    passages = split_passages(LEAD)
    assert len(passages) == 3
    assert passages[-1].endswith("tattoos. Dr. J. R. Smith co-stars.")
    assert any("anterograde amnesia" in p for p in passages)


def test_long_descriptions_are_bounded_and_lose_no_words() -> None:
    text = " ".join(f"Sentence number {i} tells more of the story here." for i in range(200))
    passages = split_passages(text)
    assert len(passages) <= MAX_PASSAGES
    assert " ".join(passages).split() == text.split()


def test_an_item_without_description_is_represented_by_title_and_genres() -> None:
    item = MediaItem(id="x", title="Quiet Harbour", genres=["drama"])
    assert item_passages(item) == ["Quiet Harbour. drama"]
    tagged = MediaItem(
        id="y", title="T", description="One full sentence of plot here.", tags=["sea"]
    )
    assert item_passages(tagged) == ["One full sentence of plot here.", "Tags: sea"]


def test_title_keys_fold_articles_accents_and_ampersands() -> None:
    assert normalise_title("The Matrix") == normalise_title("Matrix, The") == "matrix"
    assert normalise_title("Thelma & Louise") == normalise_title("thelma and louise")
    assert normalise_title("Amélie") == "amelie"
    assert normalise_title("Se7en") == "se7en"
    assert normalise_title("The") == "the"  # a title of only an article keeps it
    assert normalise_title("It") == "it"


def test_a_trailing_year_is_read_but_the_whole_query_is_kept() -> None:
    titanic = read_title_query("Titanic (1997)")
    assert (titanic.stripped_key, titanic.year) == ("titanic", 1997)
    assert titanic.key == "titanic 1997"
    blade = read_title_query("Blade Runner 2049")
    assert blade.key == "blade runner 2049" and blade.stripped_key == "blade runner"
    assert read_title_query("1917").stripped_key is None


def test_everyday_queries_are_one_window_long_ones_are_read_whole() -> None:
    assert query_windows("a shark terrorises a beach town") == ["a shark terrorises a beach town"]
    words = [f"w{i}" for i in range(1400)]
    windows = query_windows(" ".join(words))
    assert 1 < len(windows) <= MAX_QUERY_WINDOWS
    covered = {w for window in windows for w in window.split()}
    assert words[0] in covered and words[-1] in covered


def test_a_long_request_is_cut_evenly_into_windows_that_cover_every_word() -> None:
    words = [f"w{i}" for i in range(QUERY_WINDOW_WORDS + 60)]
    windows = query_windows(" ".join(words))
    # Two windows of equal length, not a full one and a 60-word tail.
    assert [len(w.split()) for w in windows] == [(QUERY_WINDOW_WORDS + 60) // 2] * 2
    for n in (
        QUERY_WINDOW_WORDS + 1,
        5 * QUERY_WINDOW_WORDS - 3,
        MAX_QUERY_WINDOWS * QUERY_WINDOW_WORDS,
    ):
        words = [f"w{i}" for i in range(n)]
        windows = query_windows(" ".join(words))
        # Read whole, in order, each word once, each window inside the model's reach.
        assert [w for window in windows for w in window.split()] == words
        assert max(len(w.split()) for w in windows) <= QUERY_WINDOW_WORDS


def test_sentence_splitting_keeps_every_character() -> None:
    text = 'He said "Go." Then (it ended.) “Quoted.” Mr. Smith left! Did he? Yes.'
    sentences = split_sentences(text)
    assert " ".join(sentences) == text
    assert sentences[:3] == ['He said "Go."', "Then (it ended.)", "“Quoted.”"]
