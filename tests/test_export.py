"""Export: every format on a net holding every block type, `nas.load`, `nas export` and its bad input."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import nas
from nas import export as exporter
from nas import zoo
from nas.arch import (
    Arch,
    Conv,
    Dense,
    DepthwiseSeparable,
    Fire,
    Ghost,
    Head,
    InvertedResidual,
    Pool,
    SeparableConv,
    ShuffleV1,
    ShuffleV2,
    XceptionBlock,
)
from nas.cli import main
from nas.errors import NasError
from nas.model import build
from nas.sources import resolve

torch.set_num_threads(1)


def kitchen_sink() -> Arch:
    """Every block type and the odd cases of each builder: SE from mid and from in, grouped MBConv, bias, odd
    ghost widths, ungrouped first shuffle conv, both shuffle strides, ceil pooling, both Xception orders."""
    return Arch(
        name="kitchen_sink",
        resolution=96,
        num_classes=10,
        stem=[Conv(out=16, k=3, s=2, act="hswish"), Pool(out=16, kind="max", k=3, s=2, pad=1)],
        stages=[
            [
                DepthwiseSeparable(out=16, se=0.25),
                InvertedResidual(out=24, mid=48, k=5, s=2, act="hswish", se=0.25, groups=2),
                InvertedResidual(
                    out=24, mid=72, se=0.25, se_from="in", se_gate="sigmoid", act="swish", bias=True
                ),
            ],
            [Ghost(out=32, mid=48, s=2, se=0.25), Ghost(out=32, mid=64), Ghost(out=40, mid=63, k=5)],
            [
                ShuffleV1(out=80, mid=24, groups=2, s=2),
                ShuffleV1(out=80, mid=24, groups=2, first_group=False),
                ShuffleV2(out=80),
                ShuffleV2(out=96, s=2),
            ],
            [
                Fire(out=64, squeeze=16, e1=32),
                SeparableConv(out=64),
                Pool(out=64, kind="avg", k=2, s=1, ceil=True),
                XceptionBlock(out=96, reps=2, s=2, start_relu=False),
                XceptionBlock(out=96, reps=2, grow_first=False),
            ],
        ],
        head=Head(blocks=(Conv(out=128, k=1, act="relu6"),), hidden=(Dense(out=64),), dropout=0.2),
    )


def conv_classifier() -> Arch:
    """SqueezeNet's head: a 1×1 conv with ReLU to the classes before the pool."""
    return Arch(
        name="squeeze-like v1",
        resolution=64,
        num_classes=7,
        stem=[Conv(out=32, k=3, s=2, bn=False, bias=True), Pool(out=32, k=3, s=2, ceil=True)],
        stages=[[Fire(out=64, squeeze=8, e1=32), DepthwiseSeparable(out=48, s=2, pw_act=True, act="relu6")]],
        head=Head(dropout=0.5, classifier="conv"),
    )


def small_zoo_model() -> Arch:
    names = {v.name for v in zoo.variants()}
    if "mobilenet_v3_small_100" in names:
        return zoo.get("mobilenet_v3_small_100", resolution=96)
    return zoo.get("mobilenet_v2", width=0.35, resolution=96)


def randomised(arch: Arch, seed: int = 0) -> torch.nn.Module:
    """A built model whose every weight and BN statistic is random, so a wrong wiring cannot hide."""
    torch.manual_seed(seed)
    net = build(arch)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if tensor.dtype.is_floating_point:
                if "running_var" in name:
                    tensor.copy_(torch.rand_like(tensor) * 0.5 + 0.5)
                else:
                    tensor.copy_(torch.randn_like(tensor) * 0.2)
    return net.eval()


def x_for(arch: Arch, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(3, arch.in_channels, arch.resolution, arch.resolution, generator=gen)


def save_weights(net: torch.nn.Module, path: Path) -> Path:
    torch.save(net.state_dict(), path)
    return path


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


# ---------------------------------------------------------------------------------------------- pytorch


@pytest.mark.parametrize("make", [kitchen_sink, conv_classifier, small_zoo_model])
def test_pytorch_module_matches_nas_model(make, tmp_path: Path) -> None:
    arch = make()
    net = randomised(arch)
    weights = save_weights(net, tmp_path / "w.pt")
    written = exporter.export(arch, "pytorch", tmp_path / "out", weights=weights)
    stem = exporter.file_stem(arch)
    assert [p.name for p in written] == [f"{stem}.py", f"{stem}.pt"]
    py = tmp_path / "out" / f"{stem}.py"

    # needs only torch
    imported = {
        alias.name.split(".")[0] if isinstance(node, ast.Import) else node.module.split(".")[0]
        for node in ast.walk(ast.parse(py.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported == {"torch"}

    module = exporter.import_module_file(py)
    fresh = module.build()
    want = {k: tuple(v.shape) for k, v in build(arch).state_dict().items()}
    assert {k: tuple(v.shape) for k, v in fresh.state_dict().items()} == want
    assert arch.hash == module.ARCH_HASH
    assert Arch.from_json(module.SPEC_JSON) == arch

    loaded = module.load(str(tmp_path / "out" / f"{stem}.pt"))
    x = x_for(arch)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_pytorch_check_catches_a_wrong_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Export compares the generated module's outputs with nas.model's: a class that drops the residual of
    MBConv has the same state_dict but must be refused, and nothing written."""
    deps, source = exporter._CLASSES["MBConv"]
    broken = source.replace("return x + y if self.residual else y", "return y")
    assert broken != source
    monkeypatch.setitem(exporter._CLASSES, "MBConv", (deps, broken))
    with pytest.raises(NasError, match="pytorch export check failed: max abs diff"):
        exporter.export(kitchen_sink(), "pytorch", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_file_stem_is_a_safe_identifier() -> None:
    assert exporter.file_stem(conv_classifier()) == "squeeze_like_v1"
    assert exporter.file_stem(kitchen_sink().replace(name="a.b-c+d")) == "a_b_c_d"
    assert exporter.file_stem(kitchen_sink().replace(name="1st")) == "arch_1st"
    assert exporter.file_stem(kitchen_sink().replace(name="")) == f"arch_{kitchen_sink().hash}"


# ---------------------------------------------------------------------------------------------- runtimes


@pytest.fixture(scope="module")
def all_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Arch, torch.nn.Module, Path, list[Path]]:
    arch = kitchen_sink()
    net = randomised(arch, seed=3)
    tmp = tmp_path_factory.mktemp("all")
    weights = save_weights(net, tmp / "weights.pt")
    out = tmp / "out"
    written = exporter.export(arch, "all", out, weights=weights)
    return arch, net, out, written


def test_all_writes_each_format_once(all_export) -> None:
    arch, _, out, written = all_export
    names = [p.name for p in written]
    assert len(names) == len(set(names))
    expected = {"kitchen_sink.json", "kitchen_sink.pt", "kitchen_sink.py", "kitchen_sink.torchscript.pt",
                "kitchen_sink.onnx"}
    assert expected <= set(names)
    assert listing(out) == sorted(names)  # no staging directory or temp file left behind
    assert (out / "kitchen_sink.json").read_text() == arch.to_json()


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_torchscript_matches_torch(all_export) -> None:
    arch, net, out, _ = all_export
    scripted = torch.jit.load(str(out / "kitchen_sink.torchscript.pt"))
    x = x_for(arch, seed=5)
    with torch.no_grad():
        assert (scripted(x) - net(x)).abs().max().item() <= 1e-4


def test_onnx_matches_torch(all_export) -> None:
    import onnxruntime as ort

    arch, net, out, _ = all_export
    session = ort.InferenceSession(str(out / "kitchen_sink.onnx"), providers=["CPUExecutionProvider"])
    x = x_for(arch, seed=6)  # batch 3: the exporter's example had 2, the batch axis is dynamic
    got = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = net(x).numpy()
    assert got.shape == want.shape == (3, 10)
    assert np.abs(got - want).max() <= 1e-4


def test_nas_load_round_trips_exported_weights(all_export) -> None:
    arch, net, out, _ = all_export
    model = nas.load(str(out / "kitchen_sink.json"), str(out / "kitchen_sink.pt")).eval()
    x = x_for(arch, seed=7)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
    for key, value in net.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_nas_load_accepts_arch_and_zoo_name() -> None:
    arch = conv_classifier()
    assert nas.load(arch).arch == arch
    assert nas.load("mobilenet_v2_035").arch == zoo.get("mobilenet_v2_035")


def test_timm_format(tmp_path: Path) -> None:
    bs = pytest.importorskip("nas.block_strings")
    arch = small_zoo_model()
    written = exporter.export(arch, "timm", tmp_path)
    assert [p.name for p in written] == [f"{arch.name}.timm.json"]
    doc = json.loads(written[0].read_text())
    assert doc["arch_hash"] == arch.hash and doc["resolution"] == 96 and doc["num_classes"] == 1000
    style = bs.BlockStringStyle(**{k: v for k, v in doc["style"].items() if k != "name"})
    stem_out = doc["stem"][-1]["out"]
    assert bs.decode(doc["arch_def"], stem_out, style) == [list(stage) for stage in arch.stages]
    rebuilt = Arch.from_dict({**arch.to_dict(), "stages": [[b.to_dict() for b in st] for st in
                                                           bs.decode(doc["arch_def"], stem_out, style)]})
    assert rebuilt.hash == arch.hash


def test_all_skips_timm_where_inexpressible(tmp_path: Path) -> None:
    pytest.importorskip("nas.block_strings")
    formats, skipped = exporter.plan(kitchen_sink(), "all")
    assert "timm" not in formats and [f for f, _ in skipped] == ["timm"]
    assert "no timm block-string form" in skipped[0][1]
    with pytest.raises(NasError, match=r"no timm block-string form: stages\[0\]\[1\] \(ir\)"):
        exporter.export(kitchen_sink(), "timm", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- failures


def test_failed_check_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arch = conv_classifier()
    out = tmp_path / "new"
    monkeypatch.setattr(exporter, "TOLERANCE", -1.0)  # every comparison fails
    with pytest.raises(NasError, match="torchscript export check failed"):
        exporter.export(arch, "torchscript", out)
    assert not out.exists()  # created for the export, removed with it
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    with pytest.raises(NasError, match="check failed"):
        exporter.export(arch, "all", existing)
    assert listing(existing) == ["keep.txt"]


def test_weights_that_do_not_fit(tmp_path: Path) -> None:
    other = save_weights(build(small_zoo_model()), tmp_path / "other.pt")
    out = tmp_path / "out"
    with pytest.raises(NasError, match=r"do not fit kitchen_sink"):
        exporter.export(kitchen_sink(), "json", out, weights=other)
    assert not out.exists()
    state = build(kitchen_sink()).state_dict()
    state["classifier.weight"] = torch.zeros(3, 3)
    with pytest.raises(NasError, match="size mismatch"):
        exporter.export(kitchen_sink(), "pytorch", out, weights=state)


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(NasError, match=r"unknown export format 'tflite' \(known: json, timm, pytorch"):
        exporter.export(kitchen_sink(), "tflite", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- sources


def test_resolve_source(tmp_path: Path) -> None:
    arch = conv_classifier()
    path = tmp_path / "a.json"
    path.write_text(arch.to_json())
    assert resolve(str(path)) == (arch, None)
    assert resolve(str(path), resolution=80)[0] == arch.replace(resolution=80)
    got, weights = resolve("mobilenet_v2", width=0.5, resolution=128)
    assert got == zoo.get("mobilenet_v2", width=0.5, resolution=128) and weights is None
    with pytest.raises(NasError, match="is a directory but neither"):
        resolve(str(tmp_path))
    with pytest.raises(NasError, match="--trial applies to search run directories"):
        resolve("mobilenet_v2", trial=3)
    with pytest.raises(NasError, match="--width applies to zoo names"):
        resolve(str(path), width=0.5)


# ---------------------------------------------------------------------------------------------- CLI


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, out: str, err: str, *fragments: str) -> None:
    assert code == 2
    assert out == ""
    assert err.startswith("nas: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_cli_export_lists_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = tmp_path / "net.json"
    spec.write_text(conv_classifier().to_json())
    code, out, err = run_cli(capsys, "export", str(spec), "--format", "pytorch", "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert str(tmp_path / "o" / "squeeze_like_v1.py") in out
    code, out, err = run_cli(
        capsys, "export", str(spec), "--format", "json", "--out", str(tmp_path / "j"), "--json"
    )
    assert code == 0, err
    doc = json.loads(out)  # exactly one JSON document on stdout
    assert doc["files"] == [str(tmp_path / "j" / "squeeze_like_v1.json")]
    assert doc["hash"] == conv_classifier().hash and doc["formats"] == ["json"]


def test_cli_export_zoo_name_with_weights(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    arch = zoo.get("mobilenet_v2", width=0.35, resolution=96)
    net = randomised(arch)
    weights = save_weights(net, tmp_path / "w.pt")
    out_dir = tmp_path / "o"
    code, out, err = run_cli(
        capsys, "export", "mobilenet_v2", "--width", "0.35", "--resolution", "96", "--format", "onnx",
        "--out", str(out_dir), "--weights", str(weights), "--json",
    )
    assert code == 0, err
    assert json.loads(out)["files"] == [str(out_dir / "mobilenet_v2_035.onnx")]
    assert listing(out_dir) == ["mobilenet_v2_035.onnx"]


def test_cli_unknown_zoo_name(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out_dir = tmp_path / "o"
    result = run_cli(capsys, "export", "mobilenet_v9", "--format", "json", "--out", str(out_dir))
    assert_one_line_error(*result, "unknown zoo model 'mobilenet_v9'", "did you mean", "mobilenet_v")
    assert not out_dir.exists()


def test_cli_malformed_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"resolution": 96, "stages": [[{"type": "ir",')
    result = run_cli(capsys, "export", str(bad), "--format", "json", "--out", str(tmp_path / "o"))
    assert_one_line_error(*result, str(bad), "not valid JSON")
    assert not (tmp_path / "o").exists()


def test_cli_bad_spec_names_block_and_field(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = json.loads(conv_classifier().to_json())
    data["stages"][0][1]["act"] = "gelu"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    result = run_cli(capsys, "export", str(bad), "--format", "all", "--out", str(tmp_path / "o"))
    assert_one_line_error(*result, str(bad), "block 3 (stages[0][1], ds).act", "gelu")
    del data["stages"][0][0]["squeeze"]
    data["stages"][0][1]["act"] = "relu"
    bad.write_text(json.dumps(data))
    result = run_cli(capsys, "export", str(bad), "--format", "all", "--out", str(tmp_path / "o"))
    assert_one_line_error(*result, "stages[0][0].squeeze: missing")
    assert not (tmp_path / "o").exists()


def test_cli_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = str(tmp_path / "nope.json")
    result = run_cli(capsys, "export", missing, "--format", "json", "--out", str(tmp_path))
    assert_one_line_error(*result, "nope.json does not exist")


def test_cli_unknown_format(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    result = run_cli(capsys, "export", "mobilenet_v2", "--format", "tflite", "--out", str(tmp_path / "o"))
    assert_one_line_error(*result, "unknown export format 'tflite'", "onnx", "all")
    assert not (tmp_path / "o").exists()


def test_cli_unwritable_out_dir(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_cli(capsys, "export", "mobilenet_v2", "--format", "json", "--out", str(blocker / "sub"))
    assert_one_line_error(*result, f"cannot write to {blocker / 'sub'}")
    assert blocker.read_text() == "not a directory"


def test_cli_weights_that_do_not_fit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    other = save_weights(build(conv_classifier()), tmp_path / "other.pt")
    out_dir = tmp_path / "o"
    result = run_cli(
        capsys, "export", "mobilenet_v2_035", "--resolution", "96", "--format", "all", "--out", str(out_dir),
        "--weights", str(other),
    )
    assert_one_line_error(*result, "do not fit mobilenet_v2_035")
    assert not out_dir.exists()
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    result = run_cli(
        capsys, "export", "mobilenet_v2_035", "--format", "pytorch", "--out", str(out_dir),
        "--weights", str(garbage),
    )
    assert_one_line_error(*result, f"cannot read weights {garbage}")
    assert not out_dir.exists()


@pytest.mark.parametrize("family", sorted(zoo.FAMILIES))
def test_pytorch_source_fits_every_zoo_family(family: str, tmp_path: Path) -> None:
    """The generated module has nas.model's state_dict layout and, given the same random weights, outputs."""
    arch = zoo.get(family, resolution=64)
    py = tmp_path / "m.py"
    py.write_text(exporter.pytorch_source(arch, "m"))
    generated = exporter.import_module_file(py).build().state_dict()
    reference = build(arch).eval()
    want = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in generated.items()} == want
    exporter.check_pytorch_module(py, reference, arch)  # raises NasError if the outputs differ


# ---------------------------------------------------------------------------------------------- checks in the API


def long_named_spec(tmp_path: Path) -> Path:
    data = json.loads(conv_classifier().to_json())
    data["name"] = "n" * 300
    path = tmp_path / "long.json"
    path.write_text(json.dumps(data))
    return path


# (SOURCE or a maker of it, export_source keywords, the same as CLI arguments, what the one-line error says)
BAD_EXPORTS = [
    ("mobilenet_v2", {"width": 1000.0}, ["--width", "1000"], "width must be positive and at most 4"),
    ("mobilenet_v2", {"resolution": 100000}, ["--resolution", "100000"], "to 4096, got 100000"),
    ("mobilenet_v2", {"resolution": 8}, ["--resolution", "8"], "from 32 to 4096"),
    (long_named_spec, {"resolution": 100000}, ["--resolution", "100000"], "to 4096, got 100000"),
    (long_named_spec, {}, [], "is not a valid name (at most 100 characters"),
    ("mobilenet_v2", {"trial": 2}, ["--trial", "2"], "--trial applies to search run directories"),
    ("mobilenet_v2", {"pareto": True}, ["--pareto"], "--pareto applies to search run directories"),
    ("mobilenet_v2", {"pareto": True, "trial": 1}, ["--pareto", "--trial", "1"], "give neither --trial"),
]


@pytest.mark.parametrize(("source", "kwargs", "argv", "message"), BAD_EXPORTS)
def test_export_source_refuses_what_the_cli_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture, source, kwargs: dict, argv: list, message: str
) -> None:
    """`nas export` only parses and prints: export_source makes every check, before anything is written."""
    source = str(source(tmp_path)) if callable(source) else source
    out = tmp_path / "o"
    with pytest.raises(NasError, match=re.escape(message)):
        exporter.export_source(source, "json", out, **kwargs)
    assert not out.exists()
    result = run_cli(capsys, "export", source, "--format", "json", "--out", str(out), *argv)
    assert_one_line_error(*result, message)
    assert not out.exists()


def test_export_source_reports_what_it_wrote(tmp_path: Path) -> None:
    (report,) = exporter.export_source("mnasnet_a1", "json", tmp_path, width=0.5, resolution=160)
    assert report.arch == zoo.get("mnasnet_a1", width=0.5, resolution=160)
    assert report.files == [tmp_path / "mnasnet_a1_050.json"] and report.out == tmp_path
    assert report.to_dict() == {
        "name": "mnasnet_a1_050",
        "hash": report.arch.hash,
        "formats": ["json"],
        "skipped": [],
        "weights": None,
        "files": [str(tmp_path / "mnasnet_a1_050.json")],
    }
