"""`nas zoo list` and `nas zoo show`: tables, one JSON document with --json, one-line errors."""

from __future__ import annotations

import itertools
import json
import re

import pytest

from nas import zoo
from nas.arch import Arch
from nas.cli import main
from nas.errors import NasError


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_json(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run_cli(capsys, "zoo", "list", "--json")
    assert code == 0 and err == ""
    rows = json.loads(out)  # exactly one document: json.loads rejects anything after it
    assert [r["name"] for r in rows] == [v.name for v in zoo.variants()]
    for row in rows:
        assert set(row) == {"name", "params", "macs", "resolution", "reference"}
        arch = zoo.get(row["name"])
        assert (row["params"], row["macs"], row["resolution"]) == (arch.params, arch.macs, arch.resolution)
        ref = zoo.resolve(row["name"]).reference
        assert row["reference"] == ({"model": ref[0], "variant": ref[1]} if ref else None)
    by_name = {r["name"]: r for r in rows}
    assert by_name["mobilenet_v2_100"]["reference"] == {"model": "MobileNetV2", "variant": "1.0"}
    assert by_name["mobilenet_v2_100"]["params"] == 3_504_872  # torchvision mobilenet_v2 (model_zoo.csv)
    assert by_name["mobilenet_v2_035"]["reference"] is None


def test_list_table(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli(capsys, "zoo", "list")
    assert code == 0
    for variant in zoo.variants():
        assert variant.name in out
    assert "3.505M" in out  # MobileNetV2 1.0 parameters, in millions
    assert "MobileNetV2 1.0" in out
    assert "EfficientNet-B0 " in out and "EfficientNet-B0 -" not in out  # no variant to show: no stray "-"


def test_show_json(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run_cli(
        capsys, "zoo", "show", "mobilenet_v2", "--width", "0.5", "--resolution", "128", "--json"
    )
    assert code == 0 and err == ""
    doc = json.loads(out)
    arch = zoo.get("mobilenet_v2", width=0.5, resolution=128)
    assert Arch.from_dict(doc["arch"]) == arch
    assert (doc["name"], doc["hash"]) == (arch.name, arch.hash)
    assert (doc["params"], doc["macs"]) == (arch.params, arch.macs)
    blocks = doc["blocks"]
    assert [b["path"] for b in blocks] == [path for path, _ in arch.paths()]
    assert blocks[0]["in"] == [3, 128, 128]
    for before, after in itertools.pairwise(blocks):
        assert after["in"] == before["out"]  # shapes chain block to block
    assert blocks[-1]["out"] == [1280, 4, 4]
    assert [h["path"] for h in doc["head"]] == ["head.classifier"]
    assert sum(b["params"] for b in blocks) + sum(h["params"] for h in doc["head"]) == doc["params"]
    assert sum(b["macs"] for b in blocks) + sum(h["macs"] for h in doc["head"]) == doc["macs"]


def test_show_table(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli(capsys, "zoo", "show", "mobilenet_v2_035", "--resolution", "96")
    assert code == 0
    arch = zoo.get("mobilenet_v2_035", resolution=96)
    assert "mobilenet_v2_035 at 96×96" in out
    assert "3×96×96 → 16×48×48" in out
    for path, _ in arch.paths():
        assert path in out
    assert "head.classifier" in out and "total" in out
    assert f"{arch.params:,}" in out and f"{arch.macs:,}" in out
    assert f"hash {arch.hash}" in out


def assert_one_line_error(code: int, out: str, err: str, *fragments: str) -> None:
    assert code == 2 and out == ""
    assert err.startswith("nas: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_show_unknown_name_suggests(capsys: pytest.CaptureFixture) -> None:
    result = run_cli(capsys, "zoo", "show", "mobilenet_v22")
    assert_one_line_error(*result, "unknown zoo model 'mobilenet_v22'", "did you mean", "mobilenet_v2")
    result = run_cli(capsys, "zoo", "show", "resnet50", "--json")
    assert_one_line_error(*result, "unknown zoo model 'resnet50'")


FIXED = next(f.name for f in zoo.FAMILIES.values() if not f.scalable)
# (argv after `zoo show NAME`, the same as zoo.get keywords, what the one-line error says)
BAD_OPTIONS = [
    ("mobilenet_v2", ["--width", "-1"], {"width": -1.0}, "width must be positive"),
    ("mobilenet_v2", ["--width", "1000"], {"width": 1000.0}, "at most 4"),
    ("mnasnet_a1", ["--width", "nan"], {"width": float("nan")}, "width must be positive"),
    (FIXED, ["--width", "0.5"], {"width": 0.5}, f"{FIXED} has no width multiplier"),
    ("mobilenet_v2", ["--resolution", "8"], {"resolution": 8}, "resolution must be an integer from 32"),
    ("mnasnet_a1", ["--resolution", "100000"], {"resolution": 100000}, "to 4096, got 100000"),
    ("mobilenet_v2", ["--num-classes", "0"], {"num_classes": 0}, "num_classes"),
]


@pytest.mark.parametrize(("name", "argv", "kwargs", "message"), BAD_OPTIONS)
def test_show_bad_options(capsys: pytest.CaptureFixture, name: str, argv: list, kwargs: dict, message: str):
    """The CLI only parses: the API refuses the same values with the same message."""
    assert_one_line_error(*run_cli(capsys, "zoo", "show", name, *argv, "--json"), message)
    with pytest.raises(NasError, match=re.escape(message)):
        zoo.get(name, **kwargs)


def test_every_mbconv_family_shows_at_any_width(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run_cli(capsys, "zoo", "show", "mnasnet_a1", "--width", "0.75", "--json")
    assert code == 0 and err == ""
    assert json.loads(out)["name"] == "mnasnet_a1_075"
