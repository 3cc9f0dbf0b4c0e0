"""Search spaces: loading and validation, decoding, sampling, exact size, exact op enumeration, cost range."""

from __future__ import annotations

import json
import math
import random
import textwrap
from pathlib import Path

import pytest

from nas.arch import Arch, Conv, InvertedResidual
from nas.errors import NasError
from nas.space import SPACES_DIR, Decision, SearchSpace, load_space, space_names

SHIPPED = ("mobilenetv3", "mnasnet", "fbnet")


@pytest.fixture(scope="module", params=SHIPPED)
def space(request: pytest.FixtureRequest) -> SearchSpace:
    return load_space(request.param)


def random_archs(space: SearchSpace, n: int, resolution: int, seed: int = 0) -> list[Arch]:
    rng = random.Random(seed)
    return [space.random_arch(rng, resolution=resolution) for _ in range(n)]


# ---------------------------------------------------------------------------------------------- loading


def test_shipped_spaces_are_found() -> None:
    assert set(SHIPPED) <= set(space_names())
    assert SPACES_DIR.name == "search_spaces"


def test_loads_by_name_from_another_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_space("mobilenetv3").name == "mobilenetv3"
    assert load_space(str(SPACES_DIR / "fbnet.yaml")).name == "fbnet"


def test_decisions_and_combinations(space: SearchSpace) -> None:
    assert space.decisions and all(isinstance(d, Decision) and len(d.choices) > 1 for d in space.decisions)
    assert len({d.name for d in space.decisions}) == len(space.decisions)
    assert space.combinations == math.prod(len(d.choices) for d in space.decisions)
    assert 0 < space.size <= space.combinations


def test_shipped_decision_counts() -> None:
    v3, mnas, fb = (load_space(n) for n in SHIPPED)
    # 5 searchable stages × (kernel, expansion, se, act, layers, width)
    assert len(v3.decisions) == 30 and v3.combinations == (2 * 3 * 2 * 2 * 3 * 3) ** 5
    # 7 blocks × (op, kernel, se, residual, width, layers); the one-layer blocks have 2 layer choices
    assert len(mnas.decisions) == 42 and mnas.combinations == (4 * 2 * 2 * 2 * 3) ** 7 * 3**5 * 2**2
    # FBNet: 22 layers × 9 ops
    assert len(fb.decisions) == 22 and fb.combinations == 9**22
    assert all(len(d.choices) == 9 for d in fb.decisions)


def test_exact_sizes_of_shipped_spaces() -> None:
    # mobilenetv3: every choice gives a different network except width 0.75 of 24 channels, which
    # make_divisible rounds back to 24 (18 → 16 is more than 10% down): stage 1 has 2 distinct widths.
    assert load_space("mobilenetv3").size == 216**4 * 144
    # fbnet: the first layer of a stage either keeps its shape (stage 0: 8 ops or nothing = 9) or changes
    # it (8 ops or the 1×1 conv = 9); the 3 later layers of a 4-layer stage give every sequence of 0 to 3 of
    # the 8 ops (a skip anywhere adds nothing): 1 + 8 + 64 + 512 = 585.
    assert load_space("fbnet").size == 9 * (9 * 585) ** 5 * 9


TINY = """
name: tiny
stem:
  - {type: conv, out: 8, k: 3, s: 2}
ops:
  small: {op: mbconv, expansion: 1, kernel: 3}
stages:
  - {out: 8, n: 2, stride: 1, choose: layer, op: [small, skip, conv]}
  - {out: 16, n: 2, stride: 2, op: [conv, ds, mbconv], se: [0, 0.25], residual: [false, true],
     width: [0.75, 1.0], layers: [-1, 0]}
  - {out: 16, n: 2, stride: 1, choose: layer, op: [skip, mbconv], width: [1.0, 1.5], expansion: 2}
head:
  blocks: [{type: conv, out: 32, k: 1}]
"""


def test_size_counts_distinct_architectures_exactly(tmp_path: Path) -> None:
    """Brute force on a space full of collisions: skips at different positions, SE/residual on a plain
    conv, a width that rounds back, a residual the shapes rule out."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    space = load_space(str(path))
    hashes = set()
    names = [d.name for d in space.decisions]
    for values in __import__("itertools").product(*(d.choices for d in space.decisions)):
        hashes.add(space.arch(dict(zip(names, values, strict=True)), resolution=32).hash)
    assert space.combinations == 3**2 * 3 * 2 * 2 * 2 * 2 * 2 * 2**2
    assert space.size == len(hashes) < space.combinations


# ---------------------------------------------------------------------------------------------- decoding


def test_arch_is_deterministic_and_valid(space: SearchSpace) -> None:
    first = {d.name: d.choices[0] for d in space.decisions}
    last = {d.name: d.choices[-1] for d in space.decisions}
    for choices in (first, last):
        a, b = space.arch(choices), space.arch(dict(choices))
        assert a == b and a.hash == b.hash and a.name == b.name
        assert Arch.from_json(a.to_json()).hash == a.hash  # a valid, serialisable spec
    assert space.arch(first).hash != space.arch(last).hash
    small = space.arch(first, resolution=96, num_classes=10)
    assert small.resolution == 96 and small.num_classes == 10


def test_mobilenetv3_structure_and_skeleton() -> None:
    from nas import zoo

    space = load_space("mobilenetv3")
    skeleton = space.arch(space.skeleton_choices())
    stem, first = skeleton.stem[0], skeleton.stages[0][0]
    assert isinstance(stem, Conv) and (stem.out, stem.s, stem.act) == (16, 2, "hswish")
    assert first.type == "ds" and first.out == 16
    assert [len(s) for s in skeleton.stages] == [1, 2, 3, 4, 2, 3]
    assert [s[-1].out for s in skeleton.stages] == [16, 24, 40, 80, 112, 160]
    assert skeleton.head.blocks[0].out == 960 and skeleton.head.hidden[0].out == 1280
    ir = skeleton.stages[5][1]
    assert isinstance(ir, InvertedResidual) and (ir.mid, ir.k, ir.se, ir.se_gate, ir.act) == (
        960,
        5,
        0.25,
        "hsigmoid",
        "hswish",
    )
    assert ir.se_channels(160) == 240  # make_divisible(960 / 4), MobileNetV3's squeeze width
    # Nearly the skeleton: the same blocks but for the expansions out of the space's reach, stage 1
    # (mid 64, 72; here e4: 64, 96) and stage 3 (mid 240, 200, 184, 184; here e3: 120, 240, 240, 240).
    ref = zoo.get("mobilenet_v3_large")
    assert len(skeleton.blocks) == len(ref.blocks)
    differ = [(a, b) for a, b in zip(skeleton.blocks, ref.blocks, strict=True) if a != b]
    assert len(differ) == 5 and all(a.replace(mid=b.mid) == b for a, b in differ)
    assert abs(skeleton.macs / ref.macs - 1) < 0.02 and abs(skeleton.params / ref.params - 1) < 0.005


def test_mnasnet_skeleton_is_mobilenet_v2() -> None:
    from nas import zoo

    space = load_space("mnasnet")
    skeleton = space.arch(space.skeleton_choices())
    ref = zoo.get("mobilenet_v2")
    assert (skeleton.macs, skeleton.params) == (ref.macs, ref.params)
    assert [len(s) for s in skeleton.stages] == [len(s) for s in ref.stages]


FBNET_C = [
    ["k3_e1"],
    ["k3_e6", "skip", "k3_e1", "k3_e1"],
    ["k5_e6", "k5_e3", "k5_e6", "k3_e6"],
    ["k5_e6", "k5_e3", "k5_e6", "k5_e6"],
    ["k5_e6", "k5_e6", "k5_e6", "k5_e3"],
    ["k5_e6", "k5_e6", "k5_e6", "k5_e6"],
    ["k3_e6"],
]


def test_fbnet_holds_fbnet_b_and_c_exactly() -> None:
    from nas import zoo

    space = load_space("fbnet")
    b = space.arch(space.skeleton_choices())
    c = space.arch({f"stage{i}.layer{j}.op": op for i, ops in enumerate(FBNET_C) for j, op in enumerate(ops)})
    for arch, name in ((b, "fbnet_b"), (c, "fbnet_c")):
        ref = zoo.get(name)
        assert arch.blocks == ref.blocks and arch.stem == ref.stem and arch.head == ref.head, name
        assert (arch.macs, arch.params) == (ref.macs, ref.params)


def test_fbnet_skip_rules() -> None:
    space = load_space("fbnet")
    choices = {d.name: "skip" for d in space.decisions}
    arch = space.arch(choices)
    # a skip vanishes where the shapes match and is a strided 1×1 conv where they change
    assert [len(s) for s in arch.stages] == [0, 1, 1, 1, 1, 1, 1]
    for stage, (out, s) in zip(arch.stages[1:], [(24, 2), (32, 2), (64, 2), (112, 1), (184, 2), (352, 1)], strict=True):
        (block,) = stage
        assert isinstance(block, Conv) and (block.out, block.k, block.s, block.act, block.bias) == (
            out,
            1,
            s,
            "relu",
            True,
        )
    g2 = space.arch(choices | {"stage2.layer1.op": "k5_e1_g2"}).stages[2][1]
    assert isinstance(g2, InvertedResidual) and (g2.groups, g2.k, g2.mid) == (2, 5, 32)


def test_arch_rejects_bad_choices(space: SearchSpace) -> None:
    first = {d.name: d.choices[0] for d in space.decisions}
    name = space.decisions[0].name
    with pytest.raises(NasError, match="no choice for"):
        space.arch({k: v for k, v in first.items() if k != name})
    with pytest.raises(NasError, match="unknown decision"):
        space.arch(first | {"stage99.kernel": 3})
    with pytest.raises(NasError, match="is not one of"):
        space.arch(first | {name: "nonsense"})
    with pytest.raises(NasError, match="is not one of"):
        space.arch(first | {name: True})


def test_arch_accepts_equal_numbers_of_another_type() -> None:
    import numpy as np

    space = load_space("mobilenetv3")
    first = {d.name: d.choices[0] for d in space.decisions}
    other = first | {
        "stage1.kernel": np.int64(3),
        "stage1.width": 0.75,
        "stage2.se": 0.0,
        "stage3.width": np.float64(1),
    }
    assert space.arch(other) == space.arch(first | {"stage3.width": 1.0})


# ---------------------------------------------------------------------------------------------- sampling


def test_random_archs_are_valid_and_cover_every_choice(space: SearchSpace) -> None:
    rng = random.Random(1)
    seen: dict[str, set] = {d.name: set() for d in space.decisions}
    hashes = set()
    for _ in range(200):
        choices = space.random_choices(rng)
        for k, v in choices.items():
            seen[k].add(v)
        hashes.add(space.arch(choices).hash)
    assert all(seen[d.name] == set(d.choices) for d in space.decisions)
    assert len(hashes) > 190


def test_random_arch_builds_and_agrees_with_the_spec(space: SearchSpace) -> None:
    import torch

    from nas.model import Net

    torch.set_num_threads(1)
    arch = space.random_arch(random.Random(3), resolution=64, num_classes=10)
    net = Net(arch).eval()
    assert sum(p.numel() for p in net.parameters()) == arch.params
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 10)


def test_sample_calls_suggest_once_per_decision_in_order(space: SearchSpace) -> None:
    calls = []

    def suggest(name: str, choices: tuple) -> object:
        calls.append((name, choices))
        return choices[-1]

    arch = space.sample(suggest)
    assert calls == [(d.name, d.choices) for d in space.decisions]
    assert arch.hash == space.arch({d.name: d.choices[-1] for d in space.decisions}).hash


def test_sample_through_an_optuna_trial(space: SearchSpace) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    arch = space.sample(trial.suggest_categorical, resolution=96)
    assert list(trial.params) == [d.name for d in space.decisions]
    assert arch.hash == space.arch(trial.params, resolution=96).hash


# ---------------------------------------------------------------------------------------------- ops


@pytest.mark.parametrize("resolution", [224, 96])
def test_ops_cover_random_archs(space: SearchSpace, resolution: int) -> None:
    ops = set(space.ops(resolution))
    assert len(ops) == len(space.ops(resolution))
    for arch in random_archs(space, 200, resolution):
        missing = [(s.path, s.x, s.block) for s in arch.sites() if (s.x, s.block) not in ops]
        assert not missing, missing[:3]


@pytest.mark.parametrize("resolution", [224, 96])
def test_every_op_occurs_in_an_arch(space: SearchSpace, resolution: int) -> None:
    """No impossible op: each op comes with the choices of an arch holding it; decode and look."""
    witnesses = space.op_witnesses(resolution)
    assert list(witnesses) == space.ops(resolution)
    for (x, block), choices in witnesses.items():
        arch = space.arch(choices, resolution=resolution)
        assert any(s.x == x and s.block == block for s in arch.sites()), (x, block)


def test_ops_include_stem_and_head() -> None:
    space = load_space("mobilenetv3")
    ops = space.ops(224)
    assert ops[0][0].c == 3 and ops[0][0].h == 224 and ops[0][1].type == "conv"
    heads = [(x, b) for x, b in ops if isinstance(b, Conv) and b.out == 960]
    assert {x.c for x, _ in heads} == {120, 160, 200} and all(x.h == 7 for x, _ in heads)


# ---------------------------------------------------------------------------------------------- costs


def test_cost_range_bounds_random_archs(space: SearchSpace) -> None:
    rng = space.cost_range(224)
    lo_m, hi_m = rng["macs"][0].macs, rng["macs"][1].macs
    lo_p, hi_p = rng["params"][0].params, rng["params"][1].params
    assert lo_m < hi_m and lo_p < hi_p
    for arch in random_archs(space, 100, 224, seed=5):
        assert lo_m <= arch.macs <= hi_m and lo_p <= arch.params <= hi_p


@pytest.mark.parametrize("maximize", [False, True])
def test_extreme_of_a_per_block_cost(space: SearchSpace, maximize: bool) -> None:
    """The exact optimum of any additive per-block cost (here a made-up one that favours odd choices)."""

    def cost(x: object, block: object) -> float:
        return (hash((x, block)) % 1000) / 7

    value, choices = space.extreme(cost, maximize=maximize, resolution=96)
    arch = space.arch(choices, resolution=96)
    assert value == pytest.approx(sum(cost(s.x, s.block) for s in arch.sites()))
    for other in random_archs(space, 50, 96, seed=9):
        total = sum(cost(s.x, s.block) for s in other.sites())
        assert (total <= value + 1e-6) if maximize else (total >= value - 1e-6)


# ---------------------------------------------------------------------------------------------- errors


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


GOOD = """\
name: mini
stem:
  - {type: conv, out: 16, k: 3, s: 2}
stages:
  - out: 24
    n: 2
    stride: 2
    kernel: [3, 5]
"""


def test_a_minimal_space_loads(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, GOOD))
    assert space.name == "mini" and [d.name for d in space.decisions] == ["stage0.kernel"]
    assert space.size == 2


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("kernel: [3, 5]", "kernel: [3, 4]"),
            r"bad\.yaml:8: stages\[0\]\.kernel\[1\]: must be a odd positive integer",
        ),
        (
            ("kernel: [3, 5]", "kernal: [3, 5]"),
            r":8: stages\[0\]\.kernal: unknown field \(did you mean kernel\?\)",
        ),
        (("kernel: [3, 5]", "kernel: []"), r"stages\[0\]\.kernel: an empty list"),
        (("kernel: [3, 5]", "kernel: [3, 3]"), r"stages\[0\]\.kernel: repeats the choice 3"),
        (("kernel: [3, 5]", "layers: [-2, 0]"), r":8: stages\[0\]\.layers: n \+ -2 = 0 layers"),
        (("kernel: [3, 5]", "op: [mbconv, fancy]"), r"stages\[0\]\.op\[1\]: unknown op 'fancy'"),
        (("kernel: [3, 5]", "act: [relu, gelu]"), r"stages\[0\]\.act\[1\]: must be a activation"),
        (("kernel: [3, 5]", "width: -1"), r"stages\[0\]\.width: must be a positive number"),
        (("kernel: [3, 5]", "se: [0, 1.5]"), r"stages\[0\]\.se\[1\]: must be a number in \[0, 1\)"),
        (
            ("kernel: [3, 5]", "choose: layer\n    layers: [0, 1]"),
            r"stages\[0\]\.layers: a stage that chooses per layer",
        ),
        (
            ("kernel: [3, 5]", "kernel: [3, 5]\n    skeleton: {kernel: 7}"),
            r"stages\[0\]\.skeleton\.kernel: 7 is not one",
        ),
        (("    stride: 2\n", ""), r":5: stages\[0\]\.stride: missing"),
        (("n: 2", "n: two"), r":6: stages\[0\]\.n: must be a positive integer"),
        (("k: 3, s: 2}", "k: 3, s: 2, wat: 1}"), r":3: stem\[0\]\.wat: unknown field"),
        (
            ("name: mini", "name: mini\nhead: {dropout: 2}"),
            r":2: head\.dropout: must be a number in \[0, 1\)",
        ),
        (("name: mini", "name: mini\nfoo: 1"), r":2: foo: unknown field"),
        (
            ("name: mini", "name: mini\nblock: {mbconv: {se_gate: tanh}}"),
            r"block\.mbconv\.se_gate: must be one of",
        ),
        ((GOOD[GOOD.index("stages:") :], "stages: 3\n"), r":4: stages: must be a non-empty list"),
        (("kernel: [3, 5]", "kernel: [3, 5"), r"bad\.yaml:\d+: not valid YAML"),
        (("kernel: [3, 5]", "kernel: [3, 5]\n    kernel: 3"), r"bad\.yaml:9: kernel: repeated key"),
    ],
)
def test_yaml_errors_name_file_line_and_field(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(NasError, match=expected):
        load_space(write(tmp_path, GOOD.replace(old, new, 1)))


def test_blocks_the_space_cannot_build_are_caught_on_load(tmp_path: Path) -> None:
    text = GOOD.replace("kernel: [3, 5]", "groups: [1, 3]\n    expansion: 1")
    with pytest.raises(NasError, match="3 groups do not divide"):
        load_space(write(tmp_path, text))


def test_unknown_space_names_close_matches(tmp_path: Path) -> None:
    with pytest.raises(NasError, match="unknown search space 'mobilenet_v3'; did you mean mobilenetv3"):
        load_space("mobilenet_v3")
    with pytest.raises(NasError, match="does not exist"):
        load_space(str(tmp_path / "nope.yaml"))


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    from nas.cli import main

    assert main(["space", "show", "fbnet", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["name"] == "fbnet" and doc["size"] == load_space("fbnet").size and len(doc["decisions"]) == 22
    assert doc["macs"]["min"] < doc["macs"]["max"] and doc["ops"] == len(load_space("fbnet").ops())


def test_cli_show_and_list_text(capsys: pytest.CaptureFixture[str]) -> None:
    from nas.cli import main

    assert main(["space", "show", "mobilenetv3"]) == 0
    out = capsys.readouterr().out
    assert "313,456,656,384 distinct architectures" in out and "mobilenet_v3_large" in out
    assert main(["space", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SHIPPED)


def test_cli_bad_name_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    from nas.cli import main

    assert main(["space", "show", "fbnett"]) == 2
    assert "did you mean fbnet" in capsys.readouterr().err


@pytest.mark.parametrize("resolution", [0, 100000])
def test_resolution_out_of_range_is_refused_by_the_api_and_the_cli(
    resolution: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from nas.cli import main

    space = load_space("fbnet")
    message = f"space fbnet: resolution must be an integer from 1 to 4096, got {resolution}"
    for call in (space.cost_range, space.ops, lambda r: space.arch(space.skeleton_choices() or {}, r)):
        with pytest.raises(NasError, match=message):
            call(resolution)
    assert main(["space", "show", "fbnet", "--resolution", str(resolution)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"nas: error: {message}\n"
