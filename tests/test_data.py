"""Data loaders: every format on tiny files made here, the splits' contracts, and bad input as NasError."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.accuracy import load_data
from nas.accuracy.data import _SafeUnpickler
from nas.errors import NasError

SHARED_NPZ = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10_subset.npz"


def _images(n: int, seed: int, classes: int = 3, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Images whose mean colour encodes the class, so a mix-up between images and labels shows."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.integers(0, 40, (n, 3, size, size), dtype=np.uint8) + (y * 60).astype(np.uint8)[:, None, None, None]
    return x, y.astype(np.int64)


def _write_npz(path: Path, n_train: int = 30, n_test: int = 12, channels_last: bool = False, **override) -> Path:
    x_train, y_train = _images(n_train, 0)
    x_test, y_test = _images(n_test, 1)
    if channels_last:
        x_train, x_test = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, **override}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def _raw(data, split) -> set[bytes]:
    """The uint8 images a split was made from (undoing the normalisation), as hashable keys."""
    mean, std = torch.tensor(data.mean)[:, None, None], torch.tensor(data.std)[:, None, None]
    return {((x * std + mean) * 255).round().to(torch.uint8).numpy().tobytes() for x in split.x}


def _keys(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x}


def test_npz_splits_are_disjoint_balanced_and_normalised(tmp_path):
    data = load_data(f"npz:{_write_npz(tmp_path / 'd.npz')}", val_fraction=0.2)
    assert (len(data.train), len(data.val), len(data.test)) == (24, 6, 12)
    assert data.num_classes == 3 and data.image_size == 8
    assert data.train.x.dtype == torch.float32 and data.train.y.dtype == torch.int64
    assert data.train.x.shape[1:] == (3, 8, 8)
    # val is drawn from the training images, never from the test images, and does not overlap train
    train_keys, test_keys = _keys(_images(30, 0)[0]), _keys(_images(12, 1)[0])
    val, train = _raw(data, data.val), _raw(data, data.train)
    assert val <= train_keys and not (val & test_keys) and not (val & train)
    assert _raw(data, data.test) == test_keys
    assert sorted(np.bincount(data.val.y.numpy()).tolist()) == [2, 2, 2]  # stratified
    assert abs(float(data.train.x.mean())) < 0.2  # normalised with the training statistics
    # labels still match their images: the class sets the brightness
    means = data.train.x.mean((1, 2, 3))
    assert all(means[data.train.y == 0].max() < means[data.train.y == c].min() for c in (1, 2))


def test_npz_channels_last_and_determinism(tmp_path):
    a = load_data(f"npz:{_write_npz(tmp_path / 'a.npz')}", seed=3)
    b = load_data(f"npz:{_write_npz(tmp_path / 'b.npz', channels_last=True)}", seed=3)
    c = load_data(f"npz:{_write_npz(tmp_path / 'a.npz')}", seed=4)
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.train.y, b.train.y)
    assert not torch.equal(a.val.y, c.val.y) or not torch.equal(a.val.x, c.val.x)


def test_limit_caps_train_and_test(tmp_path):
    data = load_data(f"npz:{_write_npz(tmp_path / 'd.npz')}", limit=15)
    assert len(data.train) + len(data.val) == 15 and len(data.test) == 12


def test_cifar10_batches_through_the_restricted_unpickler(tmp_path):
    for i in range(1, 3):
        x, y = _images(10, i, size=32)
        batch = {b"batch_label": b"training", b"labels": y.tolist(), b"data": x.reshape(10, -1), b"filenames": []}
        (tmp_path / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    x, y = _images(6, 9, size=32)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"labels": y.tolist(), b"data": x.reshape(6, -1)}))
    data = load_data(f"cifar10:{tmp_path}")
    assert len(data.train) + len(data.val) == 20 and len(data.test) == 6 and data.image_size == 32


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar10_refuses_code_in_a_pickle(tmp_path):
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [0]}))
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}))
    with pytest.raises(NasError, match=r"refusing to load builtins\.print"):
        load_data(f"cifar10:{tmp_path}")
    with pytest.raises(pickle.UnpicklingError):
        _SafeUnpickler(__import__("io").BytesIO(pickle.dumps(_Evil()))).load()


def test_imagefolder_with_and_without_test_folders(tmp_path):
    from PIL import Image

    def write(root: Path, classes: dict[str, int]):
        for c, (name, count) in enumerate(classes.items()):
            (root / name).mkdir(parents=True)
            for i in range(count):
                pixels = np.full((12, 20, 3), 60 * c + i, dtype=np.uint8)
                Image.fromarray(pixels).save(root / name / f"{i}.{'png' if i % 2 else 'jpg'}")

    write(tmp_path / "flat", {"cat": 10, "dog": 10, "eel": 10})
    data = load_data(f"imagefolder:{tmp_path / 'flat'}", image_size=16)
    assert data.image_size == 16 and data.num_classes == 3
    assert len(data.test) == 6 and len(data.train) + len(data.val) == 24

    write(tmp_path / "split" / "train", {"a": 6, "b": 6})
    write(tmp_path / "split" / "test", {"a": 2, "b": 3})
    data = load_data(f"imagefolder:{tmp_path / 'split'}")
    assert len(data.test) == 5 and sorted(data.test.y.tolist()) == [0, 0, 1, 1, 1] and data.image_size == 32


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: f"npz:{p / 'nope.npz'}", "does not exist"),
        (lambda p: "mnist:/tmp", "unknown data kind 'mnist'"),
        (lambda p: "npz:", "needs a path"),
        (lambda p: f"npz:{_write_npz(p / 'd.npz', y_test=None)}", "missing key.*y_test"),
        (lambda p: f"npz:{_write_npz(p / 'd.npz', y_train=np.zeros(29, np.int64))}", "30 images but 29 labels"),
        (lambda p: f"npz:{_write_npz(p / 'd.npz', y_train=-np.ones(30, np.int64))}", "labels must be ≥ 0"),
        (lambda p: f"npz:{_write_npz(p / 'd.npz', y_train=np.full(30, 0.5))}", "labels must be integers"),
        (lambda p: f"npz:{_write_npz(p / 'd.npz', y_test=np.full(12, 7))}", "test label 7 is outside the training"),
        (lambda p: f"npz:{_write_npz(p / 'd.npz', x_train=np.zeros((30, 8, 8), np.uint8))}", "N×3×H×W"),
        (lambda p: f"npz:{_write_npz(p / 'd.npz', x_train=np.zeros((30, 4, 8, 8), np.uint8))}", "3 channels"),
        (lambda p: f"npz:{_write_npz(p / 'd.npz', x_test=np.zeros((12, 3, 16, 16), np.uint8))}", "train images are"),
        (lambda p: (p / "bad.npz").write_text("not a zip") and f"npz:{p / 'bad.npz'}", "cannot read"),
        (lambda p: f"cifar10:{p}", "no data_batch_"),
        (lambda p: (p / "x.txt").write_text("x") and f"imagefolder:{p}", "needs at least 2 class folders"),
        (lambda p: "synthetic:10", "synthetic:N_TRAIN,N_TEST"),
    ],
)
def test_bad_input_is_a_one_line_nas_error(tmp_path, make, message):
    with pytest.raises(NasError, match=message) as info:
        load_data(make(tmp_path))
    assert "\n" not in str(info.value)


def test_empty_class_folder_is_named(tmp_path):
    from PIL import Image

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for i in range(5):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a" / f"{i}.png")
    with pytest.raises(NasError, match=r"class folder .*b holds no images"):
        load_data(f"imagefolder:{tmp_path}")


@pytest.mark.skipif(not SHARED_NPZ.exists(), reason="../shared/data/cifar10_subset.npz is absent")
def test_shared_cifar10_subset():
    data = load_data(f"npz:{SHARED_NPZ}")
    assert data.num_classes == 10 and data.image_size == 32
    assert (len(data.train), len(data.val), len(data.test)) == (4068, 1017, 1017)


# ---------------------------------------------------------------------------------------------- hostile files


def _npz_claiming(path: Path, shape: tuple, descr: str = "|u1", payload: bytes = b"") -> Path:
    """An npz whose x_train header claims `shape` over `payload` (the other arrays are real)."""
    import io
    import zipfile

    _write_npz(path)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["x_train.npy"] = header.getvalue() + payload
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


class _Code:
    def __reduce__(self):
        return (print, ("this would have run",))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: f"npz:{_npz_claiming(p / 'd.npz', (10**6, 3, 32, 32))}", "claims .* the archive holds less"),
        (lambda p: f"npz:{_npz_claiming(p / 'd.npz', (2, 3, 5000, 5000))}", "limit of 4096 pixels"),
        (lambda p: f"npz:{_npz_claiming(p / 'd.npz', (1,), '|O', pickle.dumps(np.array([_Code()])))}", "objects"),
        (lambda p: f"npz:{_write_npz(p / 'd.npz', y_train=np.full(30, 10**9))}", "at most 100000 classes"),
        (lambda p: "synthetic:1000000000,10", "MAX_DATA_VALUES"),
    ],
)
def test_hostile_files_are_refused_before_allocation(tmp_path, make, message):
    with pytest.raises(NasError, match=message) as info:
        load_data(make(tmp_path))
    assert "\n" not in str(info.value)


def test_numbers_of_the_loader_have_ranges(tmp_path):
    with pytest.raises(NasError, match="seed must be an integer from 0"):
        load_data("synthetic:40,20", seed=-1)
    with pytest.raises(NasError, match="image size must be an integer from 8 to 4096"):
        load_data(f"npz:{_write_npz(tmp_path / 'd.npz')}", image_size=100_000)


def test_special_files_never_block_a_reader(tmp_path):
    import os

    os.mkfifo(tmp_path / "d.npz")
    with pytest.raises(NasError, match="not a regular file"):
        load_data(f"npz:{tmp_path / 'd.npz'}")
    cifar = tmp_path / "cifar"
    cifar.mkdir()
    os.mkfifo(cifar / "data_batch_1")
    (cifar / "test_batch").write_bytes(b"")
    with pytest.raises(NasError, match="not a regular file"):
        load_data(f"cifar10:{cifar}")


def test_an_image_that_claims_billions_of_pixels_is_refused(tmp_path):
    import struct
    import zlib

    from PIL import Image

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    for c in "ab":
        (tmp_path / c).mkdir()
        for i in range(5):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / c / f"{i}.png")
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    (tmp_path / "a" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    with pytest.raises(NasError, match=r"cannot read image .*0\.png"):
        load_data(f"imagefolder:{tmp_path}")
