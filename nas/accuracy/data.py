"""Data sets for proxy training: `load_data(spec)` → `DataSplits` (train / val / test tensors).

Specs (`--data`):

- ``synthetic`` (or ``synthetic:N_TRAIN,N_TEST``): the built-in generated task of `nas.accuracy.synthetic`,
  5,000 training and 1,000 test images by default; the test images come from a different seed stream.
- ``cifar10:DIR``: the python batches of CIFAR-10 (``data_batch_1`` … ``data_batch_5``, ``test_batch``, as in
  ``cifar-10-batches-py``). That format is a pickle; it is read with a restricted unpickler that can build
  nothing but plain containers, strings, numbers and numpy arrays (`_SafeUnpickler`), so a hostile file fails
  instead of running code.
- ``imagefolder:DIR``: one folder per class holding PNG/JPEG images, resized to 32×32 (``image_size``). If DIR
  has ``train/`` and ``test/`` (or ``val/``) subfolders they are the two splits; otherwise a stratified 20% of each
  class is held out as the test split (deterministic for the seed).
- ``npz:FILE``: keys ``x_train``, ``y_train``, ``x_test``, ``y_test``; images N×3×H×W or N×H×W×3, uint8 (0–255) or
  float (0–1); read with ``allow_pickle=False``, each array's header checked (dtype, shape, size) before its data
  is read, so an archive that claims a huge array is refused without allocating it.

Every file is untrusted: at most `MAX_DATA_VALUES` image values in all (kept in memory as float32: 4 GiB), images
at most `nas.arch.MAX_RESOLUTION` wide, labels below `nas.arch.MAX_CLASSES`; anything else is one NasError line.

Any spec may end with ``#first=N``: keep only the first N training images of the source, in its own order (the
validation split is then carved out of them; the test split is unchanged), e.g.
``npz:cifar10.npz#first=20000``. The suffix is part of the data's name, so runs on it are told apart.

The validation split is always carved out of the *training* images (a stratified `val_fraction`, chosen by the
seed): search and NetAdapt select on it, never on the test split. Images are normalised per channel with the
training split's mean and std and kept in memory as float32 N×3×H×W tensors; labels are int64.
"""

from __future__ import annotations

import io
import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np
import torch

from nas.accuracy import synthetic
from nas.arch import MAX_CLASSES, MAX_RESOLUTION
from nas.errors import NasError
from nas.io import check_file, read_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
KINDS = ("synthetic", "cifar10", "imagefolder", "npz")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# Image values a data set may hold in all (train and test): 4 GiB once normalised to float32, 5.6× CIFAR-10.
MAX_DATA_VALUES = 2**30


class Split(NamedTuple):
    """One split: `x` float32 N×3×H×W (normalised), `y` int64 N. Unpacks as `(x, y)`."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:  # the number of images, not the tuple's length
        return int(self.y.shape[0])


@dataclass(frozen=True)
class DataSplits:
    train: Split
    val: Split
    test: Split
    num_classes: int
    image_size: int
    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def summary(self) -> str:
        return (
            f"{self.name}: {len(self.train)} train / {len(self.val)} val / {len(self.test)} test, "
            f"{self.num_classes} classes, {self.image_size}×{self.image_size}"
        )


# ---------------------------------------------------------------------------------------------- entry point


def load_data(
    spec: str = "synthetic",
    seed: int = 0,
    val_fraction: float = 0.2,
    limit: int | None = None,
    image_size: int = 32,
) -> DataSplits:
    """Load a data set by spec (see the module docstring). `limit` caps the training images (before the val split)
    and the test images, keeping the first ones of a seeded stratified shuffle."""
    if not isinstance(spec, str):
        raise NasError(f"--data must be a string such as synthetic or npz:FILE, got {spec!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise NasError(f"seed must be an integer from 0 to {2**32 - 1}, got {seed!r}")
    if not 0 < val_fraction < 1:
        raise NasError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if limit is not None and limit < 2:
        raise NasError(f"limit must be at least 2, got {limit}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 8 <= image_size <= MAX_RESOLUTION:
        raise NasError(f"image size must be an integer from 8 to {MAX_RESOLUTION} (MAX_RESOLUTION), got {image_size!r}")
    first = None
    if "#" in spec:
        spec, _, option = spec.rpartition("#")
        key, _, value = option.partition("=")
        if key != "first" or not value.isdigit() or int(value) < 2:
            raise NasError(f"--data {spec}#{option}: the only option is #first=N (N ≥ 2 training images)")
        first = int(value)
    kind, _, arg = spec.partition(":")
    if kind == "synthetic":
        x_train, y_train, x_test, y_test = _synthetic(arg, seed)
        name = "synthetic"
    elif kind in ("cifar10", "imagefolder", "npz"):
        if not arg:
            raise NasError(f"--data {kind}: needs a path, as in {kind}:{'FILE' if kind == 'npz' else 'DIR'}")
        path = Path(arg).expanduser()
        if not path.exists():
            raise NasError(f"--data {spec}: {path} does not exist")
        loader = {"cifar10": _cifar10, "imagefolder": _imagefolder, "npz": _npz}[kind]
        x_train, y_train, x_test, y_test = loader(path, seed, image_size)
        name = f"{kind}:{path}"
    else:
        raise NasError(
            f"unknown data kind {kind!r} in --data {spec!r} (known: synthetic, cifar10:DIR, imagefolder:DIR, npz:FILE)"
        )

    if first is not None:
        x_train, y_train = x_train[:first], y_train[:first]
        name += f"#first={first}"
    x_train, y_train = _check(x_train, y_train, f"{spec} (train)")
    x_test, y_test = _check(x_test, y_test, f"{spec} (test)")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise NasError(f"--data {spec}: train images are {x_train.shape[1:]} but test images {x_test.shape[1:]}")
    num_classes = int(y_train.max()) + 1
    if y_test.max() >= num_classes:
        raise NasError(
            f"--data {spec}: test label {int(y_test.max())} is outside the training labels 0–{num_classes - 1}"
        )
    if num_classes < 2:
        raise NasError(f"--data {spec}: needs at least 2 classes, the labels hold {num_classes}")

    rng = np.random.default_rng(seed)
    order = _stratified_order(y_train, rng)
    if limit is not None:
        order = order[:limit]
        x_test, y_test = _take(x_test, y_test, _stratified_order(y_test, rng)[:limit])
    n_val = max(1, round(len(order) * val_fraction))
    if n_val >= len(order):
        raise NasError(f"--data {spec}: {len(order)} training images are too few to hold out a validation split")
    # The stratified order interleaves classes, so its head is a class-balanced validation split.
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    x_val, y_val = _take(x_train, y_train, val_idx)
    x_train, y_train = _take(x_train, y_train, train_idx)

    train_f = _to_float(x_train)
    mean = train_f.mean(axis=(0, 2, 3))
    std = train_f.std(axis=(0, 2, 3)) + 1e-6

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        xf = train_f if x is x_train else _to_float(x)
        xn = (xf - mean[None, :, None, None]) / std[None, :, None, None]
        return Split(torch.from_numpy(np.ascontiguousarray(xn, dtype=np.float32)), torch.from_numpy(y.astype(np.int64)))

    return DataSplits(
        train=split(x_train, y_train),
        val=split(x_val, y_val),
        test=split(x_test, y_test),
        num_classes=num_classes,
        image_size=int(x_train.shape[2]),
        name=name,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
    )


# ---------------------------------------------------------------------------------------------- helpers


def _stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation that round-robins over the classes (each class shuffled), so any prefix is balanced."""
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    rank = np.empty(len(y), dtype=np.float64)
    for idx in per_class:
        rank[idx] = (np.arange(len(idx)) + rng.random()) / len(idx)
    return np.argsort(rank, kind="stable")


def _take(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x[idx], y[idx]


def _to_float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)


def _check(x: object, y: object, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Images → N×3×H×W (uint8, or float in [0, 1]); labels → int64 N in [0, ∞). NasError naming the problem."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 4:
        raise NasError(f"{where}: images must be N×3×H×W or N×H×W×3, got shape {x.shape}")
    if x.shape[1] != 3 and x.shape[3] == 3:
        x = x.transpose(0, 3, 1, 2)
    if x.shape[1] != 3:
        raise NasError(f"{where}: images must have 3 channels (N×3×H×W or N×H×W×3), got shape {x.shape}")
    if x.shape[2] != x.shape[3] or x.shape[2] < 8:
        raise NasError(f"{where}: images must be square and at least 8×8, got {x.shape[2]}×{x.shape[3]}")
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.floating):
            raise NasError(f"{where}: images must be uint8 (0–255) or float (0–1), got {x.dtype}")
        if not np.isfinite(x).all():
            raise NasError(f"{where}: images hold NaN or infinite values")
    if y.ndim != 1:
        raise NasError(f"{where}: labels must be a 1-D array, got shape {y.shape}")
    if len(y) != len(x):
        raise NasError(f"{where}: {len(x)} images but {len(y)} labels")
    if len(y) == 0:
        raise NasError(f"{where}: no images")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise NasError(f"{where}: labels must be integers, got {y.dtype}")
    if y.min() < 0:
        raise NasError(f"{where}: labels must be ≥ 0, found {int(y.min())}")
    if y.max() >= MAX_CLASSES:
        raise NasError(f"{where}: label {int(y.max())} is out of range (at most {MAX_CLASSES} classes, MAX_CLASSES)")
    return np.ascontiguousarray(x), y.astype(np.int64)


def _synthetic(arg: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_train, n_test = 5000, 1000
    if arg:
        try:
            n_train, n_test = (int(v) for v in arg.split(","))
        except ValueError:
            raise NasError(f"--data synthetic:{arg}: expected synthetic:N_TRAIN,N_TEST (two integers)") from None
        if n_train < 20 or n_test < 10:
            raise NasError(f"--data synthetic:{arg}: needs at least 20 training and 10 test images")
        if (n_train + n_test) * 3 * 32 * 32 > MAX_DATA_VALUES:
            raise NasError(
                f"--data synthetic:{arg}: {n_train + n_test} images of 3×32×32 pass the limit of {MAX_DATA_VALUES:,} "
                "image values (MAX_DATA_VALUES)"
            )
    x_train, y_train = synthetic.generate(n_train, seed=seed * 2 + 1)
    x_test, y_test = synthetic.generate(n_test, seed=seed * 2 + 2)
    return x_train, y_train, x_test, y_test


def _npz(path: Path, seed: int, image_size: int) -> tuple[np.ndarray, ...]:
    check_file(path, "npz data file", 4 * MAX_DATA_VALUES)
    try:
        _check_npz_headers(path)
        with np.load(path, allow_pickle=False) as f:
            return tuple(f[k] for k in NPZ_KEYS)
    except NasError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as err:
        raise NasError(f"cannot read {path} as an .npz archive: {str(err).splitlines()[0]}") from None


def _check_npz_headers(path: Path) -> None:
    """Read the header of each array (dtype, shape) without its data, and refuse an archive whose arrays could
    not be data of ours: missing keys, objects (a pickle), images past the size limits, or more data claimed than
    the archive holds (numpy allocates what a header claims before reading)."""
    with zipfile.ZipFile(path) as archive:
        members = {name.removesuffix(".npy"): archive.getinfo(name) for name in archive.namelist()}
        missing = [k for k in NPZ_KEYS if k not in members]
        if missing:
            raise NasError(f"{path}: missing key(s) {', '.join(missing)} (has: {', '.join(members) or 'none'})")
        total = 0
        for key in NPZ_KEYS:
            with archive.open(members[key]) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            where = f"{path}: {key}"
            if dtype.hasobject:
                raise NasError(f"{where} holds Python objects (a pickle), which are never loaded")
            if key.startswith("x") and len(shape) == 4 and max(shape[1:]) > MAX_RESOLUTION:
                raise NasError(
                    f"{where}: images of shape {shape[1:]} pass the limit of {MAX_RESOLUTION} pixels (MAX_RESOLUTION)"
                )
            values = int(np.prod(shape, dtype=object))
            if values * dtype.itemsize > members[key].file_size:
                raise NasError(f"{where}: its header claims {shape} {dtype} but the archive holds less data")
            total += values
        if total > MAX_DATA_VALUES:
            raise NasError(f"{path}: {total:,} values, above the limit of {MAX_DATA_VALUES:,} (MAX_DATA_VALUES)")


# -- CIFAR-10 python batches


class _SafeUnpickler(pickle.Unpickler):
    """Builds only what the CIFAR batches hold: dicts, lists, bytes/str, numbers and numpy arrays.

    Any other global (the way a pickle runs code) is refused, so a foreign or hostile file is an error."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # arrays pickled with protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # the byte strings of Python 2 pickles (the official batches)
    }

    def find_class(self, module: str, name: str) -> type:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = read_bytes(path, "CIFAR-10 batch", MAX_DATA_VALUES)
    try:
        batch = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # any malformed or refused pickle is the user's file problem
        raise NasError(f"{path} is not a CIFAR-10 python batch: {err}") from None
    if not isinstance(batch, dict):
        raise NasError(f"{path} is not a CIFAR-10 python batch: holds a {type(batch).__name__}, not a dict")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise NasError(f"{path}: a CIFAR-10 batch needs 'data' and 'labels' (has: {', '.join(map(str, batch))})")
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"])
    if data.ndim != 2 or data.shape[1] % 3:
        raise NasError(f"{path}: 'data' must be N×(3·H·W) uint8 rows, got shape {data.shape}")
    side = round((data.shape[1] // 3) ** 0.5)
    if 3 * side * side != data.shape[1]:
        raise NasError(f"{path}: rows of {data.shape[1]} values are not square 3-channel images")
    if len(labels) != len(data):
        raise NasError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, side, side), labels


def _cifar10(path: Path, seed: int, image_size: int) -> tuple[np.ndarray, ...]:
    if not path.is_dir():
        raise NasError(f"cifar10:{path}: not a directory (expected the cifar-10-batches-py folder)")
    train_files = sorted(path.glob("data_batch_*"))
    test_file = path / "test_batch"
    if not train_files:
        raise NasError(f"cifar10:{path}: no data_batch_* files (expected the cifar-10-batches-py folder)")
    if not test_file.exists():
        raise NasError(f"cifar10:{path}: test_batch is missing")
    parts = [_read_batch(f) for f in train_files]
    x_test, y_test = _read_batch(test_file)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), x_test, y_test


# -- image folders


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_folder(root: Path, classes: list[str], image_size: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    if len(classes) > MAX_CLASSES:
        raise NasError(f"imagefolder:{root}: {len(classes)} class folders, above the limit of {MAX_CLASSES}")
    # Regular files only: a FIFO or device named like an image would block the reader.
    per_class = [
        sorted(p for p in (root / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if (root / c).is_dir()
        else []
        for c in classes
    ]
    count = sum(len(files) for files in per_class)
    if count * 3 * image_size * image_size > MAX_DATA_VALUES:
        raise NasError(
            f"imagefolder:{root}: {count} images of 3×{image_size}×{image_size} pass the limit of "
            f"{MAX_DATA_VALUES:,} image values (MAX_DATA_VALUES)"
        )
    images, labels = [], []
    for label, files in enumerate(per_class):
        if not files:
            folder = root / classes[label]
            raise NasError(f"imagefolder: class folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        for f in files:
            try:
                with warnings.catch_warnings():
                    # PIL warns of an image over its pixel limit and fails over twice that: both are refusals.
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    with Image.open(f) as im:
                        im = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
                        images.append(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))
            except Exception as err:  # PIL raises many kinds for a malformed or hostile file: all the user's
                why = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise NasError(f"imagefolder: cannot read image {f}: {why}") from None
            labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.int64)


def _imagefolder(path: Path, seed: int, image_size: int) -> tuple[np.ndarray, ...]:
    if not path.is_dir():
        raise NasError(f"imagefolder:{path}: not a directory")
    test_dir = next((path / n for n in ("test", "val") if (path / n).is_dir()), None)
    if (path / "train").is_dir() and test_dir is not None:
        classes = [p.name for p in _class_dirs(path / "train")]
        if len(classes) < 2:
            raise NasError(f"imagefolder:{path / 'train'}: needs at least 2 class folders, found {len(classes)}")
        extra = sorted({p.name for p in _class_dirs(test_dir)} - set(classes))
        if extra:
            raise NasError(f"imagefolder:{test_dir}: class folder {extra[0]!r} is not among the training classes")
        x_train, y_train = _read_folder(path / "train", classes, image_size)
        test_classes = [c for c in classes if (test_dir / c).is_dir()]
        x_test, y_test = _read_folder(test_dir, test_classes, image_size)
        y_test = np.array([classes.index(test_classes[i]) for i in y_test], dtype=np.int64)
        return x_train, y_train, x_test, y_test
    classes = [p.name for p in _class_dirs(path)]
    if len(classes) < 2:
        raise NasError(f"imagefolder:{path}: needs at least 2 class folders of images, found {len(classes)}")
    x, y = _read_folder(path, classes, image_size)
    rng = np.random.default_rng(seed + 7919)
    test_idx = []
    for c in range(len(classes)):
        idx = rng.permutation(np.flatnonzero(y == c))
        test_idx.extend(idx[: len(idx) // 5])
    test_mask = np.zeros(len(y), dtype=bool)
    test_mask[test_idx] = True
    if not test_mask.any():
        raise NasError(f"imagefolder:{path}: too few images to hold out a test split (need ≥ 5 in a class)")
    return x[~test_mask], y[~test_mask], x[test_mask], y[test_mask]
