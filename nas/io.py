"""File helpers every stage shares: atomic writes (a kill never leaves half a file) and bounded, safe reads.

Every reader of a file a user hands in goes through here: a size cap checked before reading, JSON and YAML
parsers whose nesting is capped without recursion, YAML without aliases, torch files with `weights_only=True`."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import stat
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from nas.errors import NasError

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


# Caps on what a reader takes from an untrusted file (docs/arch-spec.md, "Limits"). Specs, spaces, tables and run
# records are a few kB to a few MB; a file past these is refused by its size before a byte of it is parsed.
MAX_JSON_BYTES = 32 * 2**20
MAX_YAML_BYTES = 256 * 2**10  # YAML is parsed in pure Python; the shipped spaces are about 3 kB
MAX_WEIGHTS_BYTES = 2 * 2**30  # twice the float32 weights of a network at nas.arch.MAX_PARAMS
MAX_DEPTH = 64  # nesting of JSON arrays/objects and YAML collections (a spec nests 4 deep)


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} kiB" if n >= 2**10 else f"{n} bytes"


def _first_clause(err: BaseException) -> str:
    """The gist of a library's message: its first line, up to a `;` (Python's own advice after it is not ours)."""
    return str(err).splitlines()[0].split(";")[0] if str(err) else type(err).__name__


def check_file(path: str | Path, what: str, max_bytes: int) -> Path:
    """`path` is an existing regular file (not a directory, FIFO or device, which could block a reader) of at
    most `max_bytes`; NasError naming `what` otherwise."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise NasError(f"{what} {path} does not exist") from None
    except OSError as err:
        raise NasError(f"cannot read {what} {path}: {err.strerror or err}") from None
    if stat.S_ISDIR(info.st_mode):
        raise NasError(f"{what} {path} is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise NasError(f"{what} {path} is not a regular file")
    if info.st_size > max_bytes:
        raise NasError(f"{what} {path} is {_size(info.st_size)}, above the limit of {_size(max_bytes)}")
    return path


def read_bytes(path: str | Path, what: str = "file", max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (checked before reading, and while reading)."""
    path = check_file(path, what, max_bytes)
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as err:
        raise NasError(f"cannot read {what} {path}: {err.strerror or err}") from None
    if len(data) > max_bytes:
        raise NasError(f"{what} {path} is above the limit of {_size(max_bytes)}")
    return data


def read_text(path: str | Path, what: str = "file", max_bytes: int = MAX_JSON_BYTES) -> str:
    """A UTF-8 text file of at most `max_bytes`."""
    data = read_bytes(path, what, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise NasError(f"cannot read {what} {path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON text, found without recursion (strings skipped)."""
    import numpy as np

    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)).encode("ascii")
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    return int(np.cumsum(np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)).max())


def parse_json(text: str, what: str = "JSON", max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse untrusted JSON text: size and nesting (`MAX_DEPTH`, checked iteratively) are capped first, so no
    input reaches a RecursionError or a parse that takes minutes; NasError naming `what` otherwise."""
    if len(text) > max_bytes:
        raise NasError(f"{what} is {_size(len(text))}, above the limit of {_size(max_bytes)}")
    depth = json_depth(text)
    if depth > MAX_DEPTH:
        raise NasError(f"{what} nests {depth} levels deep, above the limit of {MAX_DEPTH}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise NasError(f"{what} is not valid JSON: {err}") from None
    except (ValueError, RecursionError) as err:  # an integer of more than 4300 digits, say
        raise NasError(f"{what} is not valid JSON: {_first_clause(err)}") from None


def read_json(path: str | Path, what: str = "file", max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON file; a missing, unreadable, oversized or malformed one is the user's error, named as `what`."""
    return parse_json(read_text(path, what, max_bytes), f"{what} {path}", max_bytes)


class _BoundedYamlLoader(yaml.SafeLoader):
    """The safe loader, refusing aliases (the expansion of a "billion laughs" bomb) and deep nesting."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed here", mark)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nesting deeper than the limit of {MAX_DEPTH}", mark
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def parse_yaml(text: str, label: str, max_bytes: int = MAX_YAML_BYTES) -> tuple[yaml.Node | None, Any]:
    """One YAML document of untrusted text → (its node tree, for line numbers; its data). Safe tags only, no
    aliases, nesting and size capped; NasError "LABEL:LINE: not valid YAML: ..." otherwise."""
    if len(text) > max_bytes:
        raise NasError(f"{label} is {_size(len(text))}, above the limit of {_size(max_bytes)}")
    loader = _BoundedYamlLoader(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{label}:{mark.line + 1}" if mark else label
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise NasError(f"{where}: not valid YAML: {problem}") from None
    except (ValueError, RecursionError) as err:  # an integer of more than 4300 digits, say
        raise NasError(f"{label}: not valid YAML: {_first_clause(err)}") from None
    finally:
        loader.dispose()


def writable_dir(path: str | Path) -> Path:
    """Create `path` if needed and check that files can be written there, before any work is done."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".nas-probe-"):
            pass
    except OSError as err:
        raise NasError(f"cannot write to {path}: {err.strerror or err}") from None
    return path


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """A state_dict file, read with torch.load(weights_only=True); one-line NasError for anything else."""
    import torch

    path = check_file(path, "weights file", MAX_WEIGHTS_BYTES)
    try:
        with warnings.catch_warnings():  # torch warns of pickle details of a file it then reads or refuses
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several kinds for a file that is not its format
        first = str(err).strip().split("\n")[0].split(". ")[0]
        raise NasError(f"cannot read weights {path}: not a torch state_dict file ({first})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NasError(f"weights {path} hold a {type(state).__name__}, not a state_dict (names → tensors)")
    return state


def import_file(path: Path, prefix: str) -> ModuleType:
    """Import a Python file as a fresh module without touching sys.path; its own errors propagate."""
    name = f"{prefix}_{abs(hash(str(Path(path).resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise NasError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look a module up while it executes
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module
