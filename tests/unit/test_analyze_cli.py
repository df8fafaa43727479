import json

import numpy as np
import pytest
import soundfile as sf
import typer
from typer.testing import CliRunner

from autortc.commands.analyze import parse_spans, register
from autortc.testing.faults import boom, dropout, hf_loss, make_speech

pytestmark = pytest.mark.unit

ANALYZE_FIELDS = {"duration_ms", "rms", "clipping_ratio", "max_gap_ms", "gaps", "audible_dropouts",
                  "peak_spike_count", "peak_derivative_max", "hf_energy_ratio"}
COMPARE_FIELDS = {"lag_ms", "mel_distance", "drift_ratio", "hf_ratio_drop", "max_gap_ms", "audible_dropouts"}


@pytest.fixture(scope="module")
def app():
    a = typer.Typer()
    register(a)
    return a


@pytest.fixture(scope="module")
def speech():
    return make_speech(16000, seed=60, sentences=2)


def _run(app, *args):
    r = CliRunner().invoke(app, list(map(str, args)))
    return r


def test_analyze_json_on_stereo_44k(app, speech, tmp_path):
    from autortc.audio import resample

    at = speech.fault_points_ms(80, 1)[0]
    y, f = dropout(speech.samples, 16000, at, 80)
    y44 = resample(y, 16000, 44100)
    p = tmp_path / "stereo.wav"
    sf.write(p, np.stack([y44, y44], axis=1), 44100, subtype="PCM_16")
    spans = ",".join(f"{a / 1000:.3f}-{b / 1000:.3f}" for a, b in speech.expected_silence_ms)
    r = _run(app, "analyze", p, "--expected-silence", spans, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert ANALYZE_FIELDS <= set(d)
    assert d["duration_ms"] == pytest.approx(y.shape[0] / 16, abs=1)
    assert d["audible_dropouts"] == 1 and len(d["gaps"]) == 1
    assert abs(d["gaps"][0]["start_ms"] - f.start_ms) <= 10 and abs(d["gaps"][0]["end_ms"] - f.end_ms) <= 10
    assert d["max_gap_ms"] == pytest.approx(80, abs=10)


def test_analyze_reports_boom(app, speech, tmp_path):
    y, f = boom(speech.samples, 16000, speech.speech_points_ms(1)[0])
    p = tmp_path / "boom.wav"
    sf.write(p, y, 16000)
    d = json.loads(_run(app, "analyze", p, "--json").stdout)
    assert d["peak_spike_count"] == 1 and d["peak_derivative_max"] >= 0.8


def test_compare_json(app, speech, tmp_path):
    y, _ = hf_loss(speech.samples, 16000, gain=0.0)
    y = np.concatenate([np.zeros(480, np.float32), y])  # 30 ms later
    ref, deg = tmp_path / "ref.wav", tmp_path / "deg.wav"
    sf.write(ref, speech.samples, 16000)
    sf.write(deg, y, 16000)
    r = _run(app, "compare", ref, deg, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert COMPARE_FIELDS <= set(d)
    assert d["lag_ms"] == pytest.approx(30.0, abs=0.1)
    assert d["hf_ratio_drop"] == pytest.approx(1.0, rel=0.1)
    assert d["drift_ratio"] == pytest.approx(1.0, abs=0.01)
    assert d["audible_dropouts"] == 0


@pytest.mark.parametrize("kind", ["empty", "text", "missing", "no_samples"])
def test_bad_files_exit_2_naming_the_file(app, tmp_path, kind):
    p = tmp_path / f"{kind}.wav"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("hello, not audio")
    elif kind == "no_samples":
        sf.write(p, np.zeros(0, np.float32), 16000)
    r = _run(app, "analyze", p, "--json")
    assert r.exit_code == 2
    assert str(p) in r.output
    good = tmp_path / "good.wav"
    sf.write(good, np.zeros(1600, np.float32), 16000)
    r2 = _run(app, "compare", good, p)
    assert r2.exit_code == 2 and str(p) in r2.output


def test_bad_expected_silence(app, tmp_path):
    p = tmp_path / "a.wav"
    sf.write(p, np.zeros(1600, np.float32), 16000)
    r = _run(app, "analyze", p, "--expected-silence", "1.5-1.2")
    assert r.exit_code == 2 and "--expected-silence" in r.output
    assert parse_spans("1.2-1.8, 3-3.25") == [(1200.0, 1800.0), (3000.0, 3250.0)]
