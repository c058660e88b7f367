"""download(): a local HTTP server plays the upstream hosts, built from the reference files.

Each published upstream file is the reference file with its catalogue transformation undone
(gunzipped, wrapped in a zip, ...), served at the upstream URL's path under a mirror prefix.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from seqserve.services.trainer import download as dl
from seqserve.services.trainer.download import (
    CATALOGUE,
    ChecksumMismatchError,
    DownloadError,
    download,
)

needs_gnu_gzip = pytest.mark.skipif(
    dl._gnu_gzip() is None, reason="byte-identical .gz files need GNU gzip"
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Upstream:
    root: Path  # served directory; the mirror prefix is its "mirror/" folder
    base_url: str
    requests: list[str] = field(default_factory=list)
    fail_once: set[str] = field(default_factory=set)  # paths answered 503 the first time

    def put(self, url: str, data: bytes) -> None:
        path = self.root / "mirror" / urlsplit(url).path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def publish(self, name: str, reference: Path, source_index: int = -1) -> None:
        """Publish, for every file of `name`, the download its chosen source expects."""
        archives: dict[str, dict[str, bytes]] = {}
        for remote in CATALOGUE[name].files:
            source = remote.sources[source_index]
            data = (reference / remote.path).read_bytes()
            if source.gzip:
                data = gzip.decompress(data)
            if source.gunzip:
                data = gzip.compress(data, mtime=0)  # any gzip encoder will do upstream
            if source.member is None:
                self.put(source.url, data)
            else:
                archives.setdefault(source.url, {})[source.member] = data
        for url, members in archives.items():
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
                archive.writestr("unrelated/README", b"not a member anyone asks for\n")
                for member, data in members.items():
                    archive.writestr(member, data)
            self.put(url, buffer.getvalue())

    def mirrors(self, *names: str) -> dict[str, str]:
        return dict.fromkeys(names, self.base_url)


@pytest.fixture
def upstream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Upstream]:
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "upstream"
    root.mkdir()
    state = Upstream(root, "")

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            state.requests.append(self.path)
            if self.path in state.fail_once:
                state.fail_once.discard(self.path)
                self.send_error(503)
                return
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_port}/mirror"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory download() works in, so a test can see what it leaves."""
    path = tmp_path / "scratch"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def fetch(upstream: Upstream, target: Path, *names: str) -> list[Path]:
    """download() from the local server, quietly."""
    return download(list(names), target, base_urls=upstream.mirrors(*names), progress=False)


# -- the catalogue against the reference files --------------------------------------------
def test_catalogue_digests_are_those_of_the_reference_files(data_dir: Path) -> None:
    for dataset in CATALOGUE.values():
        for remote in dataset.files:
            stored = (data_dir / remote.path).read_bytes()
            assert sha256(stored) == remote.sha256, remote.path
            gzips = any(source.gzip for source in remote.sources)
            assert (remote.content_sha256 is not None) == gzips, remote.path
            if gzips:
                assert sha256(gzip.decompress(stored)) == remote.content_sha256, remote.path


def test_catalogue_covers_every_reference_data_file(data_dir: Path) -> None:
    docs = re.compile(r"(^|/)(README[^/]*|SOURCE\.md|LICENSE[^/]*)$")
    reference = {path for path in files_under(data_dir) if not docs.search(path)}
    catalogue = {remote.path for dataset in CATALOGUE.values() for remote in dataset.files}
    assert catalogue == reference


def test_catalogue_urls_are_pinned_and_mirror_paths_unique() -> None:
    pinned = re.compile(r"^https://raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/")
    for dataset in CATALOGUE.values():
        url_of_path: dict[str, str] = {}
        for remote in dataset.files:
            for source in remote.sources:
                assert source.url.startswith("https://"), source.url
                if "raw.githubusercontent.com" in source.url:
                    assert pinned.match(source.url), source.url
                path = urlsplit(source.url).path
                assert url_of_path.setdefault(path, source.url) == source.url, path


# -- downloads ----------------------------------------------------------------------------
@needs_gnu_gzip
def test_download_reproduces_the_reference_bytes(
    upstream: Upstream, data_dir: Path, tmp_path: Path, scratch: Path
) -> None:
    # sst2: as-is files, and glue/ from the GLUE zip once the pinned copy answers 404;
    # ptb: gzipped plain text, and train re-gzipped from Lasagne's .gz; wikitext2: zip + gzip.
    names = ["sst2", "ptb", "wikitext2"]
    for name in names:
        upstream.publish(name, data_dir)
    target = tmp_path / "data"

    paths = fetch(upstream, target, *names)

    expected = [remote.path for name in names for remote in CATALOGUE[name].files]
    assert paths == [target / path for path in expected]
    assert files_under(target) == set(expected)  # nothing else, no temporary files
    for path in expected:
        assert sha256((target / path).read_bytes()) == sha256((data_dir / path).read_bytes()), path
    # Each archive URL is asked for once for its three files, the 404 one included.
    zips = [r for r in upstream.requests if r.endswith(".zip")]
    assert len(zips) == len(set(zips)) == 3
    assert files_under(scratch) == set()

    fetched = len(upstream.requests)
    assert fetch(upstream, target, *names) == paths
    assert len(upstream.requests) == fetched


def test_first_source_is_used_when_it_answers(upstream: Upstream, data_dir: Path, tmp_path: Path) -> None:
    upstream.publish("sst2", data_dir, source_index=0)
    upstream.publish("sst2", data_dir, source_index=-1)
    fetch(upstream, tmp_path / "data", "sst2")
    assert not [r for r in upstream.requests if r.endswith(".zip")]
    assert len(upstream.requests) == len(CATALOGUE["sst2"].files)


def test_without_gnu_gzip_the_content_is_verified_instead(
    upstream: Upstream, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dl, "_gnu_gzip", lambda: None)
    upstream.publish("multi30k_en_de", data_dir)
    target = tmp_path / "data"

    paths = fetch(upstream, target, "multi30k_en_de")

    for path in paths:
        reference = (data_dir / path.relative_to(target)).read_bytes()
        assert gzip.decompress(path.read_bytes()) == gzip.decompress(reference), path
    fetched = len(upstream.requests)
    fetch(upstream, target, "multi30k_en_de")
    assert len(upstream.requests) == fetched


def test_a_wrong_local_file_is_replaced(upstream: Upstream, data_dir: Path, tmp_path: Path) -> None:
    upstream.publish("tinyshakespeare", data_dir)
    target = tmp_path / "data"
    (target / "tinyshakespeare").mkdir(parents=True)
    (target / "tinyshakespeare" / "input.txt").write_text("truncated\n")

    [path] = fetch(upstream, target, "tinyshakespeare")

    assert path.read_bytes() == (data_dir / "tinyshakespeare" / "input.txt").read_bytes()


def test_transient_errors_are_retried(
    upstream: Upstream, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dl, "_BACKOFF_S", 0.0)
    upstream.publish("tinyshakespeare", data_dir)
    [remote] = CATALOGUE["tinyshakespeare"].files
    url_path = "/mirror" + urlsplit(remote.sources[0].url).path
    upstream.fail_once.add(url_path)

    [path] = fetch(upstream, tmp_path / "data", "tinyshakespeare")

    assert upstream.requests == [url_path, url_path]
    assert sha256(path.read_bytes()) == remote.sha256


def test_a_corrupted_upstream_file_raises_and_leaves_nothing(
    upstream: Upstream, data_dir: Path, tmp_path: Path, scratch: Path
) -> None:
    [remote] = CATALOGUE["tinyshakespeare"].files
    corrupted = bytearray((data_dir / remote.path).read_bytes())
    corrupted[1000] ^= 0x20
    upstream.put(remote.sources[0].url, bytes(corrupted))
    target = tmp_path / "data"

    with pytest.raises(ChecksumMismatchError) as caught:
        fetch(upstream, target, "tinyshakespeare")

    message = str(caught.value)
    url = dl.mirror_url(remote.sources[0].url, upstream.base_url)
    for part in (remote.path, url, remote.sha256, sha256(bytes(corrupted))):
        assert part in message
    assert files_under(target) == set()
    assert files_under(scratch) == set()


def test_a_missing_upstream_file_raises_naming_the_url(
    upstream: Upstream, tmp_path: Path, scratch: Path
) -> None:
    target = tmp_path / "data"
    with pytest.raises(DownloadError, match="404") as caught:
        fetch(upstream, target, "tinyshakespeare")
    [remote] = CATALOGUE["tinyshakespeare"].files
    assert dl.mirror_url(remote.sources[0].url, upstream.base_url) in str(caught.value)
    assert remote.path in str(caught.value)
    assert len(upstream.requests) == 1  # a 404 is final, not retried
    assert files_under(target) == set()
    assert files_under(scratch) == set()


def test_unknown_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown datasets"):
        download(["sst3"], tmp_path)
    with pytest.raises(ValueError, match="base_urls"):
        download(["sst2"], tmp_path, base_urls={"sst-2": "http://127.0.0.1:9"})
    assert files_under(tmp_path) == set()
