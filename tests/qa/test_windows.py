import types

import numpy as np
import pytest

from bertqa.qa.tokenization import wordpiece
from bertqa.qa.windows import (Featurizer, WindowOf, WindowSettings, doc_spans, max_context_masks, pad_batch,
                               pad_windows_of, padded_length)

from conftest import WINDOWS


def test_spans_step_by_stride_and_cover_every_token():
    assert doc_spans(10, 4, 2) == [(0, 4), (2, 4), (4, 4), (6, 4)]
    for total, room, stride in [(1, 5, 2), (100, 30, 7), (384, 381, 128), (1000, 317, 128), (50, 10, 10)]:
        spans = doc_spans(total, room, stride)
        covered = set()
        for start, length in spans:
            assert 0 < length <= room
            covered.update(range(start, start + length))
        assert covered == set(range(total))
        assert spans[-1][0] + spans[-1][1] == total
        assert all(b[0] - a[0] == stride for a, b in zip(spans, spans[1:]))


def test_empty_passage_still_gets_one_window():
    assert doc_spans(0, 10, 3) == [(0, 0)]


def test_each_token_has_exactly_one_max_context_window_and_it_is_the_most_central():
    spans = doc_spans(20, 8, 3)
    masks = max_context_masks(spans)
    owners = {}
    for index, ((start, _), mask) in enumerate(zip(spans, masks)):
        for offset in np.flatnonzero(mask):
            assert start + offset not in owners
            owners[start + offset] = index
    assert sorted(owners) == list(range(20))
    # Token 7 has min(left, right) context 0 in window 0 (tokens 0-7), 3 in window 1 (3-10), 1 in window 2 (6-13).
    assert owners[7] == 1


def google_is_max_context(spans, span_index, position):
    """Google's `_check_is_max_context`, as run_squad.py writes it (the reference for the vectorized masks)."""
    best_score, best_index = None, None
    for index, (start, length) in enumerate(spans):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score, best_index = score, index
    return span_index == best_index


@pytest.mark.parametrize("tokens, room, stride", [(0, 10, 3), (1, 10, 3), (20, 8, 3), (20, 8, 8), (100, 29, 7),
                                                  (383, 125, 128), (1000, 381, 128), (64, 16, 1), (37, 10, 4)])
def test_max_context_masks_equal_googles_check_for_every_token(tokens, room, stride):
    spans = doc_spans(tokens, room, stride)
    masks = max_context_masks(spans)
    for index, (start, length) in enumerate(spans):
        assert masks[index].dtype == bool and len(masks[index]) == length
        assert masks[index].tolist() == [google_is_max_context(spans, index, start + offset)
                                         for offset in range(length)]


def test_windows_layout_and_question_truncation(vocab):
    settings = WindowSettings(max_seq_length=48, doc_stride=16, max_query_length=5)
    featurizer = Featurizer(wordpiece(vocab, True), settings)
    context = " ".join(["The mayor of the town is Anna Belen, and the river flows north."] * 6)
    question = "Who is the mayor of the town by the river in the north of the valley?"
    passage = featurizer.tokenize_passage(context)
    windows = featurizer.windows("q1", question, passage)
    assert len(windows) > 2
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    query = featurizer.question_ids(question).tolist()
    assert len(query) == 5
    seen = []
    for index, window in enumerate(windows):
        assert window.index == index and window.question_id == "q1"
        assert window.length <= settings.max_seq_length
        ids = window.input_ids.tolist()
        assert ids[0] == cls and ids[6] == sep and ids[-1] == sep and ids[1:6] == query
        assert window.context_start == 7
        assert window.token_type_ids.tolist() == [0] * 7 + [1] * (window.length - 7)
        doc = ids[7:-1]
        assert doc == passage.token_ids[window.doc_offset: window.doc_offset + window.doc_length].tolist()
        seen.extend(range(window.doc_offset, window.doc_offset + window.doc_length))
    assert set(seen) == set(range(len(passage.token_ids)))


def test_a_featurized_question_makes_the_same_windows_and_questions_are_tokenized_together(vocab):
    featurizer = Featurizer(wordpiece(vocab, True), WindowSettings(max_seq_length=48, doc_stride=16, max_query_length=5))
    passage = featurizer.tokenize_passage(" ".join(["The mayor of the town is Anna Belen."] * 8))
    questions = ["Who is the mayor?", "Who is the mayor of the town by the river in the north?", "Where?"]
    ids = featurizer.questions_ids(questions)
    assert len(ids[1]) == 5 and all(len(q) <= 5 for q in ids) and ids[0].dtype == np.int32
    for text, query in zip(questions, ids):
        assert query.tolist() == featurizer.question_ids(text).tolist()
        record = types.SimpleNamespace(id="q")
        made = featurizer.featurize(record, query, passage).windows()
        expected = featurizer.windows("q", text, passage)
        assert len(made) == len(expected) > 1
        for got, want in zip(made, expected):
            assert got.input_ids.tolist() == want.input_ids.tolist() and got.input_ids.dtype == np.int32
            assert got.token_type_ids.tolist() == want.token_type_ids.tolist()
            assert got.max_context.tolist() == want.max_context.tolist()
            assert (got.index, got.context_start, got.doc_offset) == (want.index, want.context_start, want.doc_offset)


def test_the_model_steps_batch_filled_from_questions_equals_the_made_windows_padded(vocab):
    featurizer = Featurizer(wordpiece(vocab, True), WindowSettings(max_seq_length=48, doc_stride=16, max_query_length=5))
    passages = ["", "Anna.", " ".join(["The mayor of the town is Anna Belen."] * 8)]
    questions = ["Who is the mayor of the town by the river in the north?", "Where?"]
    featurized = [featurizer.featurize(types.SimpleNamespace(id=f"q{p}-{q}"), query,
                                       featurizer.tokenize_passage(passage))
                  for p, passage in enumerate(passages) for q, query in enumerate(featurizer.questions_ids(questions))]
    # One batch of windows of different questions, lengths and places, in a mixed order, as a model call takes them.
    parts = [WindowOf(question, index) for question in featurized for index in range(len(question.spans))]
    parts = parts[::-1][::2] + parts[::-1][1::2]
    made = [question.windows()[index] for question, index in parts]
    assert len(parts) > 6 and len({window.length for window in made}) > 3
    assert [part.length for part in parts] == [window.length for window in made]
    assert [part.question_id for part in parts] == [window.question_id for window in made]
    for got, want in zip(pad_windows_of(parts, 64), pad_batch(made, 64)):
        assert got.dtype == want.dtype == np.int32 and got.tolist() == want.tolist()


def test_offsets_point_into_the_original_text_with_accents_and_punctuation(vocab):
    featurizer = Featurizer(wordpiece(vocab, True), WINDOWS)
    context = "Zoë's café — «naïve», 12,400 people;\nÉlodie Marchand!"
    passage = featurizer.tokenize_passage(context)
    pieces = [context[start:end] for start, end in passage.offsets]
    assert "Zoë"[:1] in pieces[0]
    assert "«" in pieces and "," in pieces and "!" in pieces
    joined = "".join(pieces)
    assert joined == "".join(context.split())  # every non-space character, in order, exactly once
    # A cased tokenizer keeps the same character positions.
    cased = Featurizer(wordpiece(vocab, False), WINDOWS).tokenize_passage(context)
    assert "".join(context[s:e] for s, e in cased.offsets) == joined


def test_padding_is_to_multiples_of_64_or_the_models_fixed_length():
    assert [padded_length(n) for n in (1, 64, 65, 128, 300, 384)] == [64, 64, 128, 128, 320, 384]
    assert padded_length(70, fixed_length=384) == 384


def test_vocab_without_special_tokens_is_rejected():
    from bertqa.qa.tokenization import parse_vocab

    with pytest.raises(ValueError, match=r"\[CLS\]"):
        parse_vocab("a\nb\n[SEP]\n[UNK]\n")


def test_vocab_ids_are_line_numbers_counted_at_newlines_only():
    from bertqa.qa.tokenization import parse_vocab

    # A token holding U+2028 (a line separator to str.splitlines) keeps the ids of the tokens after it.
    vocab = parse_vocab("[PAD]\r\n[CLS]\n[SEP]\nab\u2028cd\n\x85e\n[UNK]\nlast\n")
    assert vocab == {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2, "ab\u2028cd": 3, "\x85e": 4, "[UNK]": 5, "last": 6}
