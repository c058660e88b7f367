"""File uploads over the ASGI app: streamed to the file store, hashed, line-counted, size-limited."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from seqserve.services.api.main import create_app
from seqserve.shared.config import get_settings, reset_settings
from tests.api.batch_helpers import upload
from tests.conftest import create_key

LIMIT = 4096


@pytest.fixture()
def client(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("SEQSERVE_MAX_UPLOAD_BYTES", str(LIMIT))
    reset_settings()
    with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as test_client:
        yield test_client


def test_upload_records_size_hash_lines_and_format(client: TestClient) -> None:
    content = b'{"custom_id": "a", "input": "x"}\n{"custom_id": "b", "input": "y"}'  # no final newline
    row = upload(client, "reviews.jsonl", content)
    assert row["bytes"] == len(content) and row["sha256"] == hashlib.sha256(content).hexdigest()
    assert row["lines"] == 2 and row["format"] == "jsonl" and row["filename"] == "reviews.jsonl"
    assert client.get(f"/v1/files/{row['id']}").json() == row
    body = client.get(f"/v1/files/{row['id']}/content")
    assert body.status_code == 200 and body.content == content
    assert body.headers["content-type"] == "application/x-ndjson"


@pytest.mark.parametrize(("name", "form", "expected"), [
    ("corpus.txt", {}, "text"), ("ud.conllu", {}, "conllu"), ("data.bin", {"format": "text"}, "text"),
    ("x.jsonl", {"format": "conllu"}, "conllu"),
])
def test_format_comes_from_the_field_or_the_extension(client: TestClient, name: str, form: dict, expected: str
                                                      ) -> None:
    assert upload(client, name, b"hello\n", **form)["format"] == expected


@pytest.mark.parametrize(("name", "form"), [("data.bin", {}), ("a.txt", {"format": "csv"})])
def test_unknown_format_is_refused(client: TestClient, name: str, form: dict) -> None:
    response = client.post("/v1/files", files={"file": (name, b"hello\n")}, data=form)
    assert response.status_code == 422 and response.json()["error"]["field"] == "format"


def test_upload_over_the_limit_is_refused_and_nothing_is_kept(client: TestClient) -> None:
    files_dir = get_settings().file_dir
    assert files_dir is not None
    before = sorted(files_dir.rglob("*")) if files_dir.exists() else []
    response = client.post("/v1/files", files={"file": ("big.txt", b"x" * (LIMIT + 1))})
    assert response.status_code == 413, response.text
    assert response.json()["error"] == {"code": "file_too_large", "message": f"files hold at most {LIMIT} bytes",
                                        "field": "file"}
    after = sorted(path for path in files_dir.rglob("*") if path.is_file()) if files_dir.exists() else []
    assert [path for path in after if path not in before] == []
    declared = client.post("/v1/files", files={"file": ("huge.txt", b"x" * (LIMIT + 200_000))})
    assert declared.status_code == 413  # refused on its Content-Length, unread


def test_a_request_without_the_file_field_is_refused(client: TestClient) -> None:
    response = client.post("/v1/files", data={"format": "text"}, files={"other": ("a.txt", b"x")})
    assert response.status_code == 422 and response.json()["error"]["field"] == "file"
    not_multipart = client.post("/v1/files", content=b"hello", headers={"Content-Type": "text/plain"})
    assert not_multipart.status_code == 422 and not_multipart.json()["error"]["field"] == "file"


def test_unknown_file_is_404(client: TestClient) -> None:
    response = client.get("/v1/files/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404 and response.json()["error"]["code"] == "file_not_found"
