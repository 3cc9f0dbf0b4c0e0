"""The architecture spec: validation messages, canonical JSON, the content hash, `make_divisible`."""

from __future__ import annotations

import copy
import json
import re

import pytest

from nas import zoo
from nas.arch import (
    MAX_MACS,
    MAX_PARAMS,
    SCHEMA,
    Arch,
    Conv,
    Dense,
    Head,
    InvertedResidual,
    SpecError,
    make_divisible,
)
from nas.errors import NasError


def tiny(name: str = "tiny", **ir2: object) -> Arch:
    """A hand-written net small enough to cost by hand (see test_tiny_costs_by_hand)."""
    second = {"out": 16, "mid": 32, "k": 5, "s": 2, "se": 0.25, "act": "hswish", **ir2}
    return Arch(
        name=name,
        resolution=32,
        num_classes=10,
        stem=[Conv(out=8, k=3, s=2, act="relu6")],
        stages=[[InvertedResidual(out=8, mid=16, k=3, act="relu6"), InvertedResidual(**second)]],
        head=Head(blocks=(Conv(out=32, act="hswish"),), dropout=0.1),
    )


def tiny_dict() -> dict:
    return json.loads(tiny().to_json())


def spec_error(data: dict) -> str:
    with pytest.raises(SpecError) as info:
        Arch.from_dict(data)
    return str(info.value)


# ---------------------------------------------------------------------------------------------- validation


def test_negative_mid_names_block_path_and_field() -> None:
    data = tiny_dict()
    data["stages"][0][1]["mid"] = -4
    msg = spec_error(data)
    assert msg.startswith("block 2 (stages[0][1], ir).mid: must be a positive integer")
    assert "-4" in msg


def test_unknown_activation() -> None:
    data = tiny_dict()
    data["stages"][0][0]["act"] = "gelu"
    msg = spec_error(data)
    assert msg.startswith("block 1 (stages[0][0], ir).act: must be one of")
    assert "hswish" in msg and "'gelu'" in msg


def test_groups_not_dividing_channels() -> None:
    expected = r"^block 0 \(stem\[0\], conv\)\.groups: 3 groups do not divide 3 → 8"
    with pytest.raises(SpecError, match=expected):
        Arch(resolution=32, num_classes=10, stem=[Conv(out=8, k=3, groups=3)], stages=[])
    data = tiny_dict()
    data["stages"][0][1]["groups"] = 3
    assert spec_error(data).startswith("block 2 (stages[0][1], ir).groups: 3 groups do not divide the 8 in")


def test_unknown_field() -> None:
    data = tiny_dict()
    data["stages"][0][1]["expansion"] = 6
    msg = spec_error(data)
    assert msg.startswith("stages[0][1].expansion: unknown field")
    assert "mid" in msg  # the known fields are listed
    data = tiny_dict()
    data["head"]["pool"] = "max"
    assert spec_error(data).startswith("head.pool: unknown field")
    data = tiny_dict()
    data["depth"] = 3
    assert spec_error(data).startswith("depth: unknown field")


def test_missing_field() -> None:
    data = tiny_dict()
    del data["stages"][0][0]["mid"]
    assert spec_error(data) == "stages[0][0].mid: missing (a 'ir' block needs it)"
    data = tiny_dict()
    del data["head"]["blocks"][0]["out"]
    assert spec_error(data).startswith("head.blocks[0].out: missing")
    data = tiny_dict()
    del data["resolution"]
    assert spec_error(data) == "resolution: missing"


def test_wrong_types() -> None:
    data = tiny_dict()
    data["stages"][0][0]["skip"] = "yes"
    assert spec_error(data) == "stages[0][0].skip: must be true or false, got 'yes'"
    data = tiny_dict()
    data["stem"][0]["act"] = 6
    assert spec_error(data) == "stem[0].act: must be a string, got 6"
    data = tiny_dict()
    data["stages"][0][1]["k"] = "5"
    assert spec_error(data) == "stages[0][1].k: must be an integer, got '5'"
    data = tiny_dict()
    data["stages"][0][1]["k"] = 0
    assert spec_error(data).startswith("block 2 (stages[0][1], ir).k: must be a positive integer, got 0")
    data = tiny_dict()
    data["head"]["classifier_bias"] = "True"
    assert spec_error(data) == "head.classifier_bias: must be true or false, got 'True'"
    data = tiny_dict()
    data["stages"][0][1]["se"] = 1.5
    assert spec_error(data).startswith("block 2 (stages[0][1], ir).se: must be a number in [0, 1]")
    data = tiny_dict()
    data["stages"] = {"0": []}
    assert spec_error(data) == "stages: must be a list of lists of blocks"
    data = tiny_dict()
    data["stages"][0][0] = "ir_r1_k3_s1_e2_c8"
    assert spec_error(data).startswith("stages[0][0]: a block must be an object")
    assert spec_error([1, 2]) == "an architecture must be a JSON object"  # type: ignore[arg-type]


def test_unknown_block_type_and_schema() -> None:
    data = tiny_dict()
    data["stages"][0][0]["type"] = "mbconv"
    msg = spec_error(data)
    assert msg.startswith("stages[0][0].type: unknown block type 'mbconv'")
    assert "ir" in msg and "ghost" in msg
    data = tiny_dict()
    data["schema"] = "nas.arch/2"
    assert spec_error(data) == f"schema: expected {SCHEMA!r}, got 'nas.arch/2'"


def test_head_and_network_level_errors() -> None:
    data = tiny_dict()
    data["head"]["classifier"] = "mlp"
    assert spec_error(data).startswith("head.classifier: must be 'linear' or 'conv'")
    data = tiny_dict()
    data["head"]["hidden"] = [{"out": 64, "act": "tanh"}]
    assert spec_error(data).startswith("head.hidden[0].act: must be one of")
    data = tiny_dict()
    data["head"]["dropout"] = 1.0
    assert spec_error(data).startswith("head.dropout: must be a number in [0, 1)")
    data = tiny_dict()
    data["num_classes"] = 0
    assert spec_error(data) == "num_classes: must be a positive integer, got 0"
    data = tiny_dict()
    data["resolution"] = 2
    data["stem"][0]["pad"] = 0  # an unpadded 3×3 conv cannot run on 2×2
    assert spec_error(data) == "block 0 (stem[0], conv): input 3×2×2 is too small for it"


def test_spec_errors_are_user_errors() -> None:
    """The CLI turns NasError into one line and exit 2; a bad spec must be one."""
    assert issubclass(SpecError, NasError)
    with pytest.raises(SpecError, match="not valid JSON"):
        Arch.from_json('{"stages": [')


# ---------------------------------------------------------------------------------------------- JSON


@pytest.mark.parametrize("name", [v.name for v in zoo.variants()])
def test_canonical_json_round_trip_is_exact(name: str) -> None:
    arch = zoo.get(name)
    text = arch.to_json()
    again = Arch.from_json(text)
    assert again == arch
    assert again.to_json() == text
    compact = arch.to_json(indent=None)
    assert Arch.from_json(compact).to_json(indent=None) == compact
    assert again.hash == arch.hash


def test_json_defaults_are_filled_and_written_out() -> None:
    """A hand-written spec may omit defaults; its canonical form writes every field, so it round-trips."""
    minimal = {
        "resolution": 32,
        "num_classes": 10,
        "stem": [{"type": "conv", "out": 8, "k": 3, "s": 2}],
        "stages": [[{"type": "ir", "out": 8, "mid": 16}]],
    }
    arch = Arch.from_dict(minimal)
    full = json.loads(arch.to_json())
    assert full["schema"] == SCHEMA
    assert full["stages"][0][0]["se_gate"] == "hsigmoid" and full["stages"][0][0]["skip"] is True
    head = {"blocks": [], "hidden": [], "dropout": 0.0, "classifier": "linear", "classifier_bias": True}
    assert full["head"] == head
    assert Arch.from_dict(full) == arch


# ---------------------------------------------------------------------------------------------- hash


def test_hash_is_stable() -> None:
    """A literal: the hash must not change within nas.arch/1, or stored runs lose their identity."""
    assert tiny().hash == "52467ed348886e87"


def test_hash_ignores_name_and_follows_content() -> None:
    assert tiny("a").hash == tiny("b").hash
    assert tiny().hash != tiny(k=3).hash
    assert tiny().hash != tiny(se_gate="sigmoid").hash
    assert tiny().hash != tiny().replace(resolution=64).hash
    assert tiny().hash != tiny().replace(num_classes=11).hash
    with_hidden = tiny().replace(head=Head(blocks=tiny().head.blocks, hidden=(Dense(out=64),), dropout=0.1))
    assert with_hidden.hash != tiny().hash
    data = tiny_dict()
    shuffled = copy.deepcopy(data)
    shuffled["stages"][0][1] = dict(reversed(list(data["stages"][0][1].items())))
    assert Arch.from_dict(shuffled).hash == tiny().hash  # key order in the file does not matter


def test_tiny_costs_by_hand() -> None:
    """Parameters of `tiny`, counted by hand: conv + BN affine, SE with biases, classifier with bias."""
    stem = 8 * 3 * 9 + 16
    ir1 = (8 * 16 + 32) + (16 * 9 + 32) + (16 * 8 + 16)
    se = 32 * 8 + 8 + 8 * 32 + 32  # SE on make_divisible(32 · 0.25) = 8 channels
    ir2 = (8 * 32 + 64) + (32 * 25 + 64) + se + (32 * 16 + 32)
    head = (16 * 32 + 64) + (32 * 10 + 10)
    assert tiny().params == stem + ir1 + ir2 + head == 3898


# ---------------------------------------------------------------------------------------------- rounding


@pytest.mark.parametrize(
    ("value", "divisor", "expected"),
    [
        (32 * 0.35, 8, 16),  # 11.2 → 8 would lose > 10%, so one step up (MobileNetV2-0.35 stem)
        (24 * 0.75, 8, 24),  # 18 → 16 is 11% below: up to 24
        (16 * 0.5, 8, 8),
        (1280 * 0.75, 8, 960),
        (96 * 0.75, 8, 72),
        (3, 8, 8),  # never below the divisor
        (37, 4, 36),
        (25, 8, 24),
        (28, 8, 32),  # halfway rounds up
        (27.9, 8, 32),  # 24 would be > 10% below
    ],
)
def test_make_divisible(value: float, divisor: int, expected: int) -> None:
    got = make_divisible(value, divisor)
    assert got == expected
    assert got % divisor == 0 and got >= 0.9 * value


def test_make_divisible_min_value() -> None:
    assert make_divisible(0.5, 8, min_value=1) == 1
    assert make_divisible(5, 8, min_value=4) == 8
    assert make_divisible(2, 4, min_value=16) == 16


def test_hash_ignores_int_or_float_spelling_of_ratios() -> None:
    """`"se": 0` and `"se": 0.0` are the same network: equal specs, so equal hashes."""
    data = tiny_dict()
    data["stages"][0][0]["se"] = 0
    spelled = Arch.from_dict(data)
    assert spelled == tiny()
    assert spelled.hash == tiny().hash


# ---------------------------------------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["stages"][0][1].update(out=20_000), r"stages\[0\]\[1\], ir\)\.out: 20000 is above .* 16384"),
        (lambda d: d["stages"][0][1].update(mid=10**9), r"\.mid: 1000000000 is above the limit .*MAX_CHANNELS"),
        (lambda d: d["stages"][0][1].update(k=33), r"\.k: 33 is above the limit of 31 \(MAX_KERNEL\)"),
        (lambda d: d["stages"][0][1].update(s=17), r"\.s: 17 is above the limit of 16 \(MAX_STRIDE\)"),
        (lambda d: d.update(resolution=4097), r"^resolution: 4097 is above the limit of 4096 \(MAX_RESOLUTION\)"),
        (lambda d: d.update(num_classes=100_001), r"^num_classes: .*MAX_CLASSES"),
        (lambda d: d.update(in_channels=16_385), r"^in_channels: .*MAX_CHANNELS"),
        (lambda d: d["head"].update(hidden=[{"out": 20_000}]), r"^head\.hidden\[0\]\.out: .*MAX_CHANNELS"),
        (lambda d: d["stages"][0].extend([d["stages"][0][0]] * 63), r"^stages\[0\]: 65 entries.*MAX_LAYERS"),
        (lambda d: d["stages"].extend([d["stages"][0]] * 64), r"^stages: 65 entries.*MAX_STAGES"),
        (lambda d: d.update(stem=[d["stem"][0]] * 65), r"^stem: 65 entries"),
        (lambda d: d["stem"][0].update(pad=-1), r"stem\[0\], conv\)\.pad"),
    ],
)
def test_numbers_past_their_limit_are_refused_with_path_and_limit(change, message) -> None:
    data = tiny_dict()
    change(data)
    assert re.search(message, spec_error(data))


def test_limits_hold_for_specs_made_in_python_too() -> None:
    with pytest.raises(SpecError, match="MAX_RESOLUTION"):
        tiny().replace(resolution=100_000)
    with pytest.raises(SpecError, match=r"\.out: 20000 is above"):
        tiny(out=20_000)


def test_ceilings_name_the_block_that_passes_them() -> None:
    """Each number within its limit, the network past a ceiling: the first block over it is named."""
    wide = [Conv(out=8192, k=1)]
    with pytest.raises(SpecError, match=r"block 1 \(stages\[0\]\[0\], conv\): .* parameters .*MAX_PARAMS"):
        Arch(resolution=8, num_classes=10, stem=wide, stages=[[Conv(out=8192, k=31)]])
    with pytest.raises(SpecError, match=r"block 1 \(stages\[0\]\[0\], conv\): .*multiply-accumulates.*MAX_MACS"):
        Arch(resolution=1024, num_classes=10, stem=[Conv(out=512, k=3)], stages=[[Conv(out=512, k=3)]])
    with pytest.raises(SpecError, match=r"block 0 \(stem\[0\], conv\): its 512×4096×4096 output .*MAX_ACTIVATION"):
        Arch(resolution=4096, num_classes=10, stem=[Conv(out=512, k=1)], stages=[])
    with pytest.raises(SpecError, match=r"^resolution: a 128×4096×4096 input .*MAX_ACTIVATION"):
        Arch(resolution=4096, in_channels=128, num_classes=10, stem=[], stages=[])
    with pytest.raises(SpecError, match=r"head\.classifier: .* parameters .*MAX_PARAMS"):
        Arch(resolution=8, num_classes=100_000, stem=[Conv(out=4096, k=1)], stages=[])


def test_the_largest_zoo_models_are_far_inside_the_ceilings() -> None:
    for name in ("xception", "mobilenet_v2"):
        arch = zoo.get(name)
        assert arch.params * 10 < MAX_PARAMS and arch.macs * 10 < MAX_MACS


def test_from_json_is_bounded() -> None:
    with pytest.raises(SpecError, match="nests 100000 levels deep, above the limit of 64"):
        Arch.from_json("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SpecError, match="not valid JSON"):
        Arch.from_json('{"resolution": 1' + "0" * 5000 + "}")
