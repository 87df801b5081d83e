import csv
import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shoplens.common.errors import CatalogError
from shoplens.indexers.catalog import parse_field_map, read_catalog, write_rejects
from tests.helpers import SAMPLE, sample_products


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_reads_the_bundled_sample():
    result = read_catalog(SAMPLE)
    assert len(result.products) == 1500
    assert result.rejects == []
    first = result.products[0]
    assert first.id == "1528"
    assert first.category == ["Apparel", "Topwear", "Jackets"]
    assert first.price == 3999.0
    assert first.image == str(SAMPLE.parent / "images" / "1528.jpg")
    # non-canonical fields are kept as attributes, nested objects flattened, "NA" dropped
    assert first.attributes["gender"] == "Men"
    assert "attributes.Fit" in first.attributes or any(k.startswith("attributes.") for k in first.attributes)
    assert all(value != "NA" for value in first.attributes.values())
    assert first.line == 1


def test_bad_rows_are_reported_with_line_numbers_and_reasons(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", [
        json.dumps({"id": "a", "title": "Good shirt", "price": 10}),
        json.dumps({"title": "no id here"}),
        json.dumps({"id": "b"}),
        "{this is not json",
        json.dumps({"id": "a", "title": "Same id again"}),
        json.dumps({"id": "c", "title": "Bad price", "price": "cheap"}),
        json.dumps({"id": "d", "title": "Negative price", "price": -5}),
        "",
        json.dumps(["not", "an", "object"]),
        json.dumps({"id": "e", "title": "Fine", "price": "1,299.50"}),
    ])
    result = read_catalog(path)
    assert [p.id for p in result.products] == ["a", "e"]
    assert result.products[1].price == 1299.5
    reasons = {r.line: r.reason for r in result.rejects}
    assert reasons[2] == "missing id"
    assert reasons[3] == "missing title"
    assert reasons[4].startswith("invalid JSON")
    assert reasons[5] == "duplicate id (first seen on line 1)"
    assert "not a number" in reasons[6]
    assert "negative" in reasons[7]
    assert "expected a JSON object" in reasons[9]
    assert len(result.rejects) == 7
    rejects_file = tmp_path / "rejects.jsonl"
    write_rejects(rejects_file, result.rejects)
    written = [json.loads(line) for line in rejects_file.read_text().splitlines()]
    assert [w["line"] for w in written] == [2, 3, 4, 5, 6, 7, 9]
    assert written[3]["id"] == "a"


def test_gzip_jsonl(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for row in sample_products(5):
            handle.write(json.dumps(row) + "\n")
    result = read_catalog(path)
    assert [p.id for p in result.products] == [r["id"] for r in sample_products(5)]


def test_csv_with_field_map_and_line_numbers(tmp_path):
    path = tmp_path / "shop.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "productDisplayName", "cost", "masterCategory", "articleType", "colour", "notes"])
        writer.writerow(["s1", "Blue Denim Jacket", "2499", "Apparel", "Jackets", "Blue", "multi\nline note"])
        writer.writerow(["s2", "", "100", "Apparel", "Tshirts", "Red", ""])
        writer.writerow(["s3", "Leather Belt", "abc", "Accessories", "Belts", "Brown", ""])
        writer.writerow(["s4", "Canvas Shoes", "", "Footwear", "Shoes", "White", ""])
    mapping = parse_field_map(["id=sku", "title=productDisplayName", "price=cost", "category=masterCategory,articleType"])
    result = read_catalog(path, mapping)
    assert [p.id for p in result.products] == ["s1", "s4"]
    jacket = result.products[0]
    assert jacket.title == "Blue Denim Jacket"
    assert jacket.price == 2499.0
    assert jacket.category == ["Apparel", "Jackets"]
    assert jacket.attributes == {"colour": "Blue", "notes": "multi\nline note"}
    assert result.products[1].price is None
    # the quoted multi-line cell makes row s2 start on line 4 of the file
    assert {r.line: r.reason for r in result.rejects} == {4: "missing title", 5: "price 'abc' is not a number"}


def test_csv_separated_by_semicolons_or_tabs(tmp_path):
    for name, sep in (("semi.csv", ";"), ("tabs.csv", "\t"), ("tabs.tsv", "\t")):  # .tsv is read as CSV
        path = tmp_path / name
        path.write_text(sep.join(["id", "title", "price"]) + "\n" + sep.join(["1", "Red Shirt", "19,99"]) + "\n",
                        encoding="utf-8")
        product, = read_catalog(path).products
        assert (product.id, product.title, product.price) == ("1", "Red Shirt", 19.99)


@pytest.mark.parametrize("head", ["\n", "\r\n\n", ",,\n", " ; \n"])
def test_a_csv_whose_first_line_names_no_columns_is_refused(tmp_path, head):
    """A blank line (or only separators) above the header was read as a header of no columns, and every row
    was rejected as "row has 2 cells, header has 0"; the file is now refused, saying what line 1 must be."""
    path = tmp_path / "c.csv"
    path.write_text(head + "id,title\n1,Red Shirt\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"header \(line 1\) names no columns.*remove blank lines"):
        read_catalog(path)


@pytest.mark.parametrize("text, price", [("1,299", 1299.0), ("1,299.50", 1299.5), ("$19.99", 19.99),
                                         ("Rs. 999", 999.0), ("₹ 999", 999.0), ("19,99 EUR", 19.99), ("12 €", 12.0),
                                         # a shop in India groups by lakhs; a European one writes 1.299,50 (these
                                         # were rejected as "not a number")
                                         ("₹ 1,00,000", 100000.0), ("Rs. 12,34,567.50", 1234567.5),
                                         ("1.299,50 €", 1299.5), ("EUR 1.234.567,8", 1234567.8)])
def test_prices_written_with_currency_and_separators(tmp_path, text, price):
    path = write_lines(tmp_path / "c.jsonl", [json.dumps({"id": "1", "title": "Lamp", "price": text})])
    assert read_catalog(path).products[0].price == price


@pytest.mark.parametrize("text", ["abc", "EUR", "10-20", "1.2.3", "NaN", "1,00,00", "1,2,345", "1.299,5.0"])
def test_prices_that_are_not_one_number_are_rejected(tmp_path, text):
    path = write_lines(tmp_path / "c.jsonl", [json.dumps({"id": "1", "title": "Lamp", "price": text})])
    result = read_catalog(path)
    assert not result.products and "price" in result.rejects[0].reason


def test_parquet(tmp_path):
    rows = sample_products(4)
    table = pa.table({
        "id": [int(r["id"]) for r in rows],
        "title": [r["title"] for r in rows],
        "price": [float(r["price"]) for r in rows],
        "category": [r["category"] for r in rows],
        "rating": [1, None, 0, 1],
    })
    path = tmp_path / "c.parquet"
    pq.write_table(table, path)
    result = read_catalog(path)
    assert [p.id for p in result.products] == [r["id"] for r in rows]  # integer ids become strings
    assert result.products[0].category == rows[0]["category"]
    assert "rating" not in result.products[1].attributes
    assert result.products[0].attributes["rating"] == 1


def test_category_string_paths_and_relative_images(tmp_path):
    (tmp_path / "img").mkdir()
    path = write_lines(tmp_path / "c.jsonl", [
        json.dumps({"id": 1, "title": "T", "category": "Apparel > Topwear > Shirts", "image": "img/1.jpg"}),
        json.dumps({"id": 2, "title": "U", "category": "Shoes", "image": "/abs/2.jpg"}),
    ])
    result = read_catalog(path)
    assert result.products[0].category == ["Apparel", "Topwear", "Shirts"]
    assert result.products[0].image == str(tmp_path / "img" / "1.jpg")
    assert result.products[1].category == ["Shoes"]
    assert result.products[1].image == "/abs/2.jpg"


@pytest.mark.parametrize("name, message", [
    ("missing.jsonl", "does not exist"),
    ("catalog.xml", "unsupported format"),
])
def test_unusable_files_are_clear_errors(tmp_path, name, message):
    if name.endswith(".xml"):
        (tmp_path / name).write_text("<x/>")
    with pytest.raises(CatalogError, match=message):
        read_catalog(tmp_path / name)


@pytest.mark.parametrize("spec, named", [("title=Name", "'Name'"), ("title=name id=sku", "'name id=sku'"),
                                         ("title=nme,label", "'nme', 'label'")])
def test_a_map_from_a_column_the_file_lacks_names_that_column(tmp_path, spec, named):
    """`--map title=Name` on a file whose column is `name` was answered "no row has 'title' ... e.g.
    --map title=name": a suggestion of what the user had (almost) typed; the error now names the mapped
    column the file does not have, and lists the columns it does."""
    path = tmp_path / "c.csv"
    path.write_text("sku,name\n1,Red Shirt\n2,Blue Shirt\n", encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        read_catalog(path, parse_field_map(["id=sku", spec]))
    message = str(caught.value)
    assert f"--map {spec} names" in message
    assert named in message and "which no row has" in message and "columns are: sku, name" in message


@pytest.mark.parametrize("name, text, what", [
    ("array.jsonl", '[{"id": "1", "title": "Red Shirt"}, {"id": "2", "title": "Blue Shirt"}]\n', "one JSON array"),
    ("pretty-array.jsonl", json.dumps([{"id": "1", "title": "Red Shirt"}], indent=2), "one JSON array"),
    ("pretty.jsonl", json.dumps({"id": "1", "title": "Red Shirt"}, indent=2) + "\n", "spread over several lines"),
    ("products.json", '[{"id": "1", "title": "Red Shirt"}]', "reads JSON Lines"),
    ("products.json.gz", None, "gunzip -c products.json.gz | jq"),
])
def test_json_that_is_not_json_lines_says_what_it_is_and_how_to_convert(tmp_path, name, text, what):
    """A JSON array or a pretty-printed object had every line rejected ("invalid JSON: Expecting value at
    column 2" on "[", "Extra data" on each key), ending in "no valid products (6 rejected)"; a .json file was
    told to "use .jsonl", and renamed, failed that way. The file is now refused as what it is, with the
    conversion to run, before anything is written."""
    path = tmp_path / name
    if text is None:
        path.write_bytes(gzip.compress(b'[{"id": "1", "title": "Red Shirt"}]'))
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match="JSON Lines") as caught:
        read_catalog(path)
    assert what in str(caught.value) and "jq -c" in str(caught.value), str(caught.value)
    good = write_lines(tmp_path / "good.jsonl", ['{"id": "1", "title": "Red Shirt"}', "[1]"])
    assert len(read_catalog(good).products) == 1  # a list on a later line of a good file is a rejected row


def test_an_image_path_holding_a_nul_is_rejected_saying_so(tmp_path):
    """The reason was "image must be a file path (text), got str" for a path that is text; it now names
    the NUL character, the one thing wrong with it."""
    path = write_lines(tmp_path / "c.jsonl", [json.dumps({"id": "1", "title": "Lamp", "image": "a\u0000b.jpg"}),
                                              json.dumps({"id": "2", "title": "Desk", "image": 5})])
    reasons = [r.reason for r in read_catalog(path).rejects]
    assert reasons[0] == "image path a\\x00b.jpg holds a NUL character, which no file name can; give the file's path"
    assert reasons[1] == "image must be a file path (text), got int"


def test_field_map_errors():
    with pytest.raises(CatalogError, match="canonical=column"):
        parse_field_map(["title"])
    with pytest.raises(CatalogError, match="unknown canonical field"):
        parse_field_map(["name=title"])
    with pytest.raises(CatalogError, match="one column only"):
        parse_field_map(["price=a,b"])


@pytest.mark.parametrize("name, encode, encoding", [
    ("bom.jsonl", lambda t: t.encode("utf-16"), "UTF-16"),  # a byte-order mark
    ("plain.jsonl", lambda t: t.encode("utf-16-le"), "UTF-16"),  # none: NUL bytes between the characters
    ("wide.csv", lambda t: t.encode("utf-16-be"), "UTF-16"),
    ("u32.jsonl", lambda t: t.encode("utf-32"), "UTF-32"),
    ("packed.jsonl.gz", lambda t: gzip.compress(t.encode("utf-16")), "UTF-16"),
])
def test_a_utf16_or_utf32_catalog_is_one_error_naming_its_encoding(tmp_path, name, encode, encoding):
    text = "id,title\n1,Red Shirt\n" if ".csv" in name else '{"id": "1", "title": "Red Shirt"}\n{"id": "2", "title": "Cap"}\n'
    path = tmp_path / name
    path.write_bytes(encode(text))
    with pytest.raises(CatalogError, match=f"{name} is {encoding} text, not UTF-8; save it as UTF-8") as caught:
        read_catalog(path)
    assert "iconv -f " + encoding in str(caught.value) and ("gunzip -c" in str(caught.value)) == name.endswith(".gz")


JPEG = SAMPLE.parent / "images" / "1528.jpg"


@pytest.mark.parametrize("column, values, column_type, named, fix", [
    ("thumb", [JPEG.read_bytes()[:64]] * 3, pa.binary(), "holds binary data", "drop that column"),
    ("image", [{"bytes": JPEG.read_bytes()[:64], "path": "a.jpg"}] * 3, None, "'image.bytes' holds binary data",
     "save each photo as a file"),
    ("shelf_life", [1, 2, 3], pa.duration("s"), "holds a duration", "drop that column"),
    ("hash", [2 ** 64 - 1] * 3, pa.uint64(), "does not fit in 64 bits", "drop that column"),
])
def test_a_parquet_column_no_row_can_hold_is_one_error_naming_it(tmp_path, column, values, column_type, named, fix):
    """A column of a type no catalog value can be (image bytes, a Hugging Face image struct, durations,
    unsigned hashes past 2^63) had every row rejected with the same reason, then "changes nothing (3 row(s)
    rejected)"; the file is now one error naming the column, its reason and what to do."""
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"id": ["1", "2", "3"], "title": ["Red Shirt", "Cap", "Lamp"],
                             column: pa.array(values, column_type)}), path)
    with pytest.raises(CatalogError) as caught:
        read_catalog(path)
    message = str(caught.value)
    assert message.startswith(f"c.parquet has no valid products: every row was rejected for column {column!r} (")
    assert named in message and fix in message and "\n" not in message


def test_a_json_field_no_row_can_hold_is_the_same_error_and_one_bad_value_stays_a_row_reject(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", ['{"id": "1", "title": "Cap", "w": Infinity}',
                                              '{"id": "2", "title": "Hat", "w": -Infinity}'])
    with pytest.raises(CatalogError, match="every row was rejected for column 'w'"):
        read_catalog(path)
    path = write_lines(tmp_path / "d.jsonl", ['{"id": "1", "title": "Cap", "w": Infinity}',
                                              '{"id": "2", "title": "Hat", "w": 2}'])
    result = read_catalog(path)
    assert [p.id for p in result.products] == ["2"] and "finite" in result.rejects[0].reason


def test_a_parquet_map_column_is_read_as_an_object(tmp_path):
    """A map column came to Python as a list of pairs, which attributes drop: every value was lost unseen.
    It is now an object, flattened with dots like a JSON object."""
    path = tmp_path / "c.parquet"
    specs = pa.array([[("colour", "red"), ("size", "M")], []], pa.map_(pa.string(), pa.string()))
    pq.write_table(pa.table({"id": ["1", "2"], "title": ["Red Shirt", "Cap"], "specs": specs}), path)
    products = read_catalog(path).products
    assert products[0].attributes == {"specs.colour": "red", "specs.size": "M"} and products[1].attributes == {}


VARIANTS = [{"size": "M", "stock": 3, "colour": {"name": "red"}}, {"size": "L"}]
FLAT_VARIANTS = {"variants.size": ["M", "L"], "variants.stock": [3], "variants.colour.name": ["red"]}


def test_a_list_of_objects_is_flattened_like_an_object_in_every_format(tmp_path):
    """A field holding a list of objects (product variants) was dropped unseen from the attributes in JSON Lines
    and Parquet (and kept as JSON text in a CSV): each of its fields is now the list of its values, as a filter
    reads it (variants.size=M)."""
    jsonl = write_lines(tmp_path / "c.jsonl", [json.dumps({"id": "1", "title": "Shirt", "variants": VARIANTS,
                                                           "sizes": [["S", "M"], ["L"]]})])
    assert read_catalog(jsonl).products[0].attributes == {**FLAT_VARIANTS, "sizes": ["S", "M", "L"]}
    parquet = tmp_path / "c.parquet"
    pq.write_table(pa.table({"id": ["1"], "title": ["Shirt"], "variants": [VARIANTS]}), parquet)
    assert read_catalog(parquet).products[0].attributes == FLAT_VARIANTS  # a list of structs
    with open(tmp_path / "c.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["id", "title", "variants", "note", "category"],
                                      ["1", "[New] Shirt", json.dumps(VARIANTS), "[sale] {x}", '["Tops"]']])
    product = read_catalog(tmp_path / "c.csv").products[0]
    assert product.attributes == {**FLAT_VARIANTS, "note": "[sale] {x}"}
    assert (product.title, product.category) == ("[New] Shirt", ['["Tops"]'])  # canonical fields as written


def test_a_patch_naming_an_object_or_list_field_replaces_all_it_flattened_to(tmp_path):
    stored = {"id": "1", "title": "Shirt", "attributes": {**FLAT_VARIANTS, "specs.fit": "slim", "gender": "Men"}}
    path = write_lines(tmp_path / "d.jsonl", [json.dumps({"id": "1", "variants": [{"size": "S"}], "specs": None})])
    product = read_catalog(path, existing=lambda product_id: stored).products[0]
    assert product.attributes == {"variants.size": ["S"], "gender": "Men"}


def test_a_csv_typed_with_a_space_after_each_comma_reads_as_without(tmp_path):
    """'id, title, price' named the columns ' title' and ' price': every row was 'missing title' (and the hint
    offered '--map title= title', which a map strips to nothing); '1, "Shirt, blue", 10' was cut at the quoted
    comma into five cells. A space after a separator, and around a header name, is no part of it."""
    path = write_lines(tmp_path / "typed.csv", ["id, title , price, colour", '1, "Shirt, blue", 10, red', "2, Cap, 5,"])
    result = read_catalog(path)
    assert [(p.id, p.title, p.price, p.attributes) for p in result.products] == [
        ("1", "Shirt, blue", 10.0, {"colour": "red"}), ("2", "Cap", 5.0, {})]
    assert result.rejects == []
    with pytest.raises(CatalogError, match=r"names column\(s\) 'id' more than once"):
        read_catalog(write_lines(tmp_path / "twice.csv", ["id,title, id", "1,Cap,2"]))
