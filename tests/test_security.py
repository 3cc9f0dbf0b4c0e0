"""No value of a spec can run code: every generated format, and the generator even past validation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nas import export as exporter
from nas import zoo
from nas.arch import Arch, SpecError
from nas.cli import main

FORMATS = (*exporter.FORMATS, "all")


def _payload(sentinel: Path) -> str:
    return f"import os; open({str(sentinel)!r}, 'w').write('pwned')"


def _injections(sentinel: Path) -> dict[str, dict]:
    """Specs (as JSON data) that would run the payload if any field were pasted into source unescaped."""
    base = zoo.get("mobilenet_v3_small", resolution=32).to_dict()
    code = _payload(sentinel)
    docstring = dict(base, name=f'x"""\n{code}\n"""')
    statement = dict(base, name=f"x'); {code}; ('")
    bias = json.loads(json.dumps(base))
    bias["head"]["classifier_bias"] = f"True); {code}; (True"
    pad = json.loads(json.dumps(base))
    pad["stem"][0]["pad"] = f"1); {code}; (1"
    dropout = json.loads(json.dumps(base))
    dropout["head"]["dropout"] = f"0.0); {code}; (0"
    return {"docstring": docstring, "statement": statement, "bias": bias, "pad": pad, "dropout": dropout}


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_refuses_injected_specs_and_runs_nothing(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sentinel = tmp_path / "pwned"
    for label, data in _injections(sentinel).items():
        spec = tmp_path / f"{label}.json"
        spec.write_text(json.dumps(data))
        out = tmp_path / f"out-{label}"
        code = main(["export", str(spec), "--format", fmt, "--out", str(out)])
        captured = capsys.readouterr()
        assert code == 2, (label, captured.err)
        assert captured.err.startswith("nas: error: ") and captured.err.count("\n") == 1, (label, captured.err)
        assert not sentinel.exists(), label
        assert not out.exists(), label


@pytest.mark.parametrize(
    "name", ["", "mobilenet_v3_large_075", "cpu-4.5ms-trial0036", "squeeze-like v1", "a+b.c", "x" * 100]
)
def test_ordinary_names_pass(name: str) -> None:
    assert zoo.get("mobilenet_v1").replace(name=name).name == name


@pytest.mark.parametrize(
    "name", ['a"b', "a'b", "a\nb", "a\\b", "../etc/passwd", "a/b", " lead", "trail ", "x" * 101, "é"]
)
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(SpecError, match="name"):
        zoo.get("mobilenet_v1").replace(name=name)


def test_generated_source_stays_inert_past_validation(tmp_path: Path) -> None:
    """Defense in depth: even a name forced past validation lands in the module as a literal, not as code."""
    sentinel = tmp_path / "pwned"
    arch = zoo.get("mobilenet_v3_small", resolution=32)
    evil = f'x"""\n{_payload(sentinel)}\n"""\'); {_payload(sentinel)}; (\''
    object.__setattr__(arch, "name", evil)
    path = tmp_path / "model.py"
    path.write_text(exporter.pytorch_source(arch, "model"))
    probe = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import model; print(repr(model.NAME))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not sentinel.exists()
    assert done.stdout.strip() == repr(evil)


def test_non_literal_values_never_reach_source() -> None:
    with pytest.raises(SpecError):
        exporter._lit(object())


def test_block_fields_are_type_checked() -> None:
    data = zoo.get("mobilenet_v1").to_dict()
    data["stem"][0]["k"] = "3"
    with pytest.raises(SpecError, match=r"stem\[0\]\.k: must be an integer"):
        Arch.from_dict(data)
    data["stem"][0]["k"] = True
    with pytest.raises(SpecError, match=r"stem\[0\]\.k: must be an integer"):
        Arch.from_dict(data)
