"""Tests for cnnx.datasets.mnist: locating, validating, downloading (from a local HTTP
server, never the internet) and loading MNIST, plus checks against the real test set
when CNNX_DATA_DIR points at it."""

import gzip
import hashlib
import http.server
import os
import socket
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from cnnx.datasets import mnist
from cnnx.datasets.idx import write_idx
from cnnx.datasets.mnist import (
    DEFAULT_MIRRORS,
    MNIST_FILES,
    DownloadError,
    download_verified,
    load_mnist,
    mnist_dir,
    mnist_mirrors,
)
from cnnx.errors import DatasetError

# Read before any fixture touches the environment.
REAL_DATA_DIR = os.environ.get("CNNX_DATA_DIR")

IMAGES, LABELS = MNIST_FILES["test"]


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """No test reads the user's cache or environment, and none can reach the internet."""
    monkeypatch.delenv("CNNX_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CNNX_MNIST_MIRRORS", dead_mirror())


def dead_mirror():
    """A base URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def temp_leftovers(directory):
    return sorted(p.name for p in Path(directory).iterdir() if ".tmp-" in p.name)


def make_split(directory, split="test", n=12, *, gz=True, seed=0):
    """Write small, valid MNIST-format files; return the (images, labels) written."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    rng.shuffle(labels)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    image_name, label_name = MNIST_FILES[split]
    suffix = ".gz" if gz else ""
    write_idx(directory / (image_name + suffix), images)
    write_idx(directory / (label_name + suffix), labels)
    return images, labels


# --- locating ----------------------------------------------------------------------------


def test_mnist_dir_precedence(monkeypatch, tmp_path):
    assert mnist_dir() == tmp_path / "home" / ".cache" / "cnnx" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mnist_dir() == tmp_path / "xdg" / "cnnx" / "mnist"
    monkeypatch.setenv("CNNX_DATA_DIR", str(tmp_path / "data"))
    assert mnist_dir() == tmp_path / "data" / "mnist"
    assert mnist_dir(tmp_path / "given") == tmp_path / "given"


def test_mnist_dir_ignores_empty_and_relative_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNX_DATA_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert mnist_dir() == tmp_path / "home" / ".cache" / "cnnx" / "mnist"


def test_mnist_dir_is_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert mnist_dir("rel") == tmp_path / "rel"
    monkeypatch.setenv("CNNX_DATA_DIR", "d")
    assert mnist_dir() == tmp_path / "d" / "mnist"


def test_mirror_list_sources(monkeypatch):
    monkeypatch.delenv("CNNX_MNIST_MIRRORS")
    assert mnist_mirrors() == list(DEFAULT_MIRRORS)
    monkeypatch.setenv("CNNX_MNIST_MIRRORS", " http://a/x , ,http://b/y/ ")
    assert mnist_mirrors() == ["http://a/x/", "http://b/y/"]
    assert mnist_mirrors(["http://c"]) == ["http://c/"]
    assert mnist_mirrors([]) == []
    with pytest.raises(TypeError, match="list"):
        mnist_mirrors("http://a/")


# --- loading files placed by hand ------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_loads_placed_files(tmp_path, gz):
    images, labels = make_split(tmp_path, "test", n=12, gz=gz)
    X, y = load_mnist("test", root=tmp_path, download=False)
    assert X.shape == (12, 1, 28, 28) and X.dtype == np.float32
    assert y.shape == (12,) and y.dtype == np.int64
    assert X.min() >= 0.0 and X.max() <= 1.0
    np.testing.assert_array_equal(np.rint(X[:, 0] * 255).astype(np.uint8), images)
    np.testing.assert_allclose(X[:, 0], images / np.float32(255), rtol=0, atol=0)
    np.testing.assert_array_equal(y, labels)


def test_loads_train_split_and_mixed_compression(tmp_path):
    images, labels = make_split(tmp_path, "train", n=5, gz=True)
    label_name = MNIST_FILES["train"][1]
    gz_labels = tmp_path / (label_name + ".gz")
    (tmp_path / label_name).write_bytes(gzip.decompress(gz_labels.read_bytes()))
    gz_labels.unlink()
    X, y = load_mnist("train", root=tmp_path, download=False)
    np.testing.assert_array_equal(np.rint(X[:, 0] * 255).astype(np.uint8), images)
    np.testing.assert_array_equal(y, labels)


def test_uses_cnnx_data_dir(monkeypatch, tmp_path):
    make_split(tmp_path / "data" / "mnist", "test", n=3)
    monkeypatch.setenv("CNNX_DATA_DIR", str(tmp_path / "data"))
    X, _ = load_mnist("test", download=False)
    assert X.shape == (3, 1, 28, 28)


def test_rejects_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_mnist("validation", root=tmp_path)


def write_file(directory, name, array):
    path = Path(directory) / name
    write_idx(path, array)
    return path


@pytest.mark.parametrize(
    ("images", "labels", "bad", "fragments"),
    [
        pytest.param(
            np.zeros(3, np.uint8),
            np.zeros(3, np.uint8),
            "images",
            ["not an MNIST image file", "magic 2049", "expected 2051"],
            id="labels-file-as-images",
        ),
        pytest.param(
            np.zeros((3, 28, 28), np.int8),
            np.zeros(3, np.uint8),
            "images",
            ["magic 2307", "int8", "expected 2051"],
            id="int8-images",
        ),
        pytest.param(
            np.zeros((3, 27, 27), np.uint8),
            np.zeros(3, np.uint8),
            "images",
            ["28×28", "27×27"],
            id="wrong-image-size",
        ),
        pytest.param(
            np.zeros((3, 28, 28), np.uint8),
            np.zeros((3, 1), np.uint8),
            "labels",
            ["not an MNIST label file", "magic 2050", "expected 2049"],
            id="2d-labels",
        ),
        pytest.param(
            np.zeros((3, 28, 28), np.uint8),
            np.zeros(3, np.int32),
            "labels",
            ["magic 3073", "expected 2049"],
            id="int32-labels",
        ),
        pytest.param(
            np.zeros((3, 28, 28), np.uint8),
            np.array([1, 10, 255], np.uint8),
            "labels",
            ["label 10 at index 1", "2 labels out of range", "0 to 9"],
            id="label-out-of-range",
        ),
        pytest.param(
            np.zeros((3, 28, 28), np.uint8),
            np.zeros(4, np.uint8),
            "both",
            ["3 images", "4 labels", "same count"],
            id="counts-differ",
        ),
    ],
)
def test_structural_errors_name_the_file(tmp_path, images, labels, bad, fragments):
    image_path = write_file(tmp_path, IMAGES + ".gz", images)
    label_path = write_file(tmp_path, LABELS, labels)
    with pytest.raises(DatasetError) as excinfo:
        load_mnist("test", root=tmp_path, download=False)
    message = str(excinfo.value)
    if bad in ("images", "both"):
        assert str(image_path) in message
    if bad in ("labels", "both"):
        assert str(label_path) in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_corrupt_placed_file_is_reported_not_redownloaded(tmp_path):
    make_split(tmp_path, "test", n=4)
    path = tmp_path / (IMAGES + ".gz")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DatasetError, match="corrupt gzip") as excinfo:
        load_mnist("test", root=tmp_path, download=True)
    assert str(path) in str(excinfo.value)


def assert_one_short_line(message, directory):
    """What is missing, where cnnx looked, one way to fix it: one line, no essay."""
    assert "\n" not in message, message
    assert len(message) - len(str(directory)) <= 260, (len(message), message)
    for fragment in (IMAGES, LABELS, str(directory), "by hand", "docs/datasets-mnist.md"):
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_missing_files_without_download(tmp_path):
    target = tmp_path / "nowhere"
    with pytest.raises(DatasetError) as excinfo:
        load_mnist("test", root=target, download=False)
    message = str(excinfo.value)
    assert_one_short_line(message, target)
    assert "download=False" in message
    assert "Mirrors tried" not in message and "http" not in message
    assert not target.exists()  # nothing created when nothing may be downloaded


def test_offline_failure_is_one_short_line_and_creates_no_directory(tmp_path):
    # The default directory ~/.cache/cnnx/mnist (HOME is tmp_path/home here), with the
    # only mirror a closed port: as offline as a test can be.
    with pytest.raises(DatasetError) as excinfo:
        load_mnist("test", progress=False)
    message = str(excinfo.value)
    assert_one_short_line(message, mnist_dir())
    assert "refused" in message  # why the download failed, in a few words
    assert not (tmp_path / "home").exists()  # no empty cache directory left behind
    # the full story stays available to a program: every URL with its reason
    attempts = excinfo.value.__cause__.attempts
    assert [url for url, _ in attempts] == [mnist_mirrors()[0] + IMAGES + ".gz"]


def test_failed_download_into_an_existing_directory_removes_nothing(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError):
        load_mnist("test", root=root, progress=False)
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]


def test_test_split_never_needs_the_training_files(server, tmp_path, fake_mnist):
    root = tmp_path / "m"
    images, labels = make_split(root, "test", n=6, seed=4)
    train_images, train_labels = MNIST_FILES["train"]
    (root / (train_images + ".gz")).write_bytes(b"not an IDX file")  # damaged, never read
    for download in (False, True):
        X, y = load_mnist("test", root=root, download=download, mirrors=[server.url + "/good/"])
        np.testing.assert_array_equal(np.rint(X[:, 0] * 255).astype(np.uint8), images)
        np.testing.assert_array_equal(y, labels)
    assert server.requests == []  # nothing fetched: the training labels stay missing
    assert not (root / (train_labels + ".gz")).exists()


def test_only_the_missing_file_is_listed(tmp_path):
    make_split(tmp_path, "test", n=4)
    (tmp_path / (LABELS + ".gz")).unlink()
    with pytest.raises(DatasetError) as excinfo:
        load_mnist("test", root=tmp_path, download=False)
    first_line = str(excinfo.value).splitlines()[0]
    assert LABELS in first_line and IMAGES not in first_line


# --- downloads from a local server -------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("User-Agent", "")))
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        kind, body = route
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if kind == "ok":
            self.wfile.write(body)
        elif kind == "cut":
            # Promise the whole body, send half, hang up.
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

    def log_message(self, *args):
        pass


class LocalServer:
    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.routes = {}
        self.httpd.requests = []
        self.httpd.handle_error = lambda request, address: None  # client hung up: expected
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def serve(self, path, body, kind="ok"):
        self.httpd.routes[path] = (kind, body)

    @property
    def requests(self):
        return self.httpd.requests

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server():
    srv = LocalServer()
    yield srv
    srv.close()


def payload(n=100_000, seed=0):
    body = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    return body, hashlib.sha256(body).hexdigest()


def test_download_verified_writes_matching_file(server, tmp_path):
    body, digest = payload()
    server.serve("/good/f.gz", body)
    dest = download_verified([server.url + "/good/f.gz"], tmp_path / "f.gz", digest, progress=False)
    assert dest == tmp_path / "f.gz"
    assert dest.read_bytes() == body
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.gz"]
    ((path, agent),) = server.requests
    assert path == "/good/f.gz" and agent.startswith("cnnx/")


def test_download_falls_through_dead_missing_and_garbage_mirrors(server, tmp_path):
    body, digest = payload()
    server.serve("/garbage/f.gz", b"<html>not the file</html>")
    server.serve("/good/f.gz", body)
    urls = [
        dead_mirror() + "f.gz",
        server.url + "/missing/f.gz",
        server.url + "/garbage/f.gz",
        server.url + "/good/f.gz",
    ]
    download_verified(urls, tmp_path / "f.gz", digest, progress=False)
    assert (tmp_path / "f.gz").read_bytes() == body
    assert [p for p, _ in server.requests] == ["/missing/f.gz", "/garbage/f.gz", "/good/f.gz"]
    assert temp_leftovers(tmp_path) == []


def test_download_all_bad_reports_each_url_and_keeps_old_file(server, tmp_path):
    body, digest = payload()
    server.serve("/garbage/f.gz", body[:-1] + b"!")
    dead = dead_mirror() + "f.gz"
    urls = [dead, server.url + "/missing/f.gz", server.url + "/garbage/f.gz"]
    dest = tmp_path / "f.gz"
    dest.write_bytes(b"previous file")
    with pytest.raises(DownloadError) as excinfo:
        download_verified(urls, dest, digest, progress=False)
    error = excinfo.value
    assert [url for url, _ in error.attempts] == urls
    reasons = [reason for _, reason in error.attempts]
    assert "refused" in reasons[0].lower()
    assert reasons[1] == "HTTP 404 Not Found"
    assert "SHA-256 mismatch" in reasons[2] and digest in reasons[2]
    for url in urls:
        assert url in str(error)
    assert dest.read_bytes() == b"previous file"
    assert temp_leftovers(tmp_path) == []


def test_connection_closed_mid_body_leaves_nothing_then_next_mirror_wins(server, tmp_path):
    body, digest = payload(300_000)
    server.serve("/cut/f.gz", body, kind="cut")
    dest = tmp_path / "f.gz"
    with pytest.raises(DownloadError) as excinfo:
        download_verified([server.url + "/cut/f.gz"], dest, digest, progress=False)
    ((_, reason),) = excinfo.value.attempts
    assert "150000 of 300000 bytes" in reason or "connection broke" in reason
    assert list(tmp_path.iterdir()) == []

    server.serve("/good/f.gz", body)
    download_verified(
        [server.url + "/cut/f.gz", server.url + "/good/f.gz"], dest, digest, progress=False
    )
    assert dest.read_bytes() == body
    assert temp_leftovers(tmp_path) == []


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, RuntimeError])
def test_interrupt_mid_stream_leaves_no_file(server, tmp_path, monkeypatch, exc_type):
    body, digest = payload(300_000)
    server.serve("/good/f.gz", body)
    seen = []

    def interrupting_update(self, n=1):
        seen.append(n)
        raise exc_type("interrupted")

    monkeypatch.setattr(mnist.Progress, "update", interrupting_update)
    with pytest.raises(exc_type):
        download_verified(
            [server.url + "/good/f.gz", server.url + "/good/f.gz"],
            tmp_path / "f.gz",
            digest,
            progress=False,
        )
    assert len(seen) == 1  # interrupted after the first chunk, and no second mirror tried
    assert 0 < seen[0] < len(body)
    assert list(tmp_path.iterdir()) == []


def test_oversized_download_is_refused(server, tmp_path):
    body, digest = payload(5000)
    server.serve("/good/f.gz", body)
    with pytest.raises(DownloadError, match="over the 4096 limit"):
        download_verified(
            [server.url + "/good/f.gz"], tmp_path / "f.gz", digest, progress=False, max_bytes=4096
        )
    assert list(tmp_path.iterdir()) == []


def test_local_write_failure_is_not_blamed_on_the_mirror(server, tmp_path):
    body, digest = payload(1000)
    server.serve("/good/f.gz", body)
    with pytest.raises(DatasetError, match="cannot write") as excinfo:
        download_verified(
            [server.url + "/good/f.gz"], tmp_path / "no-dir" / "f.gz", digest, progress=False
        )
    assert not isinstance(excinfo.value, DownloadError)


def test_file_urls_work(tmp_path):
    body, digest = payload(1000)
    (tmp_path / "src.gz").write_bytes(body)
    dest = download_verified(
        [(tmp_path / "src.gz").as_uri()], tmp_path / "dst.gz", digest, progress=False
    )
    assert dest.read_bytes() == body


def test_no_urls_and_bad_hash_argument(tmp_path):
    with pytest.raises(DownloadError, match="no URLs"):
        download_verified([], tmp_path / "f", "0" * 64)
    with pytest.raises(ValueError, match="64 hex"):
        download_verified(["http://127.0.0.1:9/"], tmp_path / "f", "abc")


def test_progress_bar_only_when_asked(server, tmp_path, capsys):
    body, digest = payload(200_000)
    server.serve("/good/f.gz", body)
    download_verified([server.url + "/good/f.gz"], tmp_path / "a.gz", digest, progress=False)
    assert capsys.readouterr().err == ""
    download_verified([server.url + "/good/f.gz"], tmp_path / "b.gz", digest)  # not a tty
    assert capsys.readouterr().err == ""
    download_verified([server.url + "/good/f.gz"], tmp_path / "c.gz", digest, progress=True)
    err = capsys.readouterr().err
    assert err.startswith("\r") and err.endswith("\n")
    assert "c.gz: 100%" in err
    assert "200 kB/200 kB" in err


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch, server):
    """Small MNIST-format test files served at /good/, their hashes in the checksum table."""
    source = tmp_path / "source"
    images, labels = make_split(source, "test", n=20, seed=3)
    table = dict(mnist.MNIST_SHA256)
    for name in (IMAGES + ".gz", LABELS + ".gz"):
        body = (source / name).read_bytes()
        server.serve(f"/good/{name}", body)
        server.serve(f"/garbage/{name}", body[::-1])
        table[name] = hashlib.sha256(body).hexdigest()
    monkeypatch.setattr(mnist, "MNIST_SHA256", table)
    return images, labels


def test_load_mnist_downloads_verifies_and_caches(server, tmp_path, fake_mnist):
    images, labels = fake_mnist
    root = tmp_path / "cache" / "mnist"
    mirrors = [dead_mirror(), server.url + "/garbage", server.url + "/good/"]
    X, y = load_mnist("test", root=root, mirrors=mirrors, progress=False)
    np.testing.assert_array_equal(np.rint(X[:, 0] * 255).astype(np.uint8), images)
    np.testing.assert_array_equal(y, labels)
    assert sorted(p.name for p in root.iterdir()) == [IMAGES + ".gz", LABELS + ".gz"]

    requests_before = len(server.requests)
    X2, y2 = load_mnist("test", root=root, download=False)
    assert len(server.requests) == requests_before  # served from the cache
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)


def test_load_mnist_uses_mirror_env_and_data_dir(server, tmp_path, fake_mnist, monkeypatch):
    monkeypatch.setenv("CNNX_MNIST_MIRRORS", f"{dead_mirror()},{server.url}/good/")
    monkeypatch.setenv("CNNX_DATA_DIR", str(tmp_path / "data"))
    X, _ = load_mnist("test", progress=False)
    assert X.shape == (20, 1, 28, 28)
    assert (tmp_path / "data" / "mnist" / (IMAGES + ".gz")).is_file()


def test_load_mnist_downloads_only_missing_file(server, tmp_path, fake_mnist):
    root = tmp_path / "m"
    make_split(root, "test", n=20, seed=3)
    (root / (LABELS + ".gz")).unlink()
    load_mnist("test", root=root, mirrors=[server.url + "/good/"], progress=False)
    assert [p for p, _ in server.requests] == [f"/good/{LABELS}.gz"]


def test_load_mnist_all_mirrors_fail_message(server, tmp_path, fake_mnist):
    root = tmp_path / "m"
    dead = dead_mirror()
    mirrors = [dead, server.url + "/missing/", server.url + "/garbage/"]
    with pytest.raises(DatasetError) as excinfo:
        load_mnist("test", root=root, mirrors=mirrors, progress=False)
    message = str(excinfo.value)
    assert_one_short_line(message, root)
    assert "3 mirrors failed" in message and "refused" in message
    # each URL with its reason is in the DownloadError behind the message
    attempts = excinfo.value.__cause__.attempts
    assert [url for url, _ in attempts] == [base + IMAGES + ".gz" for base in mirrors]
    reasons = " ".join(reason for _, reason in attempts)
    assert "HTTP 404" in reasons and "SHA-256 mismatch" in reasons
    assert not root.exists()  # nothing partial cached, no empty directory


def test_load_mnist_default_env_mirror_is_dead_in_tests(tmp_path):
    # With the autouse fixture the only mirror is a closed local port: the failure
    # message must come back quickly and say so, without touching the internet.
    with pytest.raises(DatasetError, match="refused"):
        load_mnist("test", root=tmp_path / "m", progress=False)


def test_load_mnist_with_no_mirrors(tmp_path):
    with pytest.raises(DatasetError, match="no download mirrors"):
        load_mnist("test", root=tmp_path / "m", mirrors=[], progress=False)


# --- the real MNIST test set (CNNX_DATA_DIR) ------------------------------------------------------

# SHA-256 of the decompressed official t10k IDX files.
REAL_IDX_SHA256 = {
    IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def _real_mnist_dir():
    """The real t10k files' directory; skip without CNNX_DATA_DIR, FAIL if it lacks them.

    CI sets CNNX_DATA_DIR and promises these tests run there, so a missing file is a
    failure, never a quiet skip.
    """
    if not REAL_DATA_DIR:
        pytest.skip(
            "CNNX_DATA_DIR is not set; point it at a directory whose mnist/ holds "
            f"{IMAGES}[.gz] and {LABELS}[.gz] to run the real-MNIST tests"
        )
    directory = Path(REAL_DATA_DIR) / "mnist"
    for name in (IMAGES, LABELS):
        if not ((directory / name).is_file() or (directory / (name + ".gz")).is_file()):
            pytest.fail(f"CNNX_DATA_DIR is set but {directory} has no {name}[.gz]")
    return directory


def _raw_idx(directory, name):
    plain = directory / name
    if plain.is_file():
        return plain.read_bytes()
    return gzip.decompress((directory / (name + ".gz")).read_bytes())


def test_real_mnist_test_set_loads(monkeypatch):
    directory = _real_mnist_dir()
    monkeypatch.setenv("CNNX_DATA_DIR", REAL_DATA_DIR)
    X, y = load_mnist("test", download=False)
    assert X.shape == (10000, 1, 28, 28) and X.dtype == np.float32
    assert float(X.min()) == 0.0 and float(X.max()) == 1.0
    assert y.shape == (10000,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=10)
    assert counts.size == 10 and (counts > 0).all()
    # Loaded values are exactly the file's pixels / 255 and its labels.
    raw_images = np.frombuffer(_raw_idx(directory, IMAGES), np.uint8, offset=16)
    raw_labels = np.frombuffer(_raw_idx(directory, LABELS), np.uint8, offset=8)
    np.testing.assert_array_equal(np.rint(X.ravel() * 255).astype(np.uint8), raw_images)
    np.testing.assert_array_equal(y, raw_labels)


def test_real_mnist_files_are_the_originals():
    directory = _real_mnist_dir()
    for name, expected in REAL_IDX_SHA256.items():
        assert hashlib.sha256(_raw_idx(directory, name)).hexdigest() == expected, name


def test_mnist_file_tests_fail_not_skip_when_cnnx_data_dir_lacks_the_files(tmp_path, monkeypatch):
    """With CNNX_DATA_DIR set to a directory without MNIST, the real-MNIST tests fail."""
    import test_mnist_training

    empty = tmp_path / "empty-data"
    (empty / "mnist").mkdir(parents=True)
    monkeypatch.setattr(sys.modules[__name__], "REAL_DATA_DIR", str(empty))
    for test in (test_real_mnist_test_set_loads, test_real_mnist_files_are_the_originals):
        with pytest.raises(BaseException) as outcome:  # a skip is a BaseException too
            test(monkeypatch) if test is test_real_mnist_test_set_loads else test()
        assert isinstance(outcome.value, pytest.fail.Exception), repr(outcome.value)
        assert "has no t10k" in str(outcome.value)

    # the training test (skipped only when CNNX_DATA_DIR is unset) fails too
    monkeypatch.setenv("CNNX_DATA_DIR", str(empty))
    with pytest.raises(DatasetError, match="not found"):
        test_mnist_training.test_mnist_cnn_reaches_93_percent_on_held_out_images()


def test_skip_message_names_no_machine_specific_path():
    text = Path(__file__).read_text()
    start = text.index("def _real_mnist_dir")
    body = text[start : text.index("\ndef ", start + 1)]
    assert "/work/" not in body and "/home/" not in body
