"""Write the files of the bad-input corpus (tests/corpus/): `python tests/corpus/make_corpus.py` from the repository.

Text cases (JSON, YAML, CSV) are written here too so that each file's intent is stated once, beside the code that
makes the binary ones (npz, pickles, torch files, PNGs). Files large or special enough not to belong in git (a
200 MB architecture, a 10^5-deep nesting, a FIFO) are made at test time by the setups of tests/test_corpus.py.
Rewriting gives the same cases; archives and the search run differ in their timestamps and ids.
Payloads that would run code write a file named `pwned` into the working directory: the test runs every case in an
empty directory and fails if that file appears.
"""

from __future__ import annotations

import io
import json
import pickle
import posix
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
PAYLOAD = "touch pwned"

TINY = {
    "schema": "nas.arch/1",
    "name": "tiny",
    "resolution": 32,
    "num_classes": 10,
    "stem": [{"type": "conv", "out": 8, "k": 3, "s": 2, "act": "relu6"}],
    "stages": [
        [
            {"type": "ir", "out": 8, "mid": 16, "act": "relu6"},
            {"type": "ir", "out": 16, "mid": 32, "k": 5, "s": 2, "se": 0.25, "act": "hswish"},
        ]
    ],
    "head": {"blocks": [{"type": "conv", "out": 32, "act": "hswish"}], "dropout": 0.1},
}


class _Code:
    """Pickles as a call of os.system: loading it with a plain unpickler would run the payload."""

    def __reduce__(self) -> tuple:
        return (posix.system, (PAYLOAD,))


def write(rel: str, data: str | bytes) -> None:
    path = ROOT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)


def arch(**changes: object) -> dict:
    spec = json.loads(json.dumps(TINY))
    spec.update(changes)
    return spec


def arch_files() -> None:
    def block(**fields: object) -> dict:
        return arch(stages=[[{"type": "ir", "out": 8, "mid": 16, **fields}]])

    cases = {
        "tiny": TINY,
        "out_1e9": block(out=10**9),
        "mid_1e9": block(mid=10**9),
        "classes_1e9": arch(num_classes=10**9),
        "resolution_1e5": arch(resolution=100_000),
        "kernel_1e6": block(k=1_000_001),
        "stride_1e6": block(s=1_000_000),
        "pad_negative": arch(stem=[{"type": "conv", "out": 8, "k": 3, "s": 2, "pad": -5}]),
        "reps_1e9": arch(stages=[[{"type": "xception", "out": 16, "reps": 10**9}]]),
        "hidden_1e9": arch(head={"hidden": [{"out": 10**9}]}),
        "in_channels_1e9": arch(in_channels=10**9),
        # Every number within its limit, the network past a ceiling: weights, multiply-accumulates, one tensor.
        "params_ceiling": arch(
            stem=[{"type": "conv", "out": 8192, "k": 1}],
            stages=[[{"type": "conv", "out": 8192, "k": 31}]],
            head={},
        ),
        "macs_ceiling": arch(
            resolution=1024,
            stem=[{"type": "conv", "out": 512, "k": 3}],
            stages=[[{"type": "conv", "out": 512, "k": 3}]],
            head={},
        ),
        "tensor_ceiling": arch(resolution=4096, in_channels=128),
        "stage_65_blocks": arch(stages=[[{"type": "ir", "out": 8, "mid": 16}] * 65]),
        "stages_65": arch(stages=[[{"type": "ir", "out": 8, "mid": 16}]] * 65),
        "dropout_nan": arch(head={"dropout": float("nan")}),
        "out_string": block(out="16"),
        "out_bool": block(out=True),
        "unknown_type": arch(stages=[[{"type": "resnet", "out": 8}]]),
        "schema_2": arch(schema="nas.arch/2"),
        "name_300": arch(name="n" * 300),
        "name_injection": arch(name='x"""\nimport os; os.system("touch pwned")\n"""'),
        "name_path": arch(name="../../escape"),
    }
    for name, spec in cases.items():
        write(f"arch/{name}.json", json.dumps(spec, indent=1) + "\n")
    text = json.dumps(block(out=1))
    write("arch/int_5000_digits.json", text.replace('"out": 1', '"out": 1' + "0" * 5000))
    write("arch/truncated.json", json.dumps(TINY)[:-40])
    write("arch/top_list.json", "[]\n")
    write("arch/not_utf8.json", b'{"name": "\xff\xfe", "resolution": 32}\n')


SPACE = """name: corpus
stem:
  - {type: conv, out: 16, k: 3, s: 2}
stages:
  - {out: 24, n: 2, stride: 2, kernel: [3, 5], expansion: [3, 6]}
head:
  blocks:
    - {type: conv, out: 64}
"""


def space_files() -> None:
    write("space/small.yaml", SPACE)
    stage = "  - {out: 24, n: 2, stride: 2, kernel: [3, 5], expansion: [3, 6]}"

    def with_stage(text: str) -> str:
        return SPACE.replace(stage, text)

    write("space/n_1e9.yaml", with_stage("  - {out: 24, n: 1000000000, stride: 2}"))
    write("space/out_1e9.yaml", with_stage("  - {out: 1000000000, n: 2, stride: 2}"))
    write("space/stride_1e6.yaml", with_stage("  - {out: 24, n: 2, stride: 1000000}"))
    write("space/kernel_1e6.yaml", with_stage("  - {out: 24, n: 2, stride: 2, kernel: [3, 1000001]}"))
    write("space/width_1000.yaml", with_stage("  - {out: 24, n: 2, stride: 2, width: [1.0, 1000]}"))
    write("space/expansion_1e6.yaml", with_stage("  - {out: 24, n: 2, stride: 2, expansion: [6, 1000000]}"))
    write("space/layers_1e5.yaml", with_stage("  - {out: 24, n: 2, stride: 2, layers: [0, 100000]}"))
    many = ", ".join(str(round(1 + i / 16, 4)) for i in range(64))
    write(
        "space/work_over_limit.yaml",
        with_stage(f"  - {{out: 24, n: 60, stride: 2, expansion: [{many}], kernel: [3, 5, 7], se: [0, 0.25]}}"),
    )
    write("space/stages_65.yaml", SPACE.replace(stage, "\n".join([stage] * 65)))
    write("space/n_5000_digits.yaml", with_stage("  - {out: 24, n: 1" + "0" * 5000 + ", stride: 2}"))
    write("space/python_tag.yaml", SPACE + "description: !!python/object/apply:os.system ['touch pwned']\n")
    write("space/not_mapping.yaml", "- a\n- b\n")
    write("space/unhashable_key.yaml", "? [a, b]\n: 1\n" + SPACE)
    write("space/duplicate_key.yaml", SPACE + "name: again\n")
    write("space/invalid.yaml", "name: x\nstages: [1, 2\n")
    # "Billion laughs": nine references per level, nine levels; expanded, 387 million leaves.
    levels = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    write("space/laughs_lists.yaml", "\n".join(levels) + "\n" + SPACE)
    maps = ["m0: &m0 {a: lol, b: lol, c: lol, d: lol, e: lol, f: lol, g: lol, h: lol, i: lol}"]
    maps += [
        f"m{i}: &m{i} {{{', '.join(f'{k}: *m{i - 1}' for k in 'abcdefghi')}}}" for i in range(1, 9)
    ]
    write("space/laughs_maps.yaml", "\n".join(maps) + "\n" + SPACE)
    merge = ["b0: &b0 {x0: 1}"] + [f"b{i}: &b{i} {{<<: *b{i - 1}, x{i}: {i}}}" for i in range(1, 30)]
    write("space/laughs_merge.yaml", "\n".join(merge) + "\n" + SPACE)


def table_files() -> None:
    from nas.arch import Arch
    from nas.latency import load_table, predict

    pred = predict(Arch.from_dict(TINY), load_table("pixel")).to_dict()

    def entry(ms: float) -> dict:
        return {"count": 1, "mean": ms, "median": ms, "min": ms, "std": 0.0}

    rows = pred["blocks"]
    table = {
        "format": "nas.latency-table/1",
        "device": "corpus",
        "runtime": pred["runtime"],
        "kind": "estimated",
        "resolutions": [TINY["resolution"]],
        "complete": True,
        "ops": {r["key"]: entry(r["ms"]) for r in rows if r["path"] not in ("head", "input")},
        "fixed": {r["key"]: entry(r["ms"]) for r in rows if r["path"] in ("head", "input")},
        "correction": None,
        "model": None,
        "note": "tests/corpus: the tiny architecture's ops, priced by the estimated Pixel 1 table",
    }
    write("table/tiny.json", json.dumps(table, indent=1) + "\n")
    first = next(iter(table["ops"]))

    def variant(name: str, **changes: object) -> None:
        t = json.loads(json.dumps(table))
        t.update(changes)
        write(f"table/{name}.json", json.dumps(t, indent=1) + "\n")

    ops_inf = dict(table["ops"], **{first: entry(float("inf"))})
    variant("median_inf", ops=ops_inf)
    variant("median_zero", ops=dict(table["ops"], **{first: entry(0.0)}))
    variant("correction_nan", correction={"scale": float("nan"), "offset_ms": 0.0})
    variant("correction_negative", correction={"scale": -1.0, "offset_ms": 0.0})
    variant("correction_zero", correction={"scale": 0.0, "offset_ms": 0.0})
    variant("format_other", format="something/1")
    # The estimated Pixel 1 cost model alone (it prices any op) under a negative correction: what a search sees.
    model = json.loads((ROOT.parent.parent / "latency_tables/pixel1.json").read_text())["model"]
    variant("model_correction_negative", ops={}, fixed={}, resolutions=[224], model=model,
            correction={"scale": -1.0, "offset_ms": 0.0})
    # `nas latency import`: a manifest of one op and a results CSV that times it at 0 ms.
    manifest = {
        "format": "nas.latency-ops/1",
        "source": {"arch": "tiny"},
        "resolutions": [TINY["resolution"]],
        "input_name": "x",
        "ops": [
            {"id": f"op{n:04d}", "key": r["key"], "kind": "op", "file": f"ops/op{n:04d}.onnx", "input_shape": [1]}
            for n, r in enumerate(rows, start=1)
        ],
    }
    write("table/import/manifest.json", json.dumps(manifest, indent=1) + "\n")
    write("table/import/zero_ms.csv", "id,ms\n" + "".join(f"op{n:04d},0\n" for n in range(1, len(rows) + 1)))
    write("table/import/negative_ms.csv", "id,ms\n" + "".join(f"op{n:04d},-3\n" for n in range(1, len(rows) + 1)))


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _npz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(f"{name}.npy", data)
    return buf.getvalue()


def _images(n: int, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8), np.arange(n, dtype=np.int64) % 2


def _header(shape: tuple, descr: str) -> bytes:
    """The .npy magic and header of an array, without its data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def npz_files() -> None:
    x, y = _images(20)
    xt, yt = _images(10, seed=1)
    good = {"x_train": _npy(x), "y_train": _npy(y), "x_test": _npy(xt), "y_test": _npy(yt)}

    def variant(name: str, **members: bytes | None) -> None:
        m = dict(good)
        for key, data in members.items():
            if data is None:
                m.pop(key)
            else:
                m[key] = data
        write(f"data/npz/{name}.npz", _npz(m))

    variant("wrong_keys", x_train=None, images=_npy(x))
    variant("x_2d", x_train=_npy(x.reshape(20, -1)))
    variant("x_int64", x_train=_npy(x.astype(np.int64)))
    variant("x_nan", x_train=_npy(np.full(x.shape, np.nan, dtype=np.float32)))
    variant("x_4x4", x_train=_npy(x[:, :, :4, :4]), x_test=_npy(xt[:, :, :4, :4]))
    variant("x_not_square", x_train=_npy(np.zeros((20, 3, 8, 16), np.uint8)))
    variant("test_size_mismatch", x_test=_npy(_images(10, size=16)[0]))
    variant("labels_negative", y_train=_npy(y - 5))
    variant("labels_1e9", y_train=_npy(y * 10**9))
    variant("labels_fraction", y_train=_npy(y + 0.5))
    variant("labels_2d", y_train=_npy(y.reshape(10, 2)))
    variant("labels_count", y_train=_npy(y[:-1]))
    variant("one_class", y_train=_npy(np.zeros(20, np.int64)), y_test=_npy(np.zeros(10, np.int64)))
    variant("test_label_unseen", y_test=_npy(np.full(10, 7, np.int64)))
    # A pickle inside the archive: an object array whose element runs os.system when unpickled.
    variant("pickle_inside", x_train=_header((1,), "|O") + pickle.dumps(np.array([_Code()], dtype=object)))
    # A header that claims 3 GB of images over no data: numpy would allocate the claim before reading.
    variant("claims_3gb", x_train=_header((10**6, 3, 32, 32), "|u1"))
    variant("claims_100000px", x_train=_header((2, 3, 100_000, 100_000), "|u1"))
    write("data/npz/not_zip.npz", b"this is not a zip archive\n")
    write("data/npz/truncated.npz", _npz(good)[:200])


def _png(width: int, height: int, pixels: bytes | None) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IDAT", zlib.compress(pixels)) if pixels is not None else b""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + body + chunk(b"IEND", b"")


def _valid_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    rows = b"".join(b"\x00" + rng.integers(0, 256, 8 * 3, dtype=np.uint8).tobytes() for _ in range(8))
    return _png(8, 8, rows)


def image_folders() -> None:
    base = ROOT / "data/imagefolder"
    shutil.rmtree(base, ignore_errors=True)
    write("data/imagefolder/one_class/cat/0.png", _valid_png(0))
    write("data/imagefolder/one_class/cat/1.png", _valid_png(1))
    for case in ("corrupt", "bomb", "truncated", "empty_class"):
        for i in range(5):
            write(f"data/imagefolder/{case}/dog/{i}.png", _valid_png(10 + i))
    write("data/imagefolder/corrupt/cat/0.png", b"not an image at all\n")
    # An image that claims 100000 × 100000 pixels (30 GB decoded) and holds none.
    write("data/imagefolder/bomb/cat/0.png", _png(100_000, 100_000, None))
    write("data/imagefolder/truncated/cat/0.png", _valid_png(3)[:60])
    write("data/imagefolder/empty_class/cat/readme.txt", "no images here\n")
    write("data/imagefolder/not_a_dir.txt", "imagefolder: wants a directory\n")


def cifar_dirs() -> None:
    base = ROOT / "data/cifar10"
    shutil.rmtree(base, ignore_errors=True)

    def batch(n: int, side: int = 8, labels: list | None = None) -> bytes:
        rng = np.random.default_rng(n)
        data = rng.integers(0, 256, (n, 3 * side * side), dtype=np.uint8)
        return pickle.dumps({b"data": data, b"labels": labels if labels is not None else [i % 2 for i in range(n)]})

    write("data/cifar10/code/data_batch_1", pickle.dumps(_Code()))
    write("data/cifar10/code/test_batch", pickle.dumps({b"data": _Code(), b"labels": [0]}))
    write("data/cifar10/list/data_batch_1", pickle.dumps([1, 2, 3]))
    write("data/cifar10/list/test_batch", batch(4))
    write("data/cifar10/no_test/data_batch_1", batch(10))
    rows_of_100 = {b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}
    write("data/cifar10/bad_shape/data_batch_1", pickle.dumps(rows_of_100))
    write("data/cifar10/bad_shape/test_batch", batch(4))
    write("data/cifar10/labels_1e9/data_batch_1", batch(10, labels=[10**9] * 10))
    write("data/cifar10/labels_1e9/test_batch", batch(4))
    write("data/cifar10/garbage/data_batch_1", b"\x80\x04garbage, not a pickle")
    write("data/cifar10/garbage/test_batch", batch(4))


def weights_files() -> None:
    import torch

    from nas.arch import Arch
    from nas.model import build

    buf = io.BytesIO()
    torch.save({"features.0.0.weight": torch.zeros(1), "code": _Code()}, buf)
    write("weights/pickle_code.pt", buf.getvalue())
    write("weights/pickle_code_legacy.pt", pickle.dumps({"w": _Code()}))
    write("weights/garbage.pt", b"PK\x03\x04 not really a zip\n")
    buf = io.BytesIO()
    torch.save([torch.zeros(2)], buf)
    write("weights/list.pt", buf.getvalue())
    buf = io.BytesIO()
    torch.save({"features.0.0.weight": torch.zeros(3, 3)}, buf)
    write("weights/wrong_shapes.pt", buf.getvalue())
    buf = io.BytesIO()
    torch.save(build(Arch.from_dict(TINY)).state_dict(), buf)
    write("weights/tiny.pt", buf.getvalue())


def torn_run() -> None:
    """A finished two-trial search whose journal ends in half a line, as a kill mid-write leaves it."""
    import tempfile

    from nas.cli import main as nas

    base = ROOT / "run/torn"
    shutil.rmtree(base, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["search", "--target-latency", "80ms", "--evaluator", "zero-cost", "--trials", "2", "--window", "none"]
        argv += ["--data", "synthetic:40,20", "--out-dir", tmp, "--name", "d"]
        assert nas(argv) == 0
        run = Path(tmp) / "d"
        shutil.copytree(run / "trials", base / "trials")
        for name in ("config.json", "study.journal"):
            shutil.copy(run / name, base / name)
    journal = (base / "study.journal").read_bytes()
    last = journal.rstrip(b"\n").rfind(b"\n") + 1
    (base / "study.journal").write_bytes(journal[: last + (len(journal) - last) // 2])


def main() -> None:
    arch_files()
    space_files()
    table_files()
    npz_files()
    image_folders()
    cifar_dirs()
    weights_files()
    torn_run()


if __name__ == "__main__":
    main()
