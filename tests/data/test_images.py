"""Image data loading: IDX and CIFAR binary readers, folders of images, the folder cache and downloads.

Everything runs on tiny files the tests write; downloads go to an HTTP server on 127.0.0.1 started here.
"""

import gzip
import hashlib
import http.server
import io
import os
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from tiny_diffusion.data import download, images
from tiny_diffusion.data.image_names import IMAGE_DATASETS, dataset_kind
from tiny_diffusion.data.images import cifar, folders, load_images
from tiny_diffusion.data.images.cifar import read_cifar_binary
from tiny_diffusion.data.images.idx import read_idx, write_idx
from tiny_diffusion.errors import InputError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Each test gets its own empty cache and no mirror override from the environment."""
    monkeypatch.setenv("TINY_DIFFUSION_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("TINY_DIFFUSION_MIRROR", raising=False)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def save(path, array, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path, **kw)
    return path


# ---------------------------------------------------------------------------------------------------------------
# names


def test_image_names_are_pure_python_and_know_folders(tmp_path):
    assert tuple(IMAGE_DATASETS) == ("mnist", "fashion-mnist", "cifar10")  # names -> one-line descriptions
    assert dataset_kind("cifar10") == dataset_kind(str(tmp_path)) == "images"
    assert dataset_kind("moons") == dataset_kind(str(tmp_path / "missing")) == "points"
    # loaded on its own in a fresh interpreter, the module pulls in none of the heavy packages
    path = os.path.join(os.path.dirname(download.__file__), "image_names.py")
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('n', sys.argv[1]); "
            "spec.loader.exec_module(importlib.util.module_from_spec(spec)); "
            "print(sorted({'numpy', 'torch', 'PIL'} & set(sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------------------------
# IDX


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip_and_header_layout(tmp_path, suffix):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 5, 4), dtype=np.uint8)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    write_idx(tmp_path / f"i{suffix}", imgs)
    write_idx(tmp_path / f"l{suffix}", labels)
    np.testing.assert_array_equal(read_idx(tmp_path / f"i{suffix}"), imgs)
    np.testing.assert_array_equal(read_idx(tmp_path / f"l{suffix}"), labels)
    raw = (tmp_path / f"i{suffix}").read_bytes()
    if suffix:
        assert raw[:2] == b"\x1f\x8b"
        raw = gzip.decompress(raw)
    # LeCun's layout: 0, 0, type 0x08, ndim, big-endian sizes, then the bytes in C order
    assert raw == bytes([0, 0, 8, 3]) + (3).to_bytes(4, "big") + (5).to_bytes(4, "big") + (4).to_bytes(4, "big") \
        + imgs.tobytes()


def _idx_bytes(dims, data: bytes, dtype=0x08, magic=b"\0\0") -> bytes:
    return magic + bytes([dtype, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + data


@pytest.mark.parametrize("content, needle", [
    (_idx_bytes((2, 3, 3), bytes(17)), "truncated"),  # one byte short
    (_idx_bytes((2, 3, 3), bytes(19)), "more data"),
    (_idx_bytes((2, 3, 3), bytes(18), magic=b"\x12\x34"), "not an IDX file"),
    (_idx_bytes((2, 3, 3), bytes(72), dtype=0x0D), "0x0d"),  # float32 IDX
    (_idx_bytes((2, 3, 3), b"")[:9], "truncated IDX header"),
    (b"\0\0", "too short"),
    (_idx_bytes((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFF), b""), "corrupt"),  # a lying header allocates nothing
])
def test_idx_bad_files_raise_one_line(tmp_path, content, needle):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(InputError) as e:
        read_idx(path)
    assert needle in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_idx_truncated_gzip_raises(tmp_path):
    path = tmp_path / "x.gz"
    write_idx(path, np.arange(600, dtype=np.uint8).reshape(6, 10, 10) % 251)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(InputError, match="x.gz"):
        read_idx(path)


def _write_mnist(folder, n=5, test=False, gz=True, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    imgs, labels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)
    ext = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{ext}", imgs)
    write_idx(folder / "train-labels-idx1-ubyte", labels)  # one raw, one gzipped: both used as they are
    if test:
        write_idx(folder / f"t10k-images-idx3-ubyte{ext}", imgs[:2])
        write_idx(folder / f"t10k-labels-idx1-ubyte{ext}", labels[:2])
    return imgs, labels


@pytest.mark.parametrize("sub", ["", "mnist"])
def test_load_mnist_from_data_dir_train_only(tmp_path, sub):
    imgs, labels = _write_mnist(tmp_path / "d" / sub)
    ds = load_images("mnist", data_dir=tmp_path / "d", log=lambda m: None)
    assert ds.train.shape == (5, 1, 28, 28) and ds.train.dtype == np.uint8
    np.testing.assert_array_equal(ds.train[:, 0], imgs)
    assert ds.train_labels.dtype == np.int64 and list(ds.train_labels) == list(labels)
    assert ds.test is None and ds.test_labels is None
    assert ds.classes == [str(d) for d in range(10)] and ds.flip is False and ds.name == "mnist"
    assert not (tmp_path / "cache").exists()  # nothing downloaded or cached


@pytest.mark.parametrize("size", [14, 32, 9])
def test_load_fashion_with_test_split_resized_like_pillow(tmp_path, size):
    imgs, _ = _write_mnist(tmp_path, test=True, gz=False)
    ds = load_images("fashion-mnist", data_dir=tmp_path, image_size=size, channels=3, log=lambda m: None)
    assert ds.train.shape == (5, 3, size, size) and ds.test.shape == (2, 3, size, size) and len(ds.test_labels) == 2
    assert (ds.train[:, 0] == ds.train[:, 2]).all()  # gray replicated to RGB
    # the reference: Pillow's antialiased Lanczos resize, one image at a time
    reference = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.LANCZOS))
                          for im in imgs])
    assert np.abs(ds.train[:, 0].astype(int) - reference).max() <= 1
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot" and ds.name != "fashion-mnist"


def test_mnist_labels_count_must_match(tmp_path):
    _write_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(InputError, match="labels"):
        load_images("mnist", data_dir=tmp_path, log=lambda m: None)


# ---------------------------------------------------------------------------------------------------------------
# CIFAR-10 binary


def _cifar_bytes(imgs, labels) -> bytes:
    """Records written from the format's definition: label byte, then the R, G, B planes row by row."""
    out = bytearray()
    for img, label in zip(imgs, labels):
        out.append(int(label))
        for c in range(3):
            for row in range(32):
                out += bytes(int(v) for v in img[c, row])
    return bytes(out)


def test_cifar_binary_round_trip_channel_order(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    imgs[0] = 0
    imgs[0, 0] = 255  # first record pure red
    labels = [3, 9, 0]
    (tmp_path / "a.bin").write_bytes(_cifar_bytes(imgs[:2], labels[:2]))
    (tmp_path / "b.bin").write_bytes(_cifar_bytes(imgs[2:], labels[2:]))
    got, got_labels = read_cifar_binary([tmp_path / "a.bin", tmp_path / "b.bin"])
    np.testing.assert_array_equal(got, imgs)
    assert got_labels.dtype == np.int64 and list(got_labels) == labels
    assert (got[0, 0] == 255).all() and (got[0, 1:] == 0).all()


def test_cifar_binary_bad_length_and_labels(tmp_path):
    (tmp_path / "short.bin").write_bytes(bytes(3072))
    with pytest.raises(InputError, match="3073"):
        read_cifar_binary(tmp_path / "short.bin")
    (tmp_path / "c100.bin").write_bytes(bytes([42]) + bytes(3072))
    with pytest.raises(InputError, match="CIFAR-100"):
        read_cifar_binary(tmp_path / "c100.bin")


def test_load_cifar_from_data_dir(tmp_path):
    rng = np.random.default_rng(2)
    imgs = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "data_batch_1.bin").write_bytes(_cifar_bytes(imgs[:3], [1, 2, 3]))
    (folder / "test_batch.bin").write_bytes(_cifar_bytes(imgs[3:], [4]))
    ds = load_images("cifar10", data_dir=tmp_path, log=lambda m: None)
    np.testing.assert_array_equal(ds.train, imgs[:3])
    np.testing.assert_array_equal(ds.test, imgs[3:])
    assert list(ds.train_labels) == [1, 2, 3] and ds.flip is True and ds.classes[0] == "airplane"
    gray = load_images("cifar10", data_dir=tmp_path, channels=1, log=lambda m: None).train
    r, g, b = (imgs[:3, c].astype(float) for c in range(3))
    assert gray.shape == (3, 1, 32, 32) and np.abs(gray[:, 0] - (0.299 * r + 0.587 * g + 0.114 * b)).max() <= 0.51


# ---------------------------------------------------------------------------------------------------------------
# folders


def _rgb(h, w, color):
    return np.broadcast_to(np.array(color, np.uint8), (h, w, 3))


def test_folder_with_classes(tmp_path):
    root = tmp_path / "pets"
    save(root / "dogs" / "b.png", _rgb(8, 8, (0, 0, 255)))
    save(root / "cats" / "a.PNG", _rgb(8, 8, (255, 0, 0)))
    save(root / "dogs" / "deeper" / "c.jpg", _rgb(8, 8, (0, 0, 250)), quality=95)
    (root / "cats" / "notes.txt").write_text("not an image")
    save(root / "loose.png", _rgb(8, 8, (0, 255, 0)))  # outside the class folders: no class, so skipped
    messages = []
    ds = load_images(str(root), log=messages.append)
    assert any("loose.png" in m and "skipped 1" in m for m in messages)
    assert ds.classes == ["cats", "dogs"] and list(ds.train_labels) == [0, 1, 1]
    assert ds.train.shape == (3, 3, 8, 8) and ds.train.dtype == np.uint8
    assert (ds.train[0, 0] == 255).all() and (ds.train[1, 2] == 255).all()
    assert ds.test is None and ds.flip is True and ds.name.startswith("folder-")


@pytest.mark.parametrize("layout", [["a.png", "b.png"], ["only/a.png", "only/b.png"]])
def test_folder_without_classes(tmp_path, layout):
    for rel in layout:
        save(tmp_path / "f" / rel, _rgb(6, 6, (10, 20, 30)))
    ds = load_images(str(tmp_path / "f"), log=lambda m: None)
    assert ds.train_labels is None and ds.classes is None and len(ds.train) == 2


def test_folder_grayscale_stays_one_channel_unless_forced(tmp_path):
    g = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    save(tmp_path / "g" / "a.png", g)
    ds = load_images(str(tmp_path / "g"), log=lambda m: None)
    assert ds.train.shape == (1, 1, 8, 8)
    np.testing.assert_array_equal(ds.train[0, 0], g)
    rgb = load_images(str(tmp_path / "g"), channels=3, log=lambda m: None).train
    assert rgb.shape == (1, 3, 8, 8) and all((rgb[0, c] == g).all() for c in range(3))


def test_folder_rgba_palette_and_16bit(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :2, 3] = 0  # left half transparent -> white
    rgba[:, 2:, 3] = 128  # right half half-transparent red on white
    save(tmp_path / "f" / "a.png", rgba)
    green = Image.fromarray(_rgb(4, 4, (0, 200, 0)).copy())
    green.convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "f" / "b.gif")  # palette -> RGB
    save(tmp_path / "f" / "c.png", np.full((4, 4), 65535 // 2, np.uint16))  # 16-bit mid gray
    ds = load_images(str(tmp_path / "f"), log=lambda m: None)
    assert ds.train.shape == (3, 3, 4, 4)
    a, b, c = ds.train
    assert (a[:, :, :2] == 255).all()
    expected_gb = round(255 * (1 - 128 / 255))  # alpha compositing: a*0 + (1-a)*255
    assert (a[0, :, 2:] == 255).all() and (np.abs(a[1:, :, 2:].astype(int) - expected_gb) <= 1).all()
    assert (np.abs(b.astype(int) - np.array([0, 200, 0])[:, None, None]) <= 2).all()
    assert (np.abs(c.astype(int) - 127) <= 1).all()  # scaled from 16 bits, not clipped at 255


def test_folder_resize_and_center_crop(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)  # black | red | blue | black, 10 columns each
    img[:, 10:20, 0] = 255
    img[:, 20:30, 2] = 255
    save(tmp_path / "f" / "x.png", img)
    exact = load_images(str(tmp_path / "f"), log=lambda m: None).train  # default: min(h, w) = 20, a pure crop
    np.testing.assert_array_equal(exact[0], img[:, 10:30].transpose(2, 0, 1))
    small = load_images(str(tmp_path / "f"), image_size=16, log=lambda m: None).train[0].astype(int)
    assert small.shape == (3, 16, 16)
    assert (small[0, :, 1:7] >= 245).all() and (small[2, :, 1:7] <= 10).all()  # left: red
    assert (small[2, :, 9:15] >= 245).all() and (small[0, :, 9:15] <= 10).all()  # right: blue
    assert small[0, :, 0].min() > 200  # the black outer bands are cropped away


def test_folder_mixed_sizes_default_64(tmp_path):
    save(tmp_path / "f" / "a.png", _rgb(10, 12, (1, 2, 3)))
    save(tmp_path / "f" / "b.png", _rgb(30, 20, (1, 2, 3)))
    assert load_images(str(tmp_path / "f"), log=lambda m: None).train.shape == (2, 3, 64, 64)


def test_folder_corrupt_files_skipped_with_one_message(tmp_path):
    save(tmp_path / "f" / "good1.png", _rgb(5, 5, (9, 9, 9)))
    save(tmp_path / "f" / "good2.jpg", _rgb(5, 5, (9, 9, 9)))
    (tmp_path / "f" / "a_garbage.png").write_bytes(b"this is not a png at all")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    (tmp_path / "f" / "b_truncated.png").write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])
    messages = []
    ds = load_images(str(tmp_path / "f"), log=messages.append)
    assert len(ds.train) == 2
    skips = [m for m in messages if "skipped" in m]
    assert len(skips) == 1 and "skipped 2 " in skips[0] and "a_garbage.png" in skips[0]
    again = []
    load_images(str(tmp_path / "f"), log=again.append)  # from the cache: the same one warning
    assert [m for m in again if "skipped" in m] == skips


def test_folder_empty_or_unreadable_raises(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files"):
        load_images(str(tmp_path / "empty"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"\xff\xd8 nope")
    with pytest.raises(InputError, match="none of the 1 image files"):
        load_images(str(tmp_path / "bad"), log=lambda m: None)
    with pytest.raises(InputError, match="--dataset"):
        load_images(str(tmp_path / "missing"))


@pytest.mark.parametrize("size, channels, flag", [(0, None, "--image-size"), (-3, None, "--image-size"),
                                                  (2.5, None, "--image-size"), (None, 2, "--channels")])
def test_bad_size_or_channels(tmp_path, size, channels, flag):
    save(tmp_path / "f" / "a.png", _rgb(4, 4, (0, 0, 0)))
    with pytest.raises(InputError, match=flag):
        load_images(str(tmp_path / "f"), image_size=size, channels=channels)


def _png_header_only(width, height) -> bytes:
    """A valid PNG signature and IHDR claiming width x height RGB pixels, with almost no pixel data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64)))
            + chunk(b"IEND", b""))


def test_decompression_bomb_refused_undecoded(tmp_path, monkeypatch):
    save(tmp_path / "f" / "ok.png", _rgb(4, 4, (1, 1, 1)))
    (tmp_path / "f" / "bomb_huge.png").write_bytes(_png_header_only(100_000, 100_000))  # Pillow's own limit
    (tmp_path / "f" / "bomb_ours.png").write_bytes(_png_header_only(9000, 9000))  # under Pillow's, over ours
    decoded = []
    original = ImageFile.ImageFile.load

    def recording_load(self):
        decoded.append(os.path.basename(getattr(self, "filename", "")))
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_load)
    messages = []
    start = time.perf_counter()
    ds = load_images(str(tmp_path / "f"), log=messages.append)
    assert time.perf_counter() - start < 5
    assert len(ds.train) == 1 and set(decoded) == {"ok.png"}
    skips = [m for m in messages if "skipped" in m]
    assert len(skips) == 1 and "skipped 2 " in skips[0] and "bomb" in skips[0]


def test_symlink_loop_does_not_hang(tmp_path):
    root = tmp_path / "f"
    save(root / "a" / "x.png", _rgb(4, 4, (5, 5, 5)))
    os.symlink(root, root / "a" / "up")  # a/up -> f: a loop
    os.symlink(root / "self", root / "self")  # a symlink to itself
    result = {}
    worker = threading.Thread(target=lambda: result.update(ds=load_images(str(root), log=lambda m: None)),
                              daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "scanning a folder with a symlink loop hung"
    assert len(result["ds"].train) == 1  # the one image, found once


def test_folder_cache_skips_decoding_and_notices_changes(tmp_path, monkeypatch):
    root = tmp_path / "f"
    save(root / "a.png", _rgb(6, 6, (10, 0, 0)))
    save(root / "b.png", _rgb(6, 6, (0, 10, 0)))
    calls = []
    original = folders._decode
    monkeypatch.setattr(folders, "_decode", lambda *a: calls.append(a[0].name) or original(*a))
    first = load_images(str(root), log=lambda m: None)
    assert len(calls) == 2 and list((tmp_path / "cache" / "folders").glob("*.npz"))

    def refuse(*a):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(folders, "_decode", refuse)
    again = load_images(str(root), log=lambda m: None)
    np.testing.assert_array_equal(again.train, first.train)
    assert again.name == first.name and again.train_labels is None

    monkeypatch.setattr(folders, "_decode", lambda *a: calls.append(a[0].name) or original(*a))
    st = os.stat(root / "a.png")
    os.utime(root / "a.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched
    assert len(load_images(str(root), log=lambda m: None).train) == 2 and len(calls) == 4
    save(root / "c.png", _rgb(6, 6, (0, 0, 10)))  # added
    assert len(load_images(str(root), log=lambda m: None).train) == 3 and len(calls) == 7
    load_images(str(root), image_size=3, log=lambda m: None)  # other settings: decoded anew
    assert len(calls) == 10


# ---------------------------------------------------------------------------------------------------------------
# downloads from a local HTTP server


class _Server:
    """Serves self.routes {path: bytes | (bytes, declared_length)} on 127.0.0.1; records request paths."""

    def __init__(self):
        self.routes, self.requests = {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                body, length = body if isinstance(body, tuple) else (body, len(body))
                self.send_response(200)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def dead_url():
    """A URL on a port where nothing listens: connection refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


PAYLOAD = bytes(range(256)) * 40


def test_fetch_caches_and_second_call_makes_no_request(server, tmp_path):
    server.routes["/m/data.bin"] = PAYLOAD
    path = download.fetch("data.bin", [server.url + "/m/"], md5(PAYLOAD), tmp_path / "dl")
    assert path == tmp_path / "dl" / "data.bin" and path.read_bytes() == PAYLOAD and len(server.requests) == 1
    again = download.fetch("data.bin", [server.url + "/m/"], md5(PAYLOAD), tmp_path / "dl")
    assert again == path and len(server.requests) == 1
    assert os.listdir(tmp_path / "dl") == ["data.bin"]  # no temporary files left
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    assert download.fetch("data.bin", [server.url + "/m/"], sha, tmp_path / "dl") == path  # sha256 works too


def test_fetch_refuses_wrong_checksum_and_uses_next_mirror(server, dead_url, tmp_path):
    server.routes["/bad/data.bin"] = PAYLOAD[:-1] + b"x"
    server.routes["/good/data.bin"] = PAYLOAD
    mirrors = [dead_url, server.url + "/missing/", server.url + "/bad/", server.url + "/good"]
    path = download.fetch("data.bin", mirrors, md5(PAYLOAD), tmp_path / "dl")
    assert path.read_bytes() == PAYLOAD
    assert server.requests == ["/missing/data.bin", "/bad/data.bin", "/good/data.bin"]


def test_fetch_replaces_a_corrupt_cached_file(server, tmp_path):
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "data.bin").write_bytes(b"half a file")
    server.routes["/m/data.bin"] = PAYLOAD
    assert download.fetch("data.bin", [server.url + "/m/"], md5(PAYLOAD), tmp_path / "dl").read_bytes() == PAYLOAD


def test_fetch_all_mirrors_failing_is_one_line_input_error(server, dead_url, tmp_path):
    server.routes["/short/data.bin"] = (PAYLOAD[:1000], len(PAYLOAD))  # connection closed early
    server.routes["/prefix/data.bin"] = PAYLOAD[:1000]  # honest length, but only part of the file
    server.routes["/wrong/data.bin"] = b"something else"
    mirrors = [dead_url] + [server.url + p for p in ("/short/", "/prefix/", "/wrong/", "/404/")]
    with pytest.raises(InputError) as e:
        download.fetch("data.bin", mirrors, md5(PAYLOAD), tmp_path / "dl")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("data.bin:") and "--data-dir" in msg
    assert all(m in msg for m in mirrors[1:]) and dead_url.rstrip("/") in msg
    assert f"truncated, 1000 of {len(PAYLOAD)} bytes" in msg and "HTTP 404" in msg and "is not the published" in msg
    assert not (tmp_path / "dl" / "data.bin").exists() and os.listdir(tmp_path / "dl") == []


def test_mirror_env_overrides_the_built_in_list(server, monkeypatch, tmp_path, dead_url):
    server.routes["/local/data.bin"] = PAYLOAD
    monkeypatch.setenv("TINY_DIFFUSION_MIRROR", server.url + "/local/")
    assert download.fetch("data.bin", [dead_url], md5(PAYLOAD), tmp_path / "dl").read_bytes() == PAYLOAD


def test_load_mnist_downloads_train_once_test_optional(server, monkeypatch, tmp_path):
    imgs, labels = _write_mnist(tmp_path / "src", n=4)
    write_idx(tmp_path / "src" / "train-labels-idx1-ubyte.gz", labels)
    files = {name: (tmp_path / "src" / name).read_bytes()
             for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")}
    for name, data in files.items():
        server.routes[f"/mnist/{name}"] = data
    checksums = dict(images.CHECKSUMS["mnist"], **{n: md5(d) for n, d in files.items()})
    monkeypatch.setitem(images.CHECKSUMS, "mnist", checksums)
    monkeypatch.setitem(images.MIRRORS, "mnist", [server.url + "/mnist/"])
    messages = []
    ds = load_images("mnist", log=messages.append)
    np.testing.assert_array_equal(ds.train[:, 0], imgs)
    assert list(ds.train_labels) == list(labels) and ds.test is None
    assert len([m for m in messages if "test split" in m]) == 1  # one note, no error
    assert (tmp_path / "cache" / "mnist" / "train-images-idx3-ubyte.gz").is_file()
    asked = [r for r in server.requests if "train" in r]
    assert len(asked) == 2
    (tmp_path / "nothing-here").mkdir()  # a folder without the files (one that does not exist is an error)
    load_images("mnist", data_dir=tmp_path / "nothing-here", log=lambda m: None)  # falls back to the cache
    assert [r for r in server.requests if "train" in r] == asked  # no second download


def _cifar_archive(imgs, evil=True) -> bytes:
    """A cifar-10-binary.tar.gz of 5 training batches of one image each and a test batch of the rest (and, if
    evil, a member whose path climbs out of the folder)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        members = {f"cifar-10-batches-bin/data_batch_{i + 1}.bin": _cifar_bytes(imgs[i:i + 1], [i]) for i in range(5)}
        members["cifar-10-batches-bin/test_batch.bin"] = _cifar_bytes(imgs[5:], [9] * len(imgs[5:]))
        if evil:
            members["../escape.bin"] = b"must not be written"
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_load_cifar_downloads_and_extracts_safely(server, monkeypatch, tmp_path):
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, (6, 3, 32, 32), dtype=np.uint8)
    archive = _cifar_archive(imgs)
    server.routes["/kriz/cifar-10-binary.tar.gz"] = archive
    monkeypatch.setitem(images.CHECKSUMS, "cifar10", {"cifar-10-binary.tar.gz": md5(archive)})
    monkeypatch.setenv("TINY_DIFFUSION_MIRROR", server.url + "/kriz/")
    ds = load_images("cifar10", log=lambda m: None)
    np.testing.assert_array_equal(ds.train, imgs[:5])
    np.testing.assert_array_equal(ds.test, imgs[5:])
    assert list(ds.train_labels) == [0, 1, 2, 3, 4] and list(ds.test_labels) == [9]
    assert not (tmp_path / "cache" / "escape.bin").exists() and not (tmp_path / "escape.bin").exists()
    load_images("cifar10", log=lambda m: None)
    assert len(server.requests) == 1


def test_a_cifar_archive_in_data_dir_enters_the_cache_only_if_checksum_true(server, monkeypatch, tmp_path):
    """16.5: a --data-dir archive is extracted into the shared cache, which later runs without --data-dir trust
    as if downloaded: a wrong archive is refused there, and batches extracted unchecked (by an older version)
    are downloaded again rather than trusted."""
    rng = np.random.default_rng(4)
    real, fake = (rng.integers(0, 256, (6, 3, 32, 32), dtype=np.uint8) for _ in range(2))
    real_archive = _cifar_archive(real, evil=False)
    monkeypatch.setitem(images.CHECKSUMS, "cifar10", {"cifar-10-binary.tar.gz": md5(real_archive)})
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "cifar-10-binary.tar.gz").write_bytes(_cifar_archive(fake, evil=False))
    with pytest.raises(InputError, match="is not the published") as e:
        load_images("cifar10", data_dir=tmp_path / "d", log=lambda m: None)
    assert "\n" not in str(e.value) and not (tmp_path / "cache" / "cifar10" / "data_batch_1.bin").exists()
    # what the unchecked extraction used to leave: batch files without the checksum marker
    cifar._extract_cifar(tmp_path / "d" / "cifar-10-binary.tar.gz", tmp_path / "cache" / "cifar10")
    (tmp_path / "cache" / "cifar10" / cifar.VERIFIED).unlink()
    server.routes["/kriz/cifar-10-binary.tar.gz"] = real_archive
    monkeypatch.setenv("TINY_DIFFUSION_MIRROR", server.url + "/kriz/")
    np.testing.assert_array_equal(load_images("cifar10", log=lambda m: None).train, real[:5])  # downloaded anew
    assert server.requests == ["/kriz/cifar-10-binary.tar.gz"]
    # the published archive in --data-dir is extracted and then used without any download
    monkeypatch.setenv("TINY_DIFFUSION_DATA", str(tmp_path / "cache2"))
    (tmp_path / "d" / "cifar-10-binary.tar.gz").write_bytes(real_archive)
    np.testing.assert_array_equal(load_images("cifar10", data_dir=tmp_path / "d", log=lambda m: None).train, real[:5])
    np.testing.assert_array_equal(load_images("cifar10", log=lambda m: None).train, real[:5])
    assert len(server.requests) == 1


def test_idx_files_of_another_data_set_are_refused_by_their_checksum(tmp_path, monkeypatch):
    """17.6: MNIST's .gz files given as Fashion-MNIST's are told apart by the published MD5s; a .gz of one's own
    (matching no published file) is used, with a line that says so."""
    _write_mnist(tmp_path / "d", test=True)
    sums = {name: md5((tmp_path / "d" / name).read_bytes())
            for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
    monkeypatch.setitem(images.CHECKSUMS, "mnist", dict(images.CHECKSUMS["mnist"], **sums))
    assert load_images("mnist", data_dir=tmp_path / "d", log=lambda m: pytest.fail(m)).train.shape == (5, 1, 28, 28)
    with pytest.raises(InputError) as e:
        load_images("fashion-mnist", data_dir=tmp_path / "d", log=lambda m: None)
    msg = str(e.value)
    assert "mnist's file" in msg and "not fashion-mnist's" in msg and "--dataset mnist" in msg and "\n" not in msg
    monkeypatch.setitem(images.CHECKSUMS, "mnist", {})  # now the files match no published one
    messages = []
    assert load_images("fashion-mnist", data_dir=tmp_path / "d", log=messages.append).train.shape == (5, 1, 28, 28)
    assert len(messages) == 3 and all("not the published fashion-mnist file" in m for m in messages)


@pytest.mark.parametrize("name, files", [
    ("mnist", ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
               "t10k-labels-idx1-ubyte.gz"]),
    ("cifar10", ["cifar-10-binary.tar.gz", "data_batch_1.bin", "data_batch_5.bin", "test_batch.bin"]),
])
def test_a_failed_download_lists_the_files_data_dir_needs(name, files, dead_url, monkeypatch):
    """17.7: the way out of a failed download is --data-dir; the message names what that folder must hold."""
    monkeypatch.setenv("TINY_DIFFUSION_MIRROR", dead_url)
    with pytest.raises(InputError) as e:
        load_images(name, log=lambda m: None)
    msg = str(e.value)
    assert "--data-dir FOLDER" in msg and all(f in msg for f in files) and "\n" not in msg


def test_a_point_set_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    """`--dataset dino` in a folder that holds a dino/ folder (e.g. an earlier `sample --out dino/`) is the
    dinosaur; ./dino is the folder."""
    from tiny_diffusion.config import TrainConfig

    monkeypatch.chdir(tmp_path)
    (tmp_path / "dino").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "dino" / "a.png")
    assert not TrainConfig(dataset="dino").images
    assert TrainConfig(dataset="./dino").images
    assert TrainConfig(dataset="mnist").images
