"""Pure metrics and gates of the TTS bench (autortc.tts_bench.metrics / gates)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autortc.tts_bench import metrics
from autortc.tts_bench.gates import evaluate_gates, load_tts_gates

pytestmark = pytest.mark.unit

SR = 16000


def _speechlike(seconds: float, seed: int, sr: int = SR, pause_s: tuple[float, ...] = ()) -> np.ndarray:
    """Never-repeating 'syllables': 80 ms harmonic tones, random f0 and spectral tilt, plus silent pauses."""
    rng = np.random.default_rng(seed)
    n_syl = int(seconds / 0.08)
    t = np.arange(int(0.08 * sr)) / sr
    parts = []
    for i in range(n_syl):
        f0 = rng.uniform(90, 260)
        amps = rng.uniform(0, 1, 12) * np.exp(-np.arange(12) * rng.uniform(0.05, 0.6))
        tone = sum(a * np.sin(2 * np.pi * f0 * (k + 1) * t + rng.uniform(0, 6.28)) for k, a in enumerate(amps))
        parts.append(tone * np.hanning(t.size))
        if any(abs(i * 0.08 - p) < 0.04 for p in pause_s):
            parts.append(np.zeros(int(0.6 * sr)))
    y = np.concatenate(parts)
    return (0.5 * y / np.max(np.abs(y)) * 32767).astype(np.int16)


def test_pcm_sha256_tells_identical_from_one_sample_off() -> None:
    a = _speechlike(0.5, 1)
    b = a.copy()
    assert metrics.pcm_sha256(a) == metrics.pcm_sha256(b)
    b[100] += 1
    assert metrics.pcm_sha256(a) != metrics.pcm_sha256(b)


def test_snr_identical_is_capped_and_known_noise_gives_known_snr() -> None:
    x = np.sin(np.arange(SR) * 0.05).astype(np.float64)
    assert metrics.snr_db(x, x) == metrics.SNR_CAP_DB
    assert metrics.snr_db(x, x + 0.1 * x) == pytest.approx(20.0, abs=1e-9)
    assert metrics.snr_db(x, 0.99 * x) == pytest.approx(40.0, abs=1e-9)


def test_snr_counts_length_change_as_error() -> None:
    x = _speechlike(1.0, 2)
    slower = np.concatenate([x, x[: SR // 4]])
    assert metrics.snr_db(x, slower) < 15.0
    assert metrics.snr_db(x, x[: x.size // 2]) < 15.0


def test_duration_and_ms_per_char() -> None:
    assert metrics.duration_diff_ms(22050, 22050 + 441, 22050) == pytest.approx(20.0)
    assert metrics.ms_per_char(16000, 16000, "ab cd") == pytest.approx(250.0)
    assert math.isnan(metrics.ms_per_char(100, 16000, "   "))


def test_percentile_ignores_nan() -> None:
    assert metrics.percentile([1.0, float("nan"), 3.0], 50) == 2.0
    assert math.isnan(metrics.percentile([], 95))


def test_detect_repeats_finds_a_copied_segment() -> None:
    x = _speechlike(4.0, 3)
    k = SR
    looped = np.concatenate([x[: 3 * k], x[2 * k: 3 * k], x[3 * k:]])  # second 2..3 s plays twice
    report = metrics.detect_repeats(looped, SR)
    assert report.repeats == 1
    assert report.max_similarity > 0.99
    start, end, lag = report.spans_s[0]
    assert lag == pytest.approx(1.0, abs=0.02)
    assert 2.9 < start < 3.3 and 3.7 < end < 4.1


def test_detect_repeats_ignores_fresh_audio_and_shared_pauses() -> None:
    x = _speechlike(5.0, 4, pause_s=(1.0, 3.0))
    report = metrics.detect_repeats(x, SR)
    assert report.repeats == 0
    assert report.max_similarity < 0.85


def test_detect_repeats_too_short_audio_is_not_judged() -> None:
    report = metrics.detect_repeats(_speechlike(0.6, 5), SR)
    assert report == metrics.RepeatReport(0, 0.0, ())


def test_stream_stats_sizes_ttfa_and_stalls() -> None:
    sr = 1000
    sizes = [20, 20, 20, 5, 20]
    # player starts at 0.1 s; chunk 3 (due 0.16 s) comes at 0.30 s: one stall of 140 ms
    times = [0.10, 0.11, 0.12, 0.30, 0.305]
    st = metrics.stream_stats(sizes, times, 0.0, 0.31, sr, max_chunk_samples=20)
    assert st.chunks == 5 and st.max_chunk_samples == 20 and st.oversize_chunks == 0
    assert st.ttfa_ms == pytest.approx(100.0)
    assert st.total_ms == pytest.approx(310.0)
    assert st.underruns == 1
    assert st.max_stall_ms == pytest.approx(140.0)
    big = metrics.stream_stats([30, 10], [0.0, 0.001], 0.0, 0.01, sr, max_chunk_samples=20)
    assert big.oversize_chunks == 1 and big.underruns == 0


def test_stream_stats_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="differ"):
        metrics.stream_stats([1, 2], [0.0], 0.0, 1.0, 100, 10)
    with pytest.raises(ValueError, match="no chunk"):
        metrics.stream_stats([], [], 0.0, 1.0, 100, 10)


def _summary(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "ttfa_p95_ms": 120.0, "hash_unique_max": 1, "nondeterministic": [], "snr_min_db": 120.0,
        "snr_worst": "a (120.0 dB)", "duration_diff_p95_ms": 0.0, "gold_missing": [],
        "ms_per_char_min": 60.0, "ms_per_char_max": 140.0, "ms_per_char_out": [], "repeat_worst": 0,
        "repeating": [], "oversize_chunks": 0, "empty_chunks": 0, "max_chunk_samples": 441,
        "chunk_samples": 441, "first_chunk_late_calls": 0, "underruns": 0, "max_stall_ms": 0.0, "rtf_p95": 0.1,
    }
    base.update(over)
    return base


def test_gates_pass_on_good_figures_and_each_fails_on_its_own() -> None:
    gates = load_tts_gates()
    assert {g.status for g in evaluate_gates(_summary(), gates)} == {"PASS"}
    cases = {
        "ttfa_p95": {"ttfa_p95_ms": 351.0},
        "determinism": {"hash_unique_max": 2},
        "fidelity_snr": {"snr_min_db": 14.9},
        "duration_diff_p95": {"duration_diff_p95_ms": 51.0},
        "ms_per_char_min": {"ms_per_char_min": 29.0},
        "ms_per_char_max": {"ms_per_char_max": 400.0},
        "repetition": {"repeat_worst": 1},
        "chunk_size": {"oversize_chunks": 3},
        "empty_chunks": {"empty_chunks": 1},
        "first_chunk_early": {"first_chunk_late_calls": 1},
        "underruns": {"underruns": 2},
        "gold_complete": {"gold_missing": ["x (missing)"]},
    }
    for name, change in cases.items():
        failed = [g.gate for g in evaluate_gates(_summary(**change), gates) if g.status == "FAIL"]
        assert failed == [name], (name, failed)


def test_missing_gold_fails_and_names_the_fix() -> None:
    results = {g.gate: g for g in evaluate_gates(_summary(gold_missing=["x (missing)"]), load_tts_gates())}
    assert results["gold_complete"].status == "FAIL" and results["gold_complete"].measured == 1
    assert "--update-gold" in results["gold_complete"].message and "x (missing)" in results["gold_complete"].message


def test_fidelity_skipped_when_gold_regenerated_and_rtf_gate_optional(tmp_path) -> None:
    assert "rtf_p95" not in {g.gate for g in evaluate_gates(_summary(), load_tts_gates())}  # off by default
    f = tmp_path / "tts.toml"
    f.write_text("[gates.rtf_p95]\nenabled = true\nfail = 0.05\n")
    results = {g.gate: g for g in evaluate_gates(_summary(snr_min_db=3.0), load_tts_gates(f), fidelity_skipped="new gold")}
    assert results["fidelity_snr"].status == "SKIP" and results["duration_diff_p95"].status == "SKIP"
    assert results["fidelity_snr"].message == "new gold"
    assert results["rtf_p95"].status == "FAIL" and results["rtf_p95"].threshold == 0.05


def test_gate_overrides_use_the_shared_layout() -> None:
    from autortc.gates import GateConfigError

    g = load_tts_gates(None, {"ttfa_p95": 400.0, "determinism": 2})
    v = {x.gate: x.status for x in evaluate_gates(_summary(ttfa_p95_ms=351.0, hash_unique_max=2), g)}
    assert v["ttfa_p95"] == "PASS" and v["determinism"] == "PASS"
    with pytest.raises(GateConfigError, match="--gate: gates.ttfa_p95_ms: unknown gate"):
        load_tts_gates(None, {"ttfa_p95_ms": 1})
