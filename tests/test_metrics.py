import pytest

from bertqa.metrics import MetricTotals, exact_match, f1_score, gold_texts, normalize_answer, score_question


def test_normalization_follows_the_official_script():
    assert normalize_answer("The  Cat!") == "cat"
    assert normalize_answer("an Apple, a pear") == "apple pear"
    assert normalize_answer("Thebes") == "thebes"  # articles only as whole words
    assert normalize_answer("Zoë's") == "zoës"


def test_f1_and_exact_on_hand_computed_cases():
    assert exact_match("The Eiffel Tower", "eiffel tower.") == 1
    assert f1_score("the quick brown fox", "quick fox jumps") == pytest.approx(2 / 3)
    # "a" is an article: gold is [b, c, d]; precision 1, recall 1/3
    assert f1_score("a b c d", "b") == pytest.approx(0.5)
    assert f1_score("red", "blue") == 0.0


def test_no_answer_scores_one_only_against_no_answer():
    assert score_question([], "").exact == 1 and score_question([], "").f1 == 1
    assert score_question([], "Paris").exact == 0 and score_question([], "Paris").f1 == 0
    assert score_question(["Paris"], "").f1 == 0
    # Gold answers that normalize to nothing count as "no answer", as in the official script.
    assert gold_texts(["the", "  "]) == [""]
    assert score_question(["the"], "").has_answer is False


def test_best_gold_answer_counts():
    score = score_question(["Paris", "the city of Paris"], "city of Paris")
    assert score.exact == 1 and score.f1 == 1


def test_totals_split_into_has_answer_and_no_answer():
    totals = MetricTotals()
    totals.add(score_question(["Paris"], "Paris"))  # 1, 1
    totals.add(score_question(["quick brown fox"], "quick fox"))  # 0, 0.8
    other = MetricTotals().add(score_question([], "")).add(score_question([], "x"))  # 1,1 and 0,0
    summary = totals.merge(other).summary()
    assert summary["total"] == 4 and summary["HasAns_total"] == 2 and summary["NoAns_total"] == 2
    assert summary["exact"] == pytest.approx(50.0)
    assert summary["f1"] == pytest.approx(100 * (1 + 0.8 + 1 + 0) / 4)
    assert summary["HasAns_f1"] == pytest.approx(90.0)
    assert summary["NoAns_exact"] == pytest.approx(50.0)


def test_no_questions_no_figures():
    assert MetricTotals().summary() == {}
