"""Judged queries with a photo: read, checked where they enter, written back; text-only files read as before."""

import json

import pytest

from shoplens.common.errors import JudgmentsError
from shoplens.rerank.judgments import (JudgedQuery, Judgments, judged_query, load_judgments, sources, split_by_kind,
                                       write_judgments)
from tests.helpers import SAMPLE

PHOTO = SAMPLE.parent / "images" / "10183.jpg"


def write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_text_photo_and_text_photo_lines_are_told_apart(tmp_path):
    path = write(tmp_path / "j.jsonl", [
        {"query": "black wallet", "id": "1", "grade": 2},
        {"image": str(PHOTO), "id": "10183", "grade": 4, "kind": "photo", "source": "derived"},
        {"image": str(PHOTO), "id": "2", "grade": 1, "kind": "photo", "source": "derived"},
        {"query": "wallet", "image": str(PHOTO), "id": "10183", "grade": 4, "kind": "text+photo"},
    ])
    judgments = load_judgments(path)
    assert judgments["black wallet"] == {"1": 2}  # a text query's key is still its text
    kinds = {kind: list(part) for kind, part in split_by_kind(judgments).items()}
    assert list(kinds) == ["text", "photo", "text+photo"]
    photo = judged_query(judgments, kinds["photo"][0])
    assert photo == JudgedQuery(None, str(PHOTO), "derived") and photo.kind == "photo"
    assert judgments[photo.key] == {"10183": 4, "2": 1}
    assert judged_query(judgments, kinds["text+photo"][0]).text == "wallet"
    assert sources(judgments) == ["derived"]


def test_a_relative_photo_path_is_read_against_the_file_and_written_back(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "p.jpg").write_bytes(PHOTO.read_bytes())
    path = write(tmp_path / "j.jsonl", [{"query": "", "image": "img/p.jpg", "id": "7", "grade": 3}])
    judgments = load_judgments(path)
    query = judged_query(judgments, next(iter(judgments)))
    assert query.image == str(tmp_path / "img" / "p.jpg") and query.kind == "photo"
    write_judgments(tmp_path / "out.jsonl", judgments)
    row = json.loads((tmp_path / "out.jsonl").read_text())
    assert row == {"image": str(tmp_path / "img" / "p.jpg"), "id": "7", "grade": 3, "kind": "photo"}
    assert load_judgments(tmp_path / "out.jsonl") == judgments


@pytest.mark.parametrize("row, message", [
    ({"image": "missing.jpg", "id": "1", "grade": 1}, "image missing.jpg not found"),
    ({"image": 5, "id": "1", "grade": 1}, "image must be a photo's path"),
    ({"query": "shoes", "id": "1", "grade": 1, "kind": "photo"}, "kind 'photo' does not match the line"),
    ({"image": str(PHOTO), "id": "1", "grade": 1, "kind": "video"}, "kinds are text, photo, text+photo"),
    ({"id": "1", "grade": 1}, "expected an object with query (or image), id and grade"),
    ({"query": "shoes", "id": "1", "grade": 1, "source": ""}, "source must be text"),
])
def test_bad_photo_lines_are_one_line_errors_naming_the_line(tmp_path, row, message):
    path = write(tmp_path / "j.jsonl", [{"query": "ok", "id": "0", "grade": 1}, row])
    with pytest.raises(JudgmentsError) as caught:
        load_judgments(path)
    assert "line 2" in str(caught.value) and message in str(caught.value) and "\n" not in str(caught.value)


def test_plain_dicts_and_subsets_keep_what_each_query_asks():
    judgments = Judgments({"a": {"1": 1}, "[photo x]": {"2": 4}}, queries={"[photo x]": JudgedQuery(None, "x")})
    assert judged_query({"a": {}}, "a") == JudgedQuery("a")
    part = judgments.subset(["[photo x]", "missing"])
    assert list(part) == ["[photo x]"] and judged_query(part, "[photo x]").kind == "photo"


def test_fractional_grades_keep_their_value_and_negative_ones_count_as_zero(tmp_path):
    """Averaged raters' grades (2.33, 2.67) stay apart; whole grades stay whole; junk (-2) is 0."""
    path = write(tmp_path / "j.jsonl", [{"query": "drill", "id": "1", "grade": 2.6667},
                                        {"query": "drill", "id": "2", "grade": "2.33"},
                                        {"query": "drill", "id": "3", "grade": 3.0},
                                        {"query": "drill", "id": "4", "grade": -2}])
    grades = load_judgments(path)["drill"]
    assert grades == {"1": 2.667, "2": 2.33, "3": 3, "4": 0}
    assert isinstance(grades["3"], int)


def test_trec_qrels_grading_a_pair_twice_differently_is_refused_and_the_same_grade_twice_is_kept(tmp_path):
    topics = tmp_path / "topics.tsv"
    topics.write_text("1\tblue shirt\n2\tkurta\n")
    qrels = tmp_path / "run.qrels"
    qrels.write_text("1 0 p1 2\n1 0 p1 2\n2 0 p9 1\n")
    assert load_judgments(qrels, topics) == {"blue shirt": {"p1": 2}, "kurta": {"p9": 1}}
    qrels.write_text("1 0 p1 2\n2 0 p9 1\n1 0 p1 0\n")
    with pytest.raises(JudgmentsError, match=r"run.qrels line 3: product 'p1' is graded 2 and 0 for the same query"):
        load_judgments(qrels, topics)


def test_a_topics_file_giving_a_qid_two_texts_is_refused_and_the_same_text_twice_is_kept(tmp_path):
    """`1<TAB>shirt` then `1<TAB>shoe`: the later text replaced the earlier silently, so every judgment of
    query 1 was evaluated against "shoe" (NDCG 0, and no word said why)."""
    qrels = tmp_path / "run.qrels"
    qrels.write_text("1 0 p1 2\n1 0 p2 0\n")
    topics = tmp_path / "topics.tsv"
    topics.write_text("1\tblue shirt\n2\tkurta\n1\tblue shirt\n")
    assert load_judgments(qrels, topics) == {"blue shirt": {"p1": 2, "p2": 0}}
    topics.write_text('1\tblue shirt\n{"qid": 1, "text": "running shoe"}\n')
    with pytest.raises(JudgmentsError, match=r"topics.tsv line 2: query 1 is given again with other text "
                                             r"\('running shoe', was 'blue shirt'\)"):
        load_judgments(qrels, topics)
