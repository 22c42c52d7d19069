import dataclasses
import math
import unicodedata

import numpy as np
import pytest

from bertqa.qa.decoding import (PackedWindows, WindowLogits, best_window_span, decode_answer, decode_answers,
                                whole_words)
from bertqa.qa.windows import Featurizer, WindowSettings
from bertqa.qa.tokenization import wordpiece

from conftest import DECODE, WINDOWS

LOW = -10.0


def window_logits(window, start_at=None, end_at=None, high=5.0, null=0.0):
    """Logits for one window: `high` at the given passage token indices, `null` at [CLS]."""
    start = np.full(window.length, LOW, dtype=np.float32)
    end = np.full(window.length, LOW, dtype=np.float32)
    start[0] = end[0] = null / 2
    for logits, token in ((start, start_at), (end, end_at)):
        if token is not None:
            logits[window.context_start + token - window.doc_offset] = high
    return WindowLogits(window.index, window.context_start, window.doc_offset, window.max_context, start, end)


@pytest.fixture
def long_passage(vocab):
    settings = WindowSettings(max_seq_length=64, doc_stride=16, max_query_length=8)
    featurizer = Featurizer(wordpiece(vocab, True), settings)
    filler = "The streets near the old square are narrow and paved with grey stone. "
    context = filler * 4 + "The current mayor of Zanlo is Élodie Marchand-Vézin, «née» Ulm. " + filler * 2
    passage = featurizer.tokenize_passage(context)
    windows = featurizer.windows("q", "Who is the mayor of Zanlo?", passage)
    return context, passage, windows


def token_range(passage, context, text):
    start_char = context.index(text)
    end_char = start_char + len(text)
    first = next(i for i, (s, e) in enumerate(passage.offsets) if e > start_char)
    last = max(i for i, (s, e) in enumerate(passage.offsets) if s < end_char)
    return first, last


def answering_window(windows, first, last):
    """The window that holds tokens first..last and answers for the first one (max context)."""
    (window,) = [w for w in windows if w.doc_offset <= first and last < w.doc_offset + w.doc_length
                 and w.max_context[first - w.doc_offset]]
    return window


def test_answer_only_a_later_window_contains_is_found_and_cut_exactly(long_passage):
    context, passage, windows = long_passage
    answer = "Élodie Marchand-Vézin, «née» Ulm"
    first, last = token_range(passage, context, answer)
    assert windows[0].doc_offset + windows[0].doc_length <= last, "the answer must lie beyond the first window"
    logits = [window_logits(w) for w in windows]
    chosen = answering_window(windows, first, last)
    logits[chosen.index] = window_logits(chosen, first, last)
    result = decode_answer(logits, context, passage.offsets, DECODE)
    assert result.text == answer
    assert context[result.start_char:result.end_char] == answer
    assert result.null_score_diff < 0


def test_span_in_an_overlap_is_taken_from_the_window_where_its_start_has_most_context(long_passage):
    context, passage, windows = long_passage
    # A token inside the overlap of windows 1 and 2: only one of them may propose spans starting there.
    shared = windows[2].doc_offset + 1
    assert windows[1].doc_offset <= shared < windows[1].doc_offset + windows[1].doc_length
    owner = [w.index for w in windows
             if w.doc_offset <= shared < w.doc_offset + w.doc_length and w.max_context[shared - w.doc_offset]]
    assert len(owner) == 1
    other = 1 if owner[0] == 2 else 2
    logits = [window_logits(w) for w in windows]
    logits[other] = window_logits(windows[other], shared, shared, high=9.0)  # ignored: not max context
    logits[owner[0]] = window_logits(windows[owner[0]], shared, shared + 1, high=3.0)
    result = decode_answer(logits, context, passage.offsets, DECODE)
    start_char, end_char = passage.offsets[shared][0], passage.offsets[shared + 1][1]
    assert (result.start_char, result.end_char) == (start_char, end_char)
    assert result.text == context[start_char:end_char]


def test_no_answer_when_null_beats_the_best_span_by_more_than_the_threshold(long_passage):
    context, passage, windows = long_passage
    first, last = token_range(passage, context, "Ulm")
    logits = [window_logits(w, null=4.0) for w in windows]
    holder = answering_window(windows, first, last)
    logits[holder.index] = window_logits(holder, first, last, high=1.0, null=4.0)  # span 2.0 vs null 4.0
    result = decode_answer(logits, context, passage.offsets, DECODE)
    assert result.text == "" and result.start_char is None and result.end_char is None
    assert result.null_score_diff == pytest.approx(2.0)
    assert decode_answer(logits, context, passage.offsets, dataclasses.replace(DECODE, null_score_diff_threshold=2.5)).text == "Ulm"
    v1 = decode_answer(logits, context, passage.offsets, dataclasses.replace(DECODE, version_2_with_negative=False))
    assert v1.text == "Ulm" and v1.null_score_diff is None


def test_a_windows_own_best_answer_is_its_best_span_in_passage_tokens_or_none_below_its_null(long_passage):
    context, passage, windows = long_passage
    first, last = token_range(passage, context, "Élodie Marchand-Vézin")
    holder = answering_window(windows, first, last)
    assert best_window_span(window_logits(holder, first, last, high=3.0, null=4.0), DECODE) == (first, last)
    assert best_window_span(window_logits(holder, first, last, high=1.0, null=4.0), DECODE) is None
    assert best_window_span(window_logits(holder, first, last, high=3.0),
                            dataclasses.replace(DECODE, max_answer_length=last - first)) != (first, last)  # too long


def google_best_spans(windows, settings):
    """Google's run_squad.py n-best loops over every window, written out: the reference for the vectorized
    span search. (start token, end token, score) best first, each passage span once."""
    spans = []
    for window in windows:
        first, last = window.context_start, window.context_start + len(window.max_context) - 1
        starts = np.argsort(-window.start_logits, kind="stable")[:settings.n_best_size]
        ends = np.argsort(-window.end_logits, kind="stable")[:settings.n_best_size]
        for start in starts:
            if not first <= start <= last or not window.max_context[start - first]:
                continue
            for end in ends:
                if first <= end <= last and start <= end and end - start + 1 <= settings.max_answer_length:
                    score = float(window.start_logits[start]) + float(window.end_logits[end])
                    spans.append((window.doc_offset + int(start - first), window.doc_offset + int(end - first), score))
    spans.sort(key=lambda span: span[2], reverse=True)
    unique = {}
    for span in spans:
        unique.setdefault(span[:2], span)
    return list(unique.values())[:settings.n_best_size]


@pytest.mark.parametrize("seed", range(40))
def test_the_span_search_picks_what_googles_loops_pick_ties_included(long_passage, seed):
    context, passage, windows = long_passage
    rng = np.random.default_rng(seed)
    # Logits on a coarse grid, so that equal scores (ties) are common and their order is tested too.
    logits = [WindowLogits(w.index, w.context_start, w.doc_offset, w.max_context,
                           rng.integers(-8, 8, w.length).astype(np.float32) / 2,
                           rng.integers(-8, 8, w.length).astype(np.float32) / 2) for w in windows]
    settings = dataclasses.replace(DECODE, n_best_size=int(rng.integers(1, 25)), max_answer_length=int(rng.integers(1, 12)))
    expected = google_best_spans(logits, settings)
    answer = decode_answer(logits, context, passage.offsets, dataclasses.replace(settings, version_2_with_negative=False))
    if expected:
        start, end, score = expected[0]
        assert (answer.start_char, answer.score) == (passage.offsets[start][0], score)
        assert answer.end_char >= passage.offsets[end][1]
        # The probability is a softmax over the n best distinct spans: the same list as Google's.
        scores = np.array([span[2] for span in expected])
        assert answer.probability == pytest.approx(1 / np.exp(scores - score).sum())
    else:
        assert answer.text == ""
    for window in logits:
        best = google_best_spans([window], settings)
        own = best_window_span(window, settings)
        null = float(window.start_logits[0]) + float(window.end_logits[0])
        assert own == (None if not best or null > best[0][2] else best[0][:2])


@pytest.mark.parametrize("seed", range(10))
def test_questions_decoded_together_get_the_answers_each_gets_alone(vocab, long_passage, seed):
    long_context, long_tokens, long_windows = long_passage
    featurizer = Featurizer(wordpiece(vocab, True), WindowSettings(max_seq_length=64, doc_stride=16, max_query_length=8))
    short_context = "The bridge at Tholfen was built in 1622 by Anna Belen."
    short_tokens = featurizer.tokenize_passage(short_context)
    short_windows = featurizer.windows("s", "Who built the bridge?", short_tokens)
    rng = np.random.default_rng(seed)
    # Passages of one and of several windows, mixed; coarse logits so that ties across questions are common too.
    passages = [(long_context, long_tokens, long_windows), (short_context, short_tokens, short_windows)]
    questions = [passages[index] for index in rng.integers(0, 2, 7)]
    logits = [[WindowLogits(w.index, w.context_start, w.doc_offset, w.max_context,
                            rng.integers(-8, 8, w.length).astype(np.float32) / 2,
                            rng.integers(-8, 8, w.length).astype(np.float32) / 2) for w in windows]
              for _, _, windows in questions]
    for question in logits[::2]:  # these are sure there is an answer in the passage, the others need not be
        for window in question:
            window.start_logits[:window.context_start] = window.end_logits[:window.context_start] = -4.0
    settings = dataclasses.replace(DECODE, n_best_size=int(rng.integers(1, 25)),
                                   max_answer_length=int(rng.integers(3, 12)),
                                   null_score_diff_threshold=float(rng.integers(-3, 3)))
    together = decode_answers(PackedWindows.of(logits), [context for context, _, _ in questions],
                              [tokens.offsets for _, tokens, _ in questions], settings)
    alone = [decode_answer(windows, context, tokens.offsets, settings)
             for windows, (context, tokens, _) in zip(logits, questions)]
    assert together == alone and len({answer.text for answer in alone}) > 1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_logits_that_are_not_finite_are_an_error_naming_them(long_passage, bad):
    context, passage, windows = long_passage
    logits = [window_logits(w) for w in windows]
    logits[2].end_logits[5] = bad
    with pytest.raises(ValueError, match=r"logits are not finite \(NaN or infinity\) in 1 of \d+ windows "
                                         r"\(the first is window 2\)"):
        decode_answer(logits, context, passage.offsets, DECODE)


def test_null_score_is_the_lowest_over_windows(long_passage):
    context, passage, windows = long_passage
    first, last = token_range(passage, context, "Ulm")
    logits = [window_logits(w, null=20.0) for w in windows]
    holder = answering_window(windows, first, last)
    logits[holder.index] = window_logits(holder, first, last, high=5.0, null=20.0)
    assert decode_answer(logits, context, passage.offsets, DECODE).text == ""
    logits[0] = window_logits(windows[0], null=1.0)  # one window is sure the answer is elsewhere
    result = decode_answer(logits, context, passage.offsets, DECODE)
    assert result.text == "Ulm" and result.null_score_diff == pytest.approx(1.0 - 10.0)


def test_spans_outside_the_passage_reversed_or_too_long_are_never_chosen(long_passage):
    context, passage, windows = long_passage
    window = windows[1]
    base = int(np.flatnonzero(window.max_context)[0])  # the first token this window answers for
    start = np.full(window.length, LOW, dtype=np.float32)
    end = np.full(window.length, LOW, dtype=np.float32)
    start[0] = end[0] = -50.0
    start[1] = end[1] = 30.0  # question tokens: not passage
    start[window.context_start + base + 3] = 10.0
    end[window.context_start + base + 1] = 12.0  # before the start
    end[window.context_start + base + 5] = 8.0
    logits = [WindowLogits(window.index, window.context_start, window.doc_offset, window.max_context, start, end)]
    result = decode_answer(logits, context, passage.offsets, dataclasses.replace(DECODE, max_answer_length=30))
    assert result.start_char == passage.offsets[window.doc_offset + base + 3][0]
    assert result.end_char == passage.offsets[window.doc_offset + base + 5][1]
    short = decode_answer(logits, context, passage.offsets, dataclasses.replace(DECODE, max_answer_length=2))
    # The only good span is 3 tokens long; every other candidate starts or ends outside the passage.
    assert short.text == "" and short.start_char is None


def test_probability_is_a_softmax_over_candidates_and_null(long_passage):
    context, passage, windows = long_passage
    logits = [window_logits(w) for w in windows]
    result = decode_answer(logits, context, passage.offsets, dataclasses.replace(DECODE, n_best_size=5))
    assert 0.0 < result.probability <= 1.0


def test_span_scores_are_summed_in_float64_so_float32_rounding_decides_no_ties(long_passage):
    context, passage, windows = long_passage
    window = windows[0]
    first = int(np.flatnonzero(window.max_context)[0])
    a, b = window.context_start + first, window.context_start + first + 2  # span A = a..a+1, span B = b..b+1
    ulp = 2.0 ** -23  # float32's spacing at 1.0
    start = np.full(window.length, LOW, dtype=np.float32)
    end = np.full(window.length, LOW, dtype=np.float32)
    start[a], end[a + 1] = 1.0, 0.75 * ulp  # A: 1 + 0.75 ulp
    start[b], end[b + 1] = 1.0 + ulp, -0.4 * ulp  # B: 1 + 0.6 ulp; B's start ranks first
    # In float32 both sums round to 1 + ulp: the tie would go to B, the span proposed first.
    assert np.float32(start[a] + end[a + 1]) == np.float32(start[b] + end[b + 1])
    logits = [WindowLogits(window.index, window.context_start, window.doc_offset, window.max_context, start, end)]
    result = decode_answer(logits, context, passage.offsets, dataclasses.replace(DECODE, version_2_with_negative=False))
    assert result.start_char == passage.offsets[window.doc_offset + first][0]
    assert result.end_char == passage.offsets[window.doc_offset + first + 1][1]
    assert result.score == float(start[a]) + float(end[a + 1]) and result.score > 1.0 + 0.7 * ulp


@pytest.mark.parametrize("form", ["NFC", "NFD"])
@pytest.mark.parametrize("do_lower_case", [True, False])
def test_an_answer_keeps_the_accents_of_its_last_word_in_every_normalization_form(vocab, form, do_lower_case):
    featurizer = Featurizer(wordpiece(vocab, do_lower_case), dataclasses.replace(WINDOWS, max_seq_length=128, doc_stride=32))
    context = unicodedata.normalize(form, "Tholfen lies 1335 metreş above sea level. The mayor is José Mão.")
    passage = featurizer.tokenize_passage(context)
    (window,) = featurizer.windows("q", "How high is Tholfen?", passage)
    for gold in ("1335 metreş", "José", "José Mão"):
        gold = unicodedata.normalize(form, gold)
        first, last = token_range(passage, context, gold)
        result = decode_answer([window_logits(window, first, last)], context, passage.offsets, DECODE)
        assert result.text == gold, (form, do_lower_case, result.text)
        assert context[result.start_char:result.end_char] == gold


@pytest.mark.parametrize("context, cut, whole", [
    ("The mayor is Zoë Naroü since 2001.", "Zoë Nar", "Zoë Naroü"),  # the end inside a word
    ("It lies in Senbeldor, by the sea.", "beldor", "Senbeldor"),  # the start inside a word
    ("Their word for it, e\u0301cole, is old.", "\u0301col", "e\u0301cole"),  # from a combining mark (NFD)
    ("The mayor is Jos\u00e9 M\u00e3o.", "Jos\u00e9 M", "Jos\u00e9 M\u00e3o"),  # accents inside, NFC
    ("The mayor is Jose\u0301 Ma\u0303o.", "Jose\u0301 Ma", "Jose\u0301 Ma\u0303o"),  # and NFD
    ("About 1,000 people.", "00", "000"),  # punctuation ends a word
    ("Made in the U.S. in 1990.", "U.S", "U.S"),
    ("Marchand-Vézin wins.", "Marchand", "Marchand"),
    ("北京大学的历史", "京大", "京大"),  # Chinese: each character is a word
    ("東京タワーは高い", "タワ", "タワ"),  # Katakana
    ("ภาษาไทยง่าย", "ษาไ", "ษาไ"),  # Thai
    ("Der Schloßgarten liegt hier.", "garten", "Schloßgarten"),
    ("Он живёт в Москве.", "Моск", "Москве"),  # a spaced non-Latin script
])
def test_an_answer_is_widened_to_the_whole_words_it_touches(context, cut, whole):
    start = context.index(cut)
    widened = whole_words(context, start, start + len(cut))
    assert context[widened[0]:widened[1]] == whole


def test_decoded_answers_are_whole_words_within_max_answer_length_with_the_raw_span_kept(vocab):
    featurizer = Featurizer(wordpiece(vocab, True), dataclasses.replace(WINDOWS, max_seq_length=128, doc_stride=32))
    context = "The oldest bridge was built by Zoë Naroüvelindor in 1602."
    passage = featurizer.tokenize_passage(context)
    (window,) = featurizer.windows("q", "Who built the bridge?", passage)
    first, surname_end = token_range(passage, context, "Zoë Naroüvelindor")
    last = token_range(passage, context, "Naroüvelindor")[0]  # the model's span ends inside the surname
    assert last < surname_end
    raw = decode_answer([window_logits(window, first, last)], context, passage.offsets,
                        dataclasses.replace(DECODE, align_to_words=False))
    assert raw.text != "Zoë Naroüvelindor" and raw.text.startswith("Zoë N")
    aligned = decode_answer([window_logits(window, first, last)], context, passage.offsets, DECODE)
    assert aligned.text == "Zoë Naroüvelindor"
    assert (aligned.raw_start_char, aligned.raw_end_char) == (raw.start_char, raw.end_char)
    (candidate, *_) = decode_answer([window_logits(window, first, last)], context, passage.offsets,
                                    dataclasses.replace(DECODE, top_k=2)).candidates
    assert (candidate.text, candidate.start_char, candidate.end_char) == ("Zoë Naroüvelindor", aligned.start_char,
                                                                         aligned.end_char)  # cut as answers are
    assert aligned.score == raw.score and aligned.probability == raw.probability
    too_short = dataclasses.replace(DECODE, max_answer_length=surname_end - first)
    kept = decode_answer([window_logits(window, first, last)], context, passage.offsets, too_short)
    assert kept.text == raw.text  # widening would pass max_answer_length: the model's span stays


def test_candidates_are_the_best_spans_of_distinct_texts_whatever_the_no_answer_decision(vocab):
    featurizer = Featurizer(wordpiece(vocab, True), dataclasses.replace(WINDOWS, max_seq_length=128, doc_stride=32))
    context = "The mayor of Ulm is Anna Berg, and Anna Berg lives in Ulm."
    passage = featurizer.tokenize_passage(context)
    (window,) = featurizer.windows("q", "Who is the mayor?", passage)
    ulm, anna, berg = (token_range(passage, context, text)[0] for text in ("Ulm", "Anna", "Berg"))
    second_anna, second_berg = (next(i for i, (start, _) in enumerate(passage.offsets)
                                     if start == context.index(text, 30)) for text in ("Anna", "Berg"))
    logits = window_logits(window)
    for logit, token, value in ((logits.start_logits, anna, 5.0), (logits.start_logits, second_anna, 4.9),
                                (logits.start_logits, ulm, 3.0), (logits.end_logits, berg, 5.0),
                                (logits.end_logits, second_berg, 4.8)):
        logit[window.context_start + token] = value
    settings = dataclasses.replace(DECODE, top_k=3)
    answer = decode_answer([logits], context, passage.offsets, settings)
    # Anna..Berg 10.0, Anna..second Berg 9.8, second Anna..second Berg 9.7 (a text already found), Ulm..Berg 8.0
    assert [(c.text, c.score) for c in answer.candidates] == [
        ("Anna Berg", 10.0), ("Anna Berg, and Anna Berg", pytest.approx(9.8)), ("Ulm is Anna Berg", 8.0)]
    first = answer.candidates[0]
    assert (first.text, first.start_char, first.end_char, first.score, first.probability) == (
        answer.text, answer.start_char, answer.end_char, answer.score, answer.probability)
    for candidate in answer.candidates:  # shares of one softmax
        assert context[candidate.start_char:candidate.end_char] == candidate.text
        assert candidate.probability / first.probability == pytest.approx(math.exp(candidate.score - first.score))
    assert decode_answer([logits], context, passage.offsets, DECODE).candidates == ()  # top_k=0: none
    logits.start_logits[0] = logits.end_logits[0] = 8.0  # null 16.0: "no answer", the same candidates
    unanswered = decode_answer([logits], context, passage.offsets, settings)
    assert unanswered.text == "" and [c.text for c in unanswered.candidates] == [c.text for c in answer.candidates]
    assert unanswered.candidates[0].probability < unanswered.probability
