"""A sweep of bad requests through the HTTP API, by class: each is a 4xx whose JSON says in one line what
to send instead; never a 5xx, never a traceback, and a refused POST /events writes nothing."""

from __future__ import annotations

import base64
import io
import json

import pytest

from tests.helpers import SAMPLE

PHOTO = (SAMPLE.parent / "images" / "1528.jpg").read_bytes()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def huge_png(side: int = 30000) -> bytes:
    """900 megapixels (PIL refuses it), or 100 (PIL only warns: ShopLens's own limit refuses it)."""
    from tests.fuzzing import png_header
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        return png_header(Path(folder) / "big.png", side, side).read_bytes()


def strip_png() -> bytes:
    """20000x1 pixels: resized to the model's 224 px it was 0 pixels high (a 500 before the aspect limit)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (20000, 1)).save(buffer, "PNG")
    return buffer.getvalue()


def spacer_png() -> bytes:
    """1x1 pixels, a shop's placeholder: was searched as a photo (200)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "PNG")
    return buffer.getvalue()


JSON = {"content-type": "application/json"}
POSTS = [  # (class, raw body, headers)
    ("malformed JSON", b"{", JSON), ("malformed JSON", b"", JSON), ("malformed JSON", b"\xff\xfe", JSON),
    ("malformed JSON", b'{"q": "shirt",}', JSON), ("malformed JSON", b"{" * 100_000, JSON),
    ("not an object", b"[]", JSON), ("not an object", b'"shirt"', JSON), ("not an object", b"null", JSON),
    ("not an object", b"5", JSON), ("key given twice", b'{"q": "shirt", "q": "shoes"}', JSON),
    ("key given twice", b'{"q": "shirt", "k": 5, "k": 50}', JSON),
    ("content type", b"q=shirt", {"content-type": "application/x-www-form-urlencoded"}),
    ("content type", b"shirt", {"content-type": "application/xml"}),
    ("content type", b"--x\r\nbroken", {"content-type": "multipart/form-data; boundary=x"}),
    ("content type", b"{}", {"content-type": "multipart/form-data"}),
]
BODIES = [  # (class, JSON body)
    ("k", {"q": "shirt", "k": 0}), ("k", {"q": "shirt", "k": -1}), ("k", {"q": "shirt", "k": 10 ** 12}),
    ("k", {"q": "shirt", "k": "ten"}), ("k", {"q": "shirt", "k": 1.5}), ("k", {"q": "shirt", "k": None}),
    ("offset", {"q": "shirt", "offset": -10}), ("offset", {"q": "shirt", "offset": 3, "k": 10}),
    ("offset", {"q": "shirt", "offset": 10 ** 9}),
    ("candidates", {"q": "shirt", "candidates": 0}), ("rrf_k", {"q": "shirt", "rrf_k": -1}),
    ("weights", {"q": "shirt", "weights": [-1, 1]}), ("weights", {"q": "shirt", "weights": [1]}),
    ("weights", {"q": "shirt", "weights": ["a", "b"]}), ("weights", {"q": "shirt", "weights": [1e400, 1]}),
    ("query", {}), ("query", {"q": ""}), ("query", {"q": "   "}), ("query", {"q": 5}), ("query", {"q": ["a"]}),
    ("query", {"q": "a" * 5000}), ("query", {"q": None}),
    ("unknown field", {"q": "shirt", "limit": 5}), ("unknown field", {"q": "shirt", "": 1}),
    ("enum", {"q": "shirt", "mode": "magic"}), ("enum", {"q": "shirt", "fusion": "magic"}),
    ("enum", {"q": "shirt", "normalization": "magic"}),
    ("other fusion's option", {"q": "shirt", "fusion": "rrf", "normalization": "zscore"}),
    ("other fusion's option", {"q": "shirt", "fusion": "wsum", "rrf_k": 30}),
    ("filter", {"q": "shirt", "filters": ["price<=abc"]}), ("filter", {"q": "shirt", "filters": ["nosuchfield=1"]}),
    ("filter", {"q": "shirt", "filters": [""]}), ("filter", {"q": "shirt", "filters": ["brand="]}),
    ("filter", {"q": "shirt", "filters": ["price<=nan"]}), ("filter", {"q": "shirt", "filters": "price<=3"}),
    ("filter", {"q": "shirt", "filters": [5]}), ("filter", {"q": "shirt", "filters": ["x=1"] * 50}),
    ("filter", {"q": "shirt", "filters": ["brand=Ni\u001bke"]}), ("filter", {"q": "shirt", "filters": ["title>3"]}),
    ("image", {"image": "%%%not base64%%%"}), ("image", {"image": b64(b"not an image")}),
    ("image", {"image": ""}), ("image", {"image": b64(PHOTO[:300])}), ("image", {"image": b64(huge_png())}),
    ("image", {"image": b64(huge_png(10000))}), ("image", {"image": b64(strip_png())}),
    ("image", {"image": 5}), ("image", {"image": "data:image/jpeg;base64,"}), ("image", {"image": b64(spacer_png())}),
    # a JSON body is typed: a value of another JSON type is a 422, not coerced ("k": true was k=1)
    ("wrong JSON type", {"q": "shirt", "k": True}), ("wrong JSON type", {"q": "shirt", "k": "5"}),
    ("wrong JSON type", {"q": "shirt", "k": 5.0}), ("wrong JSON type", {"q": "shirt", "offset": False}),
    ("wrong JSON type", {"q": "shirt", "explain": "yes"}), ("wrong JSON type", {"q": "shirt", "rerank": 1}),
    ("wrong JSON type", {"q": "shirt", "rrf_k": True}), ("wrong JSON type", {"q": "shirt", "weights": [True, False]}),
    ("wrong JSON type", {"q": "shirt", "candidates": "200"}),
    # query text with nothing to search for, or control characters
    ("query text", {"q": "!!!"}), ("query text", {"q": "\u200b"}), ("query text", {"q": "a\u0000b"}),
    ("query text", {"q": "red \u001b[31m shirt"}), ("query text", {"q": "...", "image": b64(PHOTO)}),
]
GETS = [  # (class, query string)
    ("k", "q=shirt&k=0"), ("k", "q=shirt&k=-1"), ("k", "q=shirt&k=abc"), ("k", "q=shirt&k=99999999999999999999999"),
    ("offset", "q=shirt&offset=-1"), ("query", ""), ("query", "q="), ("query", "q=" + "a" * 5000),
    ("filter", "q=shirt&filter=price<%3Dabc"), ("filter", "q=shirt&filter=nosuch%3D1"), ("filter", "q=shirt&filter="),
    ("weights", "q=shirt&weights=a,b"), ("weights", "q=shirt&weights=nan,1"), ("weights", "q=shirt&weights=-1,1"),
    ("enum", "q=shirt&mode=magic"), ("rrf_k", "q=shirt&rrf_k=nan"),
    ("repeated", "q=shirt&k=5&k=6"), ("repeated", "q=shirt&q=shoes"), ("repeated", "q=shirt&weights=1,1&weights=1,2"),
    ("unknown parameter", "q=shirt&limit=5"), ("unknown parameter", "q=shirt&image=aGk"),
    ("query text", "q=%21%21%21"), ("query text", "q=%00"), ("query text", "q=%FF%FE"), ("query text", "q=%E2%80%8B"),
]


def assert_one_line_4xx(response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text
    body = response.json()
    message = body.get("error") or body.get("detail")
    assert isinstance(message, str) and message and "\n" not in message, body


@pytest.mark.parametrize("category, raw, headers", POSTS, ids=[f"{c}:{r[:20]!r}" for c, r, _ in POSTS])
def test_bad_post_bodies(client, category, raw, headers):
    assert_one_line_4xx(client.post("/search", content=raw, headers=headers))


@pytest.mark.parametrize("category, body", BODIES, ids=[f"{c}:{json.dumps(b)[:40]}" for c, b in BODIES])
def test_bad_search_fields(client, category, body):
    assert_one_line_4xx(client.post("/search", content=json.dumps(body), headers=JSON))


@pytest.mark.parametrize("category, query", GETS, ids=[f"{c}:{q[:30]}" for c, q in GETS])
def test_bad_get_parameters(client, category, query):
    assert_one_line_4xx(client.get("/search?" + query))


def test_bad_uploads(client):
    for files in ({"image": ("x.jpg", io.BytesIO(b"not an image"), "image/jpeg")},
                  {"image": ("x.jpg", io.BytesIO(b""), "image/jpeg")},
                  {"photo": ("x.jpg", io.BytesIO(PHOTO), "image/jpeg")},
                  {"image": ("x.jpg", io.BytesIO(PHOTO[:300]), "image/jpeg")}):
        assert_one_line_4xx(client.post("/search", files=files, data={"k": "5"}))
    assert_one_line_4xx(client.post("/search", files={"image": ("x.jpg", io.BytesIO(PHOTO), "image/jpeg")},
                                    data={"k": "0"}))


def test_huge_bodies_are_413(client):
    response = client.post("/search", content=b'{"q": "' + b"a" * (9 * 2 ** 20) + b'"}', headers=JSON)
    assert response.status_code == 413 and "\n" not in response.json()["error"]


@pytest.mark.parametrize("raw, headers", [
    (b"{", JSON), (b"[]", JSON), (b"\xff", {"content-type": "application/x-ndjson"}),
    (b'[{"ts": 1, "type": "click", "id": "\\ud800"}]', JSON), (b"[" * 5000 + b"]" * 5000, JSON),
    (b'[{"ts": ' + b"9" * 5000 + b', "type": "click", "id": "x"}]', JSON),
    (b'{"ts": 1, "type": "click", "id": "\\udc00"}\n', {"content-type": "application/x-ndjson"}),
    (b'[{"ts": "x", "type": "teleport", "id": null}]', JSON), (b"[1, 2]", JSON), (b"null", JSON),
])
def test_bad_events_write_nothing(client, raw, headers):
    inbox = client.app.state.shoplens.settings.inbox
    listing = lambda: sorted(p.name for p in inbox.iterdir()) if inbox.exists() else []  # noqa: E731
    before = listing()
    assert_one_line_4xx(client.post("/events", content=raw, headers=headers))
    assert listing() == before


def test_a_thumbnail_size_given_twice_is_422(client):
    product = client.get("/search", params={"q": "shirt", "k": 1}).json()["results"][0]["id"]
    assert_one_line_4xx(client.get(f"/products/{product}/image?size=64&size=512"))
    assert_one_line_4xx(client.get(f"/products/{product}/image?size=64&width=9"))


def test_unknown_product_is_404(client):
    response = client.get("/products/" + "x" * 400)
    assert response.status_code == 404 and "\n" not in response.json()["error"]


@pytest.mark.parametrize("raw", [b'{"q": "caf\xe9 shirt"}', '{"q": "shirt"}'.encode("utf-16"),
                                 '{"q": "shirt"}'.encode("utf-16-be")])
def test_a_body_in_another_encoding_is_400_saying_utf8(client, raw):
    """A Latin-1 or UTF-16 body was "malformed JSON: str is not valid UTF-8: surrogates not allowed: line 1
    column 1 (char 0)" (orjson's words, and a wrong position); every body is now read as UTF-8 text in one
    place, and refused saying so, for searches and events alike."""
    for path, headers in (("/search", JSON), ("/events", JSON), ("/events", {"content-type": "application/x-ndjson"})):
        response = client.post(path, content=raw, headers=headers)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"].startswith("the body is not UTF-8 text (byte "), response.text


def test_a_utf8_byte_order_mark_is_read_past(client):
    """Like every file ShopLens reads, a body saved with a UTF-8 BOM (as some Windows tools write JSON) is
    read; it was "malformed JSON: UTF-8 byte order mark (BOM) is not supported"."""
    response = client.post("/search", content=b'\xef\xbb\xbf{"q": "shirt", "k": 2}', headers=JSON)
    assert response.status_code == 200 and len(response.json()["results"]) == 2, response.text


def test_an_ndjson_event_holding_a_line_separator_is_one_event(client):
    """NDJSON lines end at "\\n"; str.splitlines() also ended one at U+2028 or U+0085, which a JSON
    string may hold as it is, so one good event became two broken ones and the request a 422. A "\\r\\n"
    line end is read too. The events are validated, not written: an unknown id keeps the inbox as it was."""
    inbox = client.app.state.shoplens.settings.inbox
    listing = lambda: sorted(p.name for p in inbox.iterdir()) if inbox.exists() else []  # noqa: E731
    before = listing()
    body = ('{"ts": 1, "type": "click", "id": "no-such-product", "query": "red\u2028shirt\u0085"}\r\n'
            '{"ts": 2, "type": "click", "id": "no-such-product"}\r\n').encode()
    response = client.post("/events", content=body, headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 422, response.text
    assert [r["event"] for r in response.json()["rejects"]] == [1, 2], response.text
    assert all("unknown product id" in r["reason"] for r in response.json()["rejects"]), response.text
    assert listing() == before


@pytest.mark.parametrize("query", ["k=5", "q=shirt", "explain=true&k=5"])
def test_options_in_a_posts_query_string_are_422_not_ignored(client, query):
    """`POST /search?k=5` with a JSON body answered with k=10: FastAPI ignored the query string, so the
    client never learnt its option had no effect. The POST's options live in its body; a query string is
    now a 422 that says so, for JSON and multipart bodies alike."""
    for kwargs in ({"content": json.dumps({"q": "shirt"}), "headers": JSON}, {"data": {"q": "shirt"},
                                                                             "files": {"image": ("x.jpg", PHOTO)}}):
        response = client.post("/search?" + query, **kwargs)
        assert_one_line_4xx(response)
        assert response.status_code == 422 and "not the query string" in response.json()["error"], response.text


@pytest.mark.parametrize("field, values", [("k", ["5", "6"]), ("q", ["shirt", "shoes"]), ("explain", ["true", "false"])])
def test_a_multipart_field_given_twice_is_422(client, field, values):
    """Like a JSON key or a GET parameter given twice, a form field given twice is refused; the last value
    was kept silently (k=5 and k=6 answered 6 results). `filter` repeats, as in GET."""
    fields = {"q": "shirt", "filter": ["price>=1", "price<=100000"], field: values}
    response = client.post("/search", data=fields, files={"image": ("x.jpg", PHOTO)})
    assert_one_line_4xx(response)
    assert f"form field {field!r} is given more than once" in response.json()["error"], response.text
    fields[field] = values[0]
    response = client.post("/search", data={**fields, "k": "3"}, files={"image": ("x.jpg", PHOTO)})
    assert response.status_code == 200 and len(response.json()["results"]) == 3, response.text


@pytest.mark.parametrize("how, value, shown", [
    ("get", "10000000000000000000000", '"10000000000000000000000"'), ("get", "abc", '"abc"'), ("get", "1.5", '"1.5"'),
    ("get", "0", '"0"'), ("get", "101", '"101"'), ("post", 10 ** 22, None), ("post", 1.5, "1.5"),
    ("post", "5", '"5"'), ("post", True, "true"), ("post", None, "null"), ("post", 0, "0"), ("form", "1e30", '"1e30"'),
])
def test_a_k_that_is_no_whole_number_in_range_says_the_range(client, how, value, shown):
    """k past 2^64, k as text, 1.5 or true was answered in pydantic's words ("Input should be a valid integer,
    unable to parse string as an integer"): the type without the range, or the range without the type."""
    if how == "get":
        response = client.get(f"/search?q=shirt&k={value}")
    elif how == "post":
        response = client.post("/search", content=json.dumps({"q": "shirt", "k": value}), headers=JSON)
    else:
        response = client.post("/search", data={"q": "shirt", "k": value}, files={"image": ("x.jpg", PHOTO)})
    assert response.status_code == 422, response.text
    message = response.json()["error"]
    assert message.startswith("k: must be a whole number from 1 to 100 (got "), message
    assert shown is None or message.endswith(f"(got {shown})"), message


def test_other_number_fields_say_their_range_too(client):
    for query, message in (("offset=-1", "offset: must be a whole number from 0 to 1000"),
                           ("candidates=1e9", "candidates: must be a whole number from 1 to 1000"),
                           ("rrf_k=0", "rrf_k: must be a number above 0 and at most 10000")):
        response = client.get("/search?q=shirt&" + query)
        assert response.status_code == 422 and response.json()["error"].startswith(message), response.text
    product = client.get("/search", params={"q": "shirt", "k": 1}).json()["results"][0]["id"]
    for size in ("abc", "1e30"):
        response = client.get(f"/products/{product}/image?size={size}")
        assert response.json()["error"] == f'size: must be one of 64, 128, 256, 512 (got "{size}")', response.text


WEIGHTS_RULE = "weights: must be two or three numbers from 0 to 100, not all 0, lexical,dense[,native], such as "


@pytest.mark.parametrize("how, value, shown", [
    ("post", [-1, 1], "[-1, 1]"), ("post", [101, 1], "[101, 1]"), ("post", [1], "[1]"), ("post", ["a", "b"], '["a", "b"]'),
    ("post", [1, 2, 3, 4], "[1, 2, 3, 4]"), ("post", [True, 1], "[true, 1]"), ("post", [0, 0], "[0, 0]"),
    ("post", "1,1", "1,1"), ("get", "nan,1", "nan,1"), ("get", "101,1", "101,1"), ("get", "0,0", "0,0"),
    ("get", "a,b", "a,b"), ("form", "-1,1", "-1,1"), ("form", "inf,1", "inf,1"),
])
def test_bad_weights_say_the_rule_in_one_line(client, how, value, shown):
    """weights out of range were pydantic's words, one per union branch: "weights.0: Input should be less than or
    equal to 100 (and 2 more problem(s))", the same for nan in a query string; [0, 0] was the engine's rule,
    "from 0 to 1e+06", where the API's bound is 100. Every front now names the rule and the value sent."""
    if how == "get":
        response = client.get("/search", params={"q": "shirt", "weights": value})
    elif how == "post":
        response = client.post("/search", content=json.dumps({"q": "shirt", "weights": value}), headers=JSON)
    else:
        response = client.post("/search", data={"q": "shirt", "weights": value}, files={"image": ("x.jpg", PHOTO)})
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith(WEIGHTS_RULE), response.text
    assert response.json()["error"].endswith(f"(got {shown})"), response.text


@pytest.mark.parametrize("how, field, value, shown", [
    ("get", "rerank", "maybe", '"maybe"'), ("get", "explain", "2", '"2"'), ("post", "explain", "yes", '"yes"'),
    ("post", "rerank", 1, "1"), ("form", "explain", "sure", '"sure"'),
])
def test_a_yes_no_field_given_something_else_says_true_or_false(client, how, field, value, shown):
    """rerank=maybe was pydantic's "rerank: Input should be a valid boolean, unable to interpret input"."""
    if how == "get":
        response = client.get("/search", params={"q": "shirt", field: value})
    elif how == "post":
        response = client.post("/search", content=json.dumps({"q": "shirt", field: value}), headers=JSON)
    else:
        response = client.post("/search", data={"q": "shirt", field: value}, files={"image": ("x.jpg", PHOTO)})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == f"{field}: must be true or false (got {shown})", response.text


def test_a_product_record_takes_no_query_parameters(client):
    """GET /products/ID?fields=title answered the whole record: the parameter was ignored unseen."""
    product = client.get("/search", params={"q": "shirt", "k": 1}).json()["results"][0]["id"]
    response = client.get(f"/products/{product}?fields=title")
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "unknown query parameter 'fields'; this endpoint takes none"
    assert client.get(f"/products/{product}").status_code == 200
    response = client.get(f"/products/{product}/image?size=7")
    assert response.json()["error"] == "size: must be one of 64, 128, 256, 512 (got 7)", response.text


def test_an_uploaded_heic_photo_is_named_as_such(client):
    """An iPhone's HEIC upload was "image is not a readable picture; send a JPEG, PNG or WebP photo"."""
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200
    for kwargs in ({"files": {"image": ("IMG_0001.HEIC", heic, "image/heic")}},
                   {"content": json.dumps({"image": b64(heic)}), "headers": JSON}):
        response = client.post("/search", **kwargs)
        assert response.status_code == 422, response.text
        assert "is a HEIC/HEIF photo (an iPhone's default format), which ShopLens cannot read; save it as JPEG or PNG" \
            in response.json()["error"], response.text


@pytest.mark.parametrize("how, field, value, message", [
    ("post", "q", "a" * 1_000_000, "q: must be at most 1,000 characters (got 1,000,000)"),
    ("get", "q", "a" * 1001, "q: must be at most 1,000 characters (got 1,001)"),
    ("post", "filters", ["price<=1"] * 30, "filters: must be at most 20 items (got 30)"),
])
def test_text_or_a_list_too_long_says_its_length(client, how, field, value, message):
    """A 1 MB query was pydantic's "q: String should have at most 1000 characters": the rule, not what was sent."""
    response = client.get("/search", params={field: value}) if how == "get" else \
        client.post("/search", content=json.dumps({"q": "shirt", field: value}), headers=JSON)
    assert response.status_code == 422 and response.json()["error"] == message, response.text
