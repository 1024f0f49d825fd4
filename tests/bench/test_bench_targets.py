"""The benchmark's verdicts on its own figures (pure); the benchmarks themselves are not tests."""
import pytest

from video_analysis.bench.__main__ import TARGETS, check_targets


@pytest.mark.parametrize("key,value,met", [
    ("a_end_to_end_vs_detector_only", 0.90, True), ("a_end_to_end_vs_detector_only", 0.89, False),
    ("overlap_threads_1", 0.91, True), ("overlap_threads_1", 0.75, False),
    ("b_end_to_end_vs_naive", 2.0, True), ("b_end_to_end_vs_naive", 1.9, False),
    ("static_end_to_end_vs_naive", 3.1, True), ("static_end_to_end_vs_naive", 2.9, False),
    ("coverage_gated_minus_ungated", 0.0, True), ("coverage_gated_minus_ungated", -0.03, False),
    ("c_batched_vs_one_at_a_time", 2.0, True), ("c_batched_vs_one_at_a_time", 1.2, False),
    ("d_peak_rss_growth_short_to_long", -0.05, True), ("d_peak_rss_growth_short_to_long", 0.11, False),
    ("e_first_snapshot_fraction_long", 0.25, True), ("e_first_snapshot_fraction_long", 0.3, False),
    ("two_vs_one", 1.8, True), ("two_vs_one", 1.7, False),
])
def test_target_verdicts(key, value, met):
    out = check_targets({"group": {key: value}})
    assert out[key]["met"] is met and out[key]["value"] == value


def test_missing_figures_are_not_judged():
    assert check_targets({"machine": {"cpu": "x"}, "yolo": {"a_end_to_end_vs_detector_only": None}}) == {}


def test_every_target_has_a_verdict_case():
    """A target added without a case in test_target_verdicts fails here."""
    named = {key for mark in test_target_verdicts.pytestmark for key, _v, _m in mark.args[1]}
    assert named == set(TARGETS), set(TARGETS) ^ named


def test_a_figure_in_two_groups_gets_two_verdicts():
    out = check_targets({"yolo": {"b_end_to_end_vs_naive": 2.5}, "yolo_640": {"b_end_to_end_vs_naive": 1.5},
                         "yolo_static": {"static_end_to_end_vs_naive": 4.0, "coverage_gated_minus_ungated": 0.0}})
    assert out["b_end_to_end_vs_naive"]["met"] is True and out["b_end_to_end_vs_naive@yolo_640"]["met"] is False
    assert out["static_end_to_end_vs_naive"]["met"] and out["coverage_gated_minus_ungated"]["met"]


@pytest.mark.parametrize("argv,groups", [
    ([], {"yolo", "main", "long", "formats", "segments"}),  # `make bench`: no group named
    (["all"], {"yolo", "main", "long", "formats", "segments"}),
    (["segments"], {"segments"}),
    (["formats"], {"formats"}),
    (["yolo", "main"], {"yolo", "main"}),
    (["long", "--quick"], {"long"}),
])
def test_command_line_groups(argv, groups):
    from video_analysis.bench.__main__ import parse_args

    assert parse_args(argv)[1] == groups


def test_unknown_group_is_refused():
    from video_analysis.bench.__main__ import parse_args

    with pytest.raises(SystemExit):
        parse_args(["everything"])


@pytest.mark.parametrize("isa,environ,expected", [
    (None, {}, None),                                            # no cap asked for
    ("avx2", {}, {"ONEDNN_MAX_CPU_ISA": "AVX2"}),                # re-run under the cap
    ("avx2", {"PATH": "/bin"}, {"PATH": "/bin", "ONEDNN_MAX_CPU_ISA": "AVX2"}),
    ("avx2", {"ONEDNN_MAX_CPU_ISA": "AVX2"}, None),              # already under it: no second re-run
    ("avx2", {"ONEDNN_MAX_CPU_ISA": "avx2"}, None),
    ("avx2", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, {"ONEDNN_MAX_CPU_ISA": "AVX2"}),
])
def test_isa_cap_environment(isa, environ, expected):
    from video_analysis.bench.__main__ import isa_capped_env

    assert isa_capped_env(isa, environ) == expected


@pytest.mark.parametrize("environ,changes", [
    ({}, {}),
    ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, {"detector_precision": "f32", "main_precision": "f32"}),  # no AVX2 bf16 kernels
    ({"ONEDNN_MAX_CPU_ISA": "avx2"}, {"detector_precision": "f32", "main_precision": "f32"}),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, {}),
])
def test_a_run_capped_at_avx2_asks_for_float32(environ, changes):
    from video_analysis.bench.common import isa_cap_changes

    assert isa_cap_changes(environ) == changes
