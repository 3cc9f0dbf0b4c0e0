"""The block-string codec: exact round trips on the zoo, timm's published strings, and clear errors."""

from __future__ import annotations

import pytest

from nas import zoo
from nas.arch import Conv, DepthwiseSeparable, Ghost, InvertedResidual, SpecError
from nas.block_strings import (
    EFFICIENTNET,
    MNASNET,
    MOBILENET_V1,
    MOBILENET_V2,
    MOBILENET_V3,
    BlockStringStyle,
    decode,
    encode,
    timm_strings,
)

STYLES = {
    "mobilenet_v1": MOBILENET_V1,
    "mobilenet_v2": MOBILENET_V2,
    "mobilenet_v3_large": MOBILENET_V3,
    "mobilenet_v3_small": MOBILENET_V3,
    "mnasnet_a1": MNASNET,
    "mnasnet_b1": MNASNET,
    "mnasnet_small": MNASNET,
    "proxylessnas_mobile": MOBILENET_V2,  # ReLU6, no SE
    "efficientnet_b0": EFFICIENTNET,
}

# timm/models/mobilenetv3.py `_gen_mobilenet_v3` (v1.0.31), as published.
TIMM_MNV3_LARGE = [
    ["ds_r1_k3_s1_e1_c16_nre"],
    ["ir_r1_k3_s2_e4_c24_nre", "ir_r1_k3_s1_e3_c24_nre"],
    ["ir_r3_k5_s2_e3_c40_se0.25_nre"],
    ["ir_r1_k3_s2_e6_c80", "ir_r1_k3_s1_e2.5_c80", "ir_r2_k3_s1_e2.3_c80"],
    ["ir_r2_k3_s1_e6_c112_se0.25"],
    ["ir_r3_k5_s2_e6_c160_se0.25"],
    ["cn_r1_k1_s1_c960"],
]
TIMM_MNV3_SMALL = [
    ["ds_r1_k3_s2_e1_c16_se0.25_nre"],
    ["ir_r1_k3_s2_e4.5_c24_nre", "ir_r1_k3_s1_e3.67_c24_nre"],
    ["ir_r1_k5_s2_e4_c40_se0.25", "ir_r2_k5_s1_e6_c40_se0.25"],
    ["ir_r2_k5_s1_e3_c48_se0.25"],
    ["ir_r3_k5_s2_e6_c96_se0.25"],
    ["cn_r1_k1_s1_c576"],
]
# timm/models/efficientnet.py `_gen_mnasnet_a1`, `_gen_efficientnet` (b0).
TIMM_MNASNET_A1 = [
    ["ds_r1_k3_s1_e1_c16_noskip"],
    ["ir_r2_k3_s2_e6_c24"],
    ["ir_r3_k5_s2_e3_c40_se0.25"],
    ["ir_r4_k3_s2_e6_c80"],
    ["ir_r2_k3_s1_e6_c112_se0.25"],
    ["ir_r3_k5_s2_e6_c160_se0.25"],
    ["ir_r1_k3_s1_e6_c320"],
]
TIMM_EFFICIENTNET_B0 = [
    ["ds_r1_k3_s1_e1_c16_se0.25"],
    ["ir_r2_k3_s2_e6_c24_se0.25"],
    ["ir_r2_k5_s2_e6_c40_se0.25"],
    ["ir_r3_k3_s2_e6_c80_se0.25"],
    ["ir_r3_k5_s1_e6_c112_se0.25"],
    ["ir_r4_k5_s2_e6_c192_se0.25"],
    ["ir_r1_k3_s1_e6_c320_se0.25"],
]


def _stages(arch) -> list[list]:
    return [list(stage) for stage in arch.stages]


@pytest.mark.parametrize(("name", "width"), [(n, w) for n in STYLES for w in sorted({*zoo.FAMILIES[n].widths, 0.5})])
def test_zoo_round_trip_is_exact(name: str, width: float):
    arch = zoo.get(name, width=width)
    cin = arch.stem[-1].out
    strings = encode(arch.stages, cin, STYLES[name])
    assert decode(strings, cin, STYLES[name]) == _stages(arch)
    assert encode(decode(strings, cin, STYLES[name]), cin, STYLES[name]) == strings


@pytest.mark.parametrize(
    ("strings", "name", "widths", "style"),
    [
        (TIMM_MNV3_LARGE, "mobilenet_v3_large", (1.0, 0.75), MOBILENET_V3),
        (TIMM_MNV3_SMALL, "mobilenet_v3_small", (1.0, 0.75), MOBILENET_V3),
        (TIMM_MNASNET_A1, "mnasnet_a1", (1.0, 0.5, 0.75, 1.4), MNASNET),  # timm's semnasnet_050/075/140
        (TIMM_EFFICIENTNET_B0, "efficientnet_b0", (1.0, 0.5, 1.4), EFFICIENTNET),
    ],
)
def test_timm_strings_decode_to_the_zoo(strings, name, widths, style):
    for width in widths:
        arch = zoo.get(name, width=width)
        assert decode(strings, arch.stem[-1].out, style, width=width) == _stages(arch)


def test_encode_writes_timm_strings_with_the_shortest_expansion():
    arch = zoo.get("mobilenet_v3_large")
    expected = [list(stage) for stage in TIMM_MNV3_LARGE]
    expected[0] = ["ds_r1_k3_s1_c16_nre"]  # a ds has no expansion to write
    assert encode(arch.stages, 16, MOBILENET_V3) == expected
    small = encode(zoo.get("mobilenet_v3_small").stages, 16, MOBILENET_V3)
    assert small[1] == [
        "ir_r1_k3_s2_e4.5_c24_nre",
        "ir_r1_k3_s1_e3.7_c24_nre",
    ]  # 3.7 is shorter than 3.67: mid 88
    assert decode([["ir_r1_k3_s1_e3.7_c24"]], 24)[0][0].mid == 88


def test_repeats_merge_only_when_they_decode_back():
    same = [InvertedResidual(out=24, mid=96, k=3, s=2), InvertedResidual(out=24, mid=144, k=3)]
    assert encode([same], 16) == [["ir_r2_k3_s2_e6_c24"]]
    differ = [InvertedResidual(out=24, mid=96, k=3, s=2), InvertedResidual(out=24, mid=96, k=3)]
    assert encode([differ], 16) == [["ir_r1_k3_s2_e6_c24", "ir_r1_k3_s1_e4_c24"]]


def test_options_and_extensions_round_trip():
    stages = [
        [DepthwiseSeparable(out=32, k=3, act="relu6", pw_act=True)],  # pw act with residual: ds + pw
        [InvertedResidual(out=32, mid=64, k=5, groups=2, skip=False, act="hswish")],  # FBNet-style groups
        [Conv(out=64, k=1, s=2, act="swish")],
    ]
    strings = encode(stages, 32)
    assert strings == [
        ["ds_r1_k3_s1_c32_nr6_pw"],
        ["ir_r1_k5_s1_e2_c32_g2_nhs_noskip"],
        ["cn_r1_k1_s2_c64_nsw"],
    ]
    assert decode(strings, 32) == stages


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([[Ghost(out=16, mid=32)]], "no block-string form"),
        ([[InvertedResidual(out=24, mid=20)]], "mid=20"),
        ([[InvertedResidual(out=24, mid=96, se=0.25, se_from="mid")]], "se_from='mid'"),
        ([[InvertedResidual(out=24, mid=96, se=0.25, se_from="in", se_gate="hsigmoid")]], "se_gate"),
        (
            [[InvertedResidual(out=24, mid=96), InvertedResidual(out=24, mid=144, s=2)]],
            r"stages\[0\]\[1\].*s=2",
        ),
        ([[Conv(out=24, k=3, bias=True)]], "bias"),
        ([[Conv(out=24, k=3, act="none")]], "act='none'"),
        ([[InvertedResidual(out=24, mid=96, se_from="in")]], "se_from"),  # SE fields set without SE
    ],
)
def test_inexpressible_blocks_raise(stages, message):
    with pytest.raises(SpecError, match=message):
        encode(stages, 16)


def test_fbnet_biases_are_inexpressible():
    arch = zoo.get("fbnet_c")
    with pytest.raises(SpecError, match=r"stages\[0\]\[0\] \(ir\): bias=True"):
        encode(arch.stages, arch.stem[-1].out)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("xx_r1_k3_s1_c16", "unknown block type 'xx'"),
        ("ir_r1_k3_s1_e6_c24_q5", "unknown option 'q5'"),
        ("ir_r1_k3_s1_e6", "missing option 'c'"),
        ("ir_r1_k3_s1_c24", "missing option 'e'"),
        ("ir_r1_k3x_s1_e6_c24", "unknown option 'k3x'"),
        ("ir_r1_k_s1_e6_c24", "k takes a positive integer"),
        ("ir_r1_k3_s1_e6.2.1_c24", "e takes a number"),
        ("ir_r1_k3_s1_e6_c24_se.5", "se takes a number"),
        ("ir_r0_k3_s1_e6_c24", "'r' must be at least 1"),
        ("ir_r1_k3_s1_e6_c24_c32", "given twice"),
        ("ir_r1_k3_s1_e6_c24_nxx", "unknown option 'nxx'"),
        ("ir_r1_k3_s1_e6_c24_pw", "does not apply"),
        ("ds_r1_k3_s1_e6_c24", "no expansion"),
        ("ir_r1_k3_s1_e6_c24_se1.5", r"\[0, 1\]"),
        ("", "non-empty"),
    ],
)
def test_malformed_strings_raise(text: str, message: str):
    with pytest.raises(SpecError, match=message):
        decode([[text]], 16)


def test_malformed_stages_raise():
    with pytest.raises(SpecError, match="only the first block of a stage may stride"):
        decode([["ir_r1_k3_s1_e6_c24", "ir_r1_k3_s2_e6_c24"]], 16)
    with pytest.raises(SpecError, match=r"stages\[0\]"):
        decode(["ir_r1_k3_s1_e6_c24"], 16)  # a stage must be a list
    with pytest.raises(SpecError, match="groups"):
        decode([["ir_r1_k3_s1_e6_c24_g5"]], 16)
    with pytest.raises(SpecError, match="width"):
        decode([["ir_r1_k3_s1_e6_c24"]], 16, width=0)


def test_style_is_validated():
    with pytest.raises(SpecError, match="act"):
        BlockStringStyle(act="gelu")
    with pytest.raises(SpecError, match="se_from"):
        BlockStringStyle(se_from="out")


def test_timm_strings_pick_the_style_that_expresses_the_arch():
    style, strings = timm_strings(zoo.get("mobilenet_v3_large"))
    assert style == "MOBILENET_V3" and strings[1] == TIMM_MNV3_LARGE[1]
    style, strings = timm_strings(zoo.get("efficientnet_b0", width=0.5))
    assert style == "EFFICIENTNET"
    assert decode(strings, 16, EFFICIENTNET) == _stages(zoo.get("efficientnet_b0", width=0.5))
    with pytest.raises(SpecError, match="no timm block-string form"):
        timm_strings(zoo.get("ghostnet"))
