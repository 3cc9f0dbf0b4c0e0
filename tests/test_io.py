"""The bounded readers of nas.io: size caps before reading, nesting capped without recursion, no YAML aliases."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from nas.errors import NasError
from nas.io import MAX_DEPTH, json_depth, parse_json, parse_yaml, read_json, read_state_dict, read_text


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("[]", 1),
        ('{"a": [[1], {"b": []}]}', 4),
        ('["[[[[", "\\"[{"]' + "[]" * 40, 1),  # brackets inside strings, escaped quotes, many shallow lists
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), MAX_DEPTH + 1),
        ("", 0),
    ],
)
def test_json_depth_skips_strings(text: str, depth: int) -> None:
    assert json_depth(text) == depth


def test_deep_json_is_one_error_not_a_recursion_error() -> None:
    start = time.perf_counter()
    with pytest.raises(NasError, match="x nests 100000 levels deep, above the limit of 64"):
        parse_json("[" * 100_000 + "]" * 100_000, "x")
    assert time.perf_counter() - start < 1


def test_json_values_python_cannot_convert_are_user_errors() -> None:
    with pytest.raises(NasError, match="not valid JSON"):
        parse_json("1" * 5000)
    assert parse_json('{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}


def test_files_are_refused_by_size_and_kind_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate(200 * 2**20)  # sparse: nothing is written, nothing is read
    with pytest.raises(NasError, match=r"architecture file .*big.json is 200.0 MiB, above the limit of 32.0 MiB"):
        read_json(big, "architecture file")
    os.mkfifo(tmp_path / "fifo.json")
    with pytest.raises(NasError, match="not a regular file"):
        read_json(tmp_path / "fifo.json")  # a FIFO would block a plain open() forever
    with pytest.raises(NasError, match="is a directory"):
        read_text(tmp_path)
    with pytest.raises(NasError, match="does not exist"):
        read_text(tmp_path / "missing")
    (tmp_path / "latin1.json").write_bytes(b'"\xff"')
    with pytest.raises(NasError, match="not UTF-8"):
        read_json(tmp_path / "latin1.json")
    with pytest.raises(NasError, match="not a regular file"):
        read_state_dict(tmp_path / "fifo.json")


def test_yaml_aliases_are_refused_at_the_first_one() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    start = time.perf_counter()
    with pytest.raises(NasError, match=r"bomb.yaml:2: not valid YAML: aliases \(\*name\) are not allowed"):
        parse_yaml(bomb, "bomb.yaml")
    assert time.perf_counter() - start < 1


def test_yaml_nesting_tags_and_size() -> None:
    with pytest.raises(NasError, match="nesting deeper than the limit of 64"):
        parse_yaml("[" * 100_000 + "]" * 100_000, "deep.yaml")
    with pytest.raises(NasError, match="could not determine a constructor"):
        parse_yaml("a: !!python/object/apply:os.system ['true']", "tag.yaml")
    with pytest.raises(NasError, match="above the limit"):
        parse_yaml("a: 1\n" * 100_000, "big.yaml")
    node, data = parse_yaml("a: [1, {b: 2}]\n", "ok.yaml")
    assert data == {"a": [1, {"b": 2}]} and node.start_mark.line == 0
