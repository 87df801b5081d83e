"""The HTTP API through the ASGI test client: every endpoint, every error path, response schemas."""

from __future__ import annotations

import base64
import io
import json

import pytest
from typer.testing import CliRunner

from shoplens.rerank.events import read_events
from shoplens.rerank.features import FEATURE_NAMES
from shoplens.service.schemas import MAX_K, SearchResponseModel
from tests.helpers import SAMPLE, sample_products
from tests.service.conftest import make_client

PRODUCTS = sample_products(80)
WITH_IMAGE = next(p for p in PRODUCTS if p.get("image"))
PHOTO = (SAMPLE.parent / WITH_IMAGE["image"]).read_bytes()


def search_ok(client, method="post", **kwargs) -> dict:
    reply = client.post("/search", **kwargs) if method == "post" else client.get("/search", **kwargs)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    SearchResponseModel.model_validate(data)
    assert reply.headers["x-shoplens-version"] == str(data["version"])
    timing = dict(part.strip().split(";dur=") for part in reply.headers["server-timing"].split(","))
    assert set(timing) == {"queue", "engine"} and float(timing["queue"]) >= 0  # where the server's time went
    assert abs(float(timing["engine"]) - data["took_ms"]) <= 0.01
    return data


def error_of(reply, status: int) -> str:
    assert reply.status_code == status, reply.text
    data = reply.json()
    assert data["status"] == status and set(data) <= {"error", "status", "rejects"}
    assert "\n" not in data["error"] and "Traceback" not in data["error"] and data["error"]
    return data["error"]


# -- liveness, readiness, info, pages --------------------------------------------------------


def test_health_ready_and_info(client, served_engine):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["status"] == "ready"
    assert client.get("/ready").json()["version"] == served_engine.snapshot.version
    info = client.get("/info").json()
    assert info["serving"]["version"] == served_engine.snapshot.version
    assert info["serving"]["limits"]["k"] == MAX_K
    assert "model" in info and info["ranker"]


def test_openapi_docs_and_workbench_page(client):
    schema = client.get("/openapi.json").json()
    assert {"/search", "/events", "/products/{product_id}", "/products/{product_id}/image", "/info", "/health",
            "/ready"} <= set(schema["paths"])
    post_bodies = schema["paths"]["/search"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(post_bodies)
    assert "SearchBody" in schema["components"]["schemas"]
    assert "swagger" in client.get("/docs").text.lower()
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200


def test_an_index_that_cannot_open_is_not_ready(tmp_path):
    with make_client(tmp_path / "missing") as client:
        for _ in range(100):  # the index opens on a thread; it fails at once here
            ready = client.get("/ready")
            if ready.json()["status"] != "opening":
                break
        assert ready.status_code == 503 and ready.json()["status"] == "failed"
        assert "no index at" in ready.json()["reason"]
        assert client.get("/health").status_code == 200
        assert "no index at" in error_of(client.get("/search", params={"q": "shirt"}), 503)


def test_an_index_this_user_cannot_write_is_not_ready_and_says_what_to_do(unwritable_index):
    """tantivy writes a lock file to read: the server reports that in one line, on /ready and on searches."""
    from fastapi.testclient import TestClient

    from shoplens.service.app import create_app
    from shoplens.service.settings import ServiceSettings
    from tests.helpers import as_a_user_who_cannot_write

    client = TestClient(create_app(ServiceSettings(index=unwritable_index, device="cpu")), raise_server_exceptions=False)
    with as_a_user_who_cannot_write(), client:
        for _ in range(100):
            ready = client.get("/ready")
            if ready.json()["status"] != "opening":
                break
        message = error_of(client.post("/search", json={"q": "shirt"}), 503)
    assert ready.status_code == 503 and ready.json()["status"] == "failed"
    assert ready.json()["reason"] == message and "copy the index to a writable folder" in message


# -- searching ----------------------------------------------------------------------------------


def test_get_search_text(client):
    data = search_ok(client, "get", params={"q": "black t-shirt", "k": 5})
    assert len(data["results"]) == 5 and data["reranked"] is True
    assert [r["rank"] for r in data["results"]] == [1, 2, 3, 4, 5]
    assert data["query"]["text"] == "black t-shirt" and data["query"]["k"] == 5


def test_the_same_shape_as_the_cli(client, served_index):
    """`shoplens search --json` and the service print one shape (SearchResponse.to_json) with the same results."""
    from shoplens.cli import app

    result = CliRunner().invoke(app, ["search", "blue jeans", "--index", str(served_index), "-k", "4", "--json",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    cli = json.loads(result.stdout)
    SearchResponseModel.model_validate(cli)
    served = search_ok(client, json={"q": "blue jeans", "k": 4})
    assert set(cli) == set(served) and set(cli["query"]) == set(served["query"])
    assert [r["id"] for r in cli["results"]] == [r["id"] for r in served["results"]]
    assert [set(r) for r in cli["results"]] == [set(r) for r in served["results"]]


def test_post_text_photo_filters_and_options(client):
    photo = base64.urlsafe_b64encode(PHOTO).decode().rstrip("=")
    data = search_ok(client, json={"q": "shirt", "image": photo, "k": 6, "filters": ["price<=2000"],
                                   "fusion": "wsum", "normalization": "zscore", "weights": [0.3, 0.7]})
    assert data["query"]["image"] == "<base64>" and len(data["query"]["filters"]) == 1
    assert all(r["price"] is not None and r["price"] <= 2000 for r in data["results"])
    photo_only = search_ok(client, json={"image": photo, "k": 3, "rerank": False})
    assert photo_only["results"][0]["id"] == WITH_IMAGE["id"]  # its own photo finds it first
    assert photo_only["reranked"] is False and photo_only["results"][0]["signals"]["rerank"] is None


def test_multipart_upload_matches_base64(client):
    as_json = search_ok(client, json={"image": base64.b64encode(PHOTO).decode(), "k": 5, "rerank": False})
    uploaded = search_ok(client, files={"image": ("photo.jpg", PHOTO, "image/jpeg")},
                         data={"k": "5", "rerank": "false", "filter": "price>=0"})
    assert uploaded["query"]["image"] == "photo.jpg" and uploaded["query"]["filters"]
    assert [r["id"] for r in uploaded["results"]][:3] == [r["id"] for r in as_json["results"]][:3]


def test_modes_paging_and_explain(client):
    for mode in ("lexical", "dense"):
        data = search_ok(client, json={"q": "watch", "mode": mode, "k": 3})
        assert data["query"]["mode"] == mode and data["reranked"] is False
    first = search_ok(client, "get", params={"q": "shoes", "k": 4, "rerank": "false"})
    second = search_ok(client, "get", params={"q": "shoes", "k": 4, "offset": 4, "rerank": "false"})
    assert [r["rank"] for r in second["results"]] == [5, 6, 7, 8]
    assert not {r["id"] for r in first["results"]} & {r["id"] for r in second["results"]}
    explained = search_ok(client, json={"q": "shoes", "k": 2, "explain": True})
    explain = explained["results"][0]["explain"]
    assert explain["fused_rank"] >= 1 and set(explain["rerank_contributions"]["features"]) == set(FEATURE_NAMES)
    assert "explain" not in search_ok(client, json={"q": "shoes", "k": 2})["results"][0]


@pytest.mark.parametrize("body, status, words", [
    (b"{bad json", 400, "malformed JSON"),
    (b"[1, 2]", 422, "JSON object"),
    (b'{"q": "x", "k": 0}', 422, "k:"),
    (b'{"q": "x", "k": 101}', 422, "k:"),
    (b'{"q": "x", "offset": 3, "k": 2}', 422, "multiple of k"),
    (b'{"q": "x", "kk": 3}', 422, "kk: Extra inputs"),
    (b'{"q": "x", "filters": ["colour_of_sky=blue"]}', 422, "unknown filter field"),
    (b'{"q": "x", "filters": ["price<<3"]}', 422, "filter"),
    (b'{"q": "x", "mode": "magic"}', 422, "mode"),
    (b'{"q": "x", "weights": [1, -1]}', 422, "weights"),
    (b'{"q": "   "}', 422, "empty query"),
    (b'{}', 422, "empty query"),
    (b'{"image": "bm90IGFuIGltYWdl"}', 422, "not a readable picture"),
    (b'{"image": "%%%"}', 422, "base64"),
    (b'{"image": "", "mode": "lexical"}', 422, "empty query"),
])
def test_bad_search_bodies_are_one_line_4xx(client, body, status, words):
    message = error_of(client.post("/search", content=body, headers={"content-type": "application/json"}), status)
    assert words.lower() in message.lower()


def test_bad_get_parameters_and_other_error_paths(client):
    assert "k" in error_of(client.get("/search", params={"q": "x", "k": 1000}), 422)
    assert "q" in error_of(client.get("/search"), 422)
    assert "weights" in error_of(client.get("/search", params={"q": "x", "weights": "a,b"}), 422)
    assert "unsupported content type" in error_of(client.post("/search", content=b"q=x", headers={"content-type": "application/xml"}), 415)
    assert "file field" in error_of(client.post("/search", files={"photo": ("a.jpg", PHOTO, "image/jpeg")}), 422)
    assert "not a readable picture" in error_of(client.post("/search", files={"image": ("a.jpg", b"GIF89a...", "image/gif")}), 422)
    error_of(client.get("/no/such/path"), 404)
    error_of(client.delete("/search"), 405)


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain; charset=utf-8", "application/xml",
                                          "application/x-www-form-urlencoded", "application/jsonx", ""])
def test_a_search_body_of_another_content_type_is_415_naming_the_accepted_ones(client, content_type):
    body = json.dumps({"q": "shirt", "k": 2}).encode()  # valid JSON: only the declared type is wrong
    message = error_of(client.post("/search", content=body, headers={"content-type": content_type}), 415)
    assert "application/json" in message and "multipart/form-data" in message
    for accepted in ("application/json", "Application/JSON; charset=utf-8"):
        assert client.post("/search", content=body, headers={"content-type": accepted}).status_code == 200
    assert client.post("/search", content=body).status_code == 200  # no Content-Type: read as JSON


def test_events_of_another_content_type_are_415_and_write_nothing(client):
    before = inbox_files(client)
    event = json.dumps([{"ts": 1, "type": "click", "id": WITH_IMAGE["id"]}]).encode()
    for content_type in ("text/plain", "application/xml", "multipart/form-data; boundary=x"):
        message = error_of(client.post("/events", content=event, headers={"content-type": content_type}), 415)
        assert "application/json" in message and "application/x-ndjson" in message
    assert inbox_files(client) == before


def test_request_size_is_limited(client):
    big = b'{"q": "x", "image": "' + b"A" * (9 * 2 ** 20) + b'"}'
    assert "limit" in error_of(client.post("/search", content=big, headers={"content-type": "application/json"}), 413)

    def chunks():  # no Content-Length: the body streams past the limit
        for _ in range(10):
            yield b"A" * 2 ** 20

    assert "limit" in error_of(client.post("/search", content=chunks(), headers={"content-type": "application/json"}), 413)


def test_a_huge_image_is_refused_before_decoding(client):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buffer, "PNG")  # tiny file, 81 M pixels
    assert "pixels" in error_of(client.post("/search", files={"image": ("big.png", buffer.getvalue(), "image/png")}), 422)


def test_an_unexpected_failure_is_a_500_without_a_traceback(served_index, served_engine):
    with make_client(served_index, served_engine) as client:
        def broken():
            raise RuntimeError("secret internals\nTraceback (most recent call last)")

        client.app.add_api_route("/broken", broken)
        message = error_of(client.get("/broken"), 500)
        assert "secret" not in message


# -- products -----------------------------------------------------------------------------------


def test_products_and_thumbnails(client):
    from PIL import Image

    product = client.get(f"/products/{WITH_IMAGE['id']}").json()
    assert product["product"]["title"] == WITH_IMAGE["title"] and product["version"] >= 1
    error_of(client.get("/products/no-such-id"), 404)
    reply = client.get(f"/products/{WITH_IMAGE['id']}/image", params={"size": 128})
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(reply.content)) as image:
        assert max(image.size) <= 128
    assert "size" in error_of(client.get(f"/products/{WITH_IMAGE['id']}/image", params={"size": 100}), 422)
    error_of(client.get("/products/no-such-id/image"), 404)


def test_an_unreadable_image_file_gives_no_thumbnail(tmp_path):
    from shoplens.service.thumbnails import thumbnail_jpeg

    assert thumbnail_jpeg(str(tmp_path / "gone.jpg"), 128) is None
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    assert thumbnail_jpeg(str(tmp_path / "broken.jpg"), 128) is None


def test_a_product_without_a_photo_gets_a_placeholder(served_index, encoder, tmp_path):
    from PIL import Image

    from shoplens.engine.search import SearchEngine
    from shoplens.indexers.updates import apply_delta
    from tests.helpers import copy_index

    index = copy_index(served_index, tmp_path / "index")
    delta = tmp_path / "delta.jsonl"
    delta.write_text(json.dumps({"id": "no-photo-1", "title": "Plain canvas tote bag", "price": 499}) + "\n")
    apply_delta(index, delta, device="cpu")
    engine = SearchEngine(index, device="cpu", encoder=encoder)
    with make_client(index, engine) as client:
        sizes = []
        for size in (64, 256):
            reply = client.get("/products/no-photo-1/image", params={"size": size})
            assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
            assert reply.headers["x-shoplens-placeholder"] == "no-image"
            with Image.open(io.BytesIO(reply.content)) as image:
                sizes.append(image.size)
                assert len(image.getcolors(maxcolors=2 ** 16)) > 1  # a drawing, not a blank square
        assert sizes == [(64, 64), (256, 256)]
        photo = client.get(f"/products/{WITH_IMAGE['id']}/image")
        assert photo.headers["content-type"] == "image/jpeg" and "x-shoplens-placeholder" not in photo.headers
        error_of(client.get("/products/no-such-id/image"), 404)  # unknown products stay a 404
    engine.close()


def test_product_ids_with_slashes_are_addressable(served_index, encoder, tmp_path):
    from shoplens.engine.search import SearchEngine
    from shoplens.indexers.updates import apply_delta
    from tests.helpers import copy_index

    index = copy_index(served_index, tmp_path / "index")
    photo = str(SAMPLE.parent / WITH_IMAGE["image"])
    rows = [{"id": "men/shirts/1", "title": "Slash id linen shirt", "price": 999, "image": photo},
            {"id": "kit", "title": "Travel kit", "price": 10, "image": photo},
            {"id": "kit/image", "title": "Kit picture frame", "price": 20}]
    (tmp_path / "delta.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    apply_delta(index, tmp_path / "delta.jsonl", device="cpu")
    engine = SearchEngine(index, device="cpu", encoder=encoder)
    with make_client(index, engine) as client:
        for path in ("/products/men/shirts/1", "/products/men%2Fshirts%2F1"):  # as is, or percent-encoded
            assert client.get(path).json()["product"]["title"] == "Slash id linen shirt"
            reply = client.get(path + "/image", params={"size": 64})
            assert reply.status_code == 200 and reply.headers["content-type"] == "image/jpeg"
        assert client.get("/products/kit/image").headers["content-type"] == "image/jpeg"  # kit's photo
        assert client.get("/products/kit%2Fimage").json()["product"]["title"] == "Kit picture frame"
        placeholder = client.get("/products/kit%2Fimage/image")
        assert placeholder.status_code == 200 and placeholder.headers["x-shoplens-placeholder"] == "no-image"
        assert client.get("/products/kit").json()["product"]["title"] == "Travel kit"
        assert "'men/shirts'" in error_of(client.get("/products/men/shirts"), 404)
        error_of(client.get("/products/men/shirts/2/image"), 404)
    engine.close()


# -- events --------------------------------------------------------------------------------------


def inbox_files(client):
    return sorted(client.app.state.shoplens.settings.inbox.glob("*.events.jsonl"))


def test_events_land_in_the_inbox_validated(client):
    before = inbox_files(client)
    events = [{"ts": 1760000000, "type": "click", "id": WITH_IMAGE["id"], "query": "shirt", "position": 2},
              {"ts": "2025-10-09T10:00:00Z", "type": "impression", "id": PRODUCTS[1]["id"]}]
    reply = client.post("/events", json=events)
    assert reply.status_code == 202, reply.text
    assert reply.json()["accepted"] == 2
    written = [path for path in inbox_files(client) if path not in before]
    assert len(written) == 1 and str(written[0]) == reply.json()["file"]
    batch = read_events(written[0])  # what `shoplens events` / `shoplens watch` will read
    assert len(batch) == 2 and not batch.rejects
    ndjson = "\n".join(json.dumps(e) for e in events).encode()
    assert client.post("/events", content=ndjson, headers={"content-type": "application/x-ndjson"}).json()["accepted"] == 2


@pytest.mark.parametrize("events, words", [
    ([{"ts": 1, "type": "click", "id": "1"}, {"ts": 1, "type": "purchase", "id": "x"}], "event 2: type must be one of"),
    ([{"ts": 1, "type": "click", "id": "no-such-product"}], "unknown product id"),
    ([{"ts": "yesterday", "type": "click", "id": "x"}], "ts must be"),
    ([{"ts": 1, "type": "click", "id": "x", "position": 0}], "position"),
    ([], "no events"),
    ([5], "JSON object"),
])
def test_bad_events_are_422_with_the_reason_and_write_nothing(client, events, words):
    events = [dict(e, id=PRODUCTS[0]["id"]) if isinstance(e, dict) and e.get("id") in ("1", "x") else e for e in events]
    before = inbox_files(client)
    message = error_of(client.post("/events", json=events), 422)
    assert words in message
    assert inbox_files(client) == before


def test_an_inbox_that_cannot_be_written_is_503_with_the_reason_and_leaves_nothing(served_index, served_engine,
                                                                                  tmp_path):
    blocker = tmp_path / "not-a-folder"  # the inbox's parent is a file: no folder can be made there
    blocker.write_text("x")
    event = [{"ts": 1, "type": "click", "id": WITH_IMAGE["id"]}]
    with make_client(served_index, served_engine, events_inbox=blocker / "inbox") as client:
        message = error_of(client.post("/events", json=event), 503)
    assert "cannot write to the event inbox" in message and "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]


def test_malformed_events_body_is_400(client):
    assert "malformed JSON" in error_of(client.post("/events", content=b"{nope", headers={"content-type": "application/json"}), 400)


# -- access -----------------------------------------------------------------------------------


def test_api_key_guards_events_and_optionally_search(served_index, served_engine, tmp_path):
    event = [{"ts": 1, "type": "click", "id": WITH_IMAGE["id"]}]
    with make_client(served_index, served_engine, api_key="s3cret", events_inbox=tmp_path / "in") as client:
        assert "API key" in error_of(client.post("/events", json=event), 401)
        error_of(client.post("/events", json=event, headers={"X-API-Key": "wrong"}), 401)
        assert client.post("/events", json=event, headers={"X-API-Key": "s3cret"}).status_code == 202
        assert client.post("/events", json=event, headers={"Authorization": "Bearer s3cret"}).status_code == 202
        assert client.get("/search", params={"q": "shirt", "k": 1}).status_code == 200
    with make_client(served_index, served_engine, api_key="s3cret", protect_search=True) as client:
        error_of(client.get("/search", params={"q": "shirt", "k": 1}), 401)
        assert client.get("/search", params={"q": "shirt", "k": 1}, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert client.get("/health").status_code == 200


def test_cors_is_off_unless_configured(served_index, served_engine):
    origin = {"Origin": "https://shop.example"}
    with make_client(served_index, served_engine) as client:
        assert "access-control-allow-origin" not in client.get("/health", headers=origin).headers
    with make_client(served_index, served_engine, cors_origins=["https://shop.example"]) as client:
        assert client.get("/health", headers=origin).headers["access-control-allow-origin"] == "https://shop.example"
        assert "access-control-allow-origin" not in client.get("/health", headers={"Origin": "https://evil.example"}).headers


# -- the command --------------------------------------------------------------------------------


def test_serve_command_help_and_a_missing_index(tmp_path):
    from shoplens.cli import app

    runner = CliRunner()
    assert "--api-key" in runner.invoke(app, ["serve", "--help"]).output
    result = runner.invoke(app, ["serve", "--index", str(tmp_path / "none")])
    assert result.exit_code != 0 and "no index at" in result.output
    protected = runner.invoke(app, ["serve", "--index", str(tmp_path / "none"), "--protect-search"])
    assert protected.exit_code != 0 and "--api-key" in protected.output
