"""Derived photo and text + photo judgments on a small catalog: the product in the photo first, then the same
type and colour, then the same type; every line says its kind and source; each kind is split on its own."""

import json

from shoplens.benchmarks import devdata
from shoplens.indexers.catalog import read_catalog
from shoplens.rerank.judgments import judged_query, load_judgments, split_by_kind
from tests.helpers import sample_products, write_catalog


def small_catalog(tmp_path) -> devdata.Catalog:
    path = write_catalog(tmp_path / "c.jsonl", sample_products(300))
    return devdata.Catalog(read_catalog(path).products, seed=7)


def test_photo_judgments_grade_the_product_then_type_and_colour_then_type(tmp_path):
    catalog = small_catalog(tmp_path)
    items = devdata.generate_photo_queries(catalog, 20, seed=1)
    assert len(items) == 20 and len({q.intents["product"] for q, _ in items}) == 20
    for query, grades in items:
        seed = catalog.ids.index(query.intents["product"])
        assert query.kind == "photo" and query.text == "" and query.image == catalog.products[seed].image
        assert grades[catalog.ids[seed]] == (3, 4)
        for pid, (match, grade) in grades.items():
            i = catalog.ids.index(pid)
            assert catalog.types[i] == catalog.types[seed]  # other types are not relevant (unlisted: 0)
            if pid == catalog.ids[seed]:
                continue
            same_colour = catalog.colours[i] == catalog.colours[seed] and catalog.colours[seed] is not None
            assert (match, 1 <= grade <= 3) == (2, True) if same_colour else (match, grade) == (1, 1)
        assert len(grades) == len(catalog.by_type[catalog.types[seed]])


def test_text_photo_judgments_keep_the_text_grades_below_the_product(tmp_path):
    catalog = small_catalog(tmp_path)
    items = devdata.generate_photo_queries(catalog, 15, seed=2, with_text=True)
    for query, grades in items:
        assert query.kind == "text+photo" and query.text and query.image
        product = query.intents["product"]
        assert grades[product] == (3, 4)
        assert all(grade <= 3 for pid, (_, grade) in grades.items() if pid != product)
        text_grades = devdata.judge(catalog, query)
        assert set(grades) == set(text_grades) | {product}


def test_judgment_files_record_kind_and_source_and_split_each_kind(tmp_path):
    catalog = small_catalog(tmp_path)
    items = devdata.generate_queries(catalog, 40, seed=1) + devdata.generate_photo_queries(catalog, 40, seed=1)
    splits = devdata.split_by_kind(items, seed=3)
    for name in ("train", "validation", "test", "log"):
        kinds = {q.kind for q, _ in splits[name]}
        assert kinds == {"text", "photo"}, name  # each split holds both kinds
    devdata.write_judgments(tmp_path / "j.jsonl", splits["train"])
    rows = [json.loads(line) for line in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert {row["source"] for row in rows} == {"derived"} and {row["kind"] for row in rows} == {"text", "photo"}
    assert all(("query" in row) == (row["kind"] == "text") for row in rows)
    judged = load_judgments(tmp_path / "j.jsonl")
    assert {kind: len(part) for kind, part in split_by_kind(judged).items()} == \
        {kind: sum(1 for q, _ in splits["train"] if q.kind == kind) for kind in ("text", "photo")}
    photo_key = next(key for key in judged if judged_query(judged, key).kind == "photo")
    assert max(judged[photo_key].values()) == 4


def test_photo_sessions_name_the_photo_in_their_events(tmp_path):
    catalog = small_catalog(tmp_path)
    items = devdata.generate_photo_queries(catalog, 5, seed=1)
    shown = {q.key: [pid for pid, _ in sorted(g.items(), key=lambda kv: -kv[1][1])][:10] for q, g in items}
    events = devdata.simulate_sessions(catalog, items, lambda query: shown[query.key], 200, seed=1)
    assert events and all("image" in e and "query" not in e for e in events)
    assert {e["image"] for e in events} <= {q.image for q, _ in items}
    assert any(e["type"] == "click" for e in events)
