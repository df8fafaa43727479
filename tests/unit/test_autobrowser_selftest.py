"""The page in real headless Chromium, offline: the mic and playout worklets against a file
whose burst edges are known to the sample (``?selftest=1``: no LiveKit, the "agent" is the
mic delayed by an exact number of samples). Needs Debian's chromium and node/npm for the build.
"""

import json
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from autobrowser.chromium import find_chromium
from autobrowser.selftest import run_selftest
from autobrowser.static import WEB_DIST

pytestmark = pytest.mark.unit

WEB = WEB_DIST.parent


@pytest.fixture(scope="module")
def built_page():
    find_chromium()  # fails with the install hint when Chromium is missing
    subprocess.run([str(WEB / "build.sh")], check=True, capture_output=True, timeout=300)
    assert (WEB_DIST / "index.html").is_file() and (WEB_DIST / "detector-worklet.js").is_file()
    return WEB_DIST


def decode_webm(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as c:
        frames = [f.to_ndarray() for f in c.decode(audio=0)]
        sr = c.streams.audio[0].rate
    x = np.concatenate([f.reshape(-1, f.shape[-1])[0] if f.ndim == 2 else f for f in frames])
    return x.astype(np.float32), sr


@pytest.mark.parametrize("delay_ms, talk_over", [(3000.0, False), (1000.0, True)])
def test_page_detects_eot_and_playout_to_the_sample(built_page, tmp_path, delay_ms, talk_over):
    r = run_selftest(tmp_path, delay_ms=delay_ms)
    print(f"selftest delay={delay_ms}: eot_err={r.eot_error_samples} spacing={r.onset_spacing_errors} "
          f"durations={r.duration_errors} playout_err={r.playout_onset_error_samples} "
          f"kpi={r.kpi.raw_ms} expected={r.kpi_expected_ms} mapping={r.mapping} inserted={r.inserted_zero_samples}")
    assert r.eot_error_samples is not None, "page and file must show the same number of segments"
    assert len(r.page_segments) == len(r.file_segments) == 2
    # Mic: EoT relative to the onset matches the file to 2 samples, once the capture underruns
    # the page reported (whole 10 ms chunks of zeros, seen on a loaded machine) are taken out.
    assert abs(r.eot_error_net_samples) <= 2
    chunk = 480
    for e in (*r.duration_errors, *r.onset_spacing_errors):
        assert min(abs(e - j * chunk) for j in range(r.underrun_blocks + 1)) <= 2, e
    # Playout: the delayed copy's onset is the mic onset + the delay, exactly.
    assert abs(r.playout_onset_error_samples) <= 1
    # USER_KPI from mapped times equals the frame arithmetic + render->output latency.
    assert r.mapping["method"] == "getOutputTimestamp" and r.mapping["n"] >= 10
    assert abs(r.kpi_mapping_error_ms) <= 1.0
    assert r.kpi.is_talk_over is talk_over
    assert (r.kpi.raw_ms < 0) is talk_over and r.kpi.clamped_ms == max(0.0, r.kpi.raw_ms)
    expected_raw = delay_ms - (r.file_segments[-1].end - r.file_segments[0].onset) / 48.0 + r.render_to_output_ms
    assert r.kpi.raw_ms == pytest.approx(expected_raw, abs=0.1 + r.underrun_blocks * 10.0)
    # The Python mirror of the page's frame->time mapping gives the page's own times.
    from autobrowser.trace import BrowserTrace

    tr = BrowserTrace.from_dict(json.loads(r.trace_path.read_text()))
    clock = tr.clock()
    for s in tr.mic:
        assert clock.render_time(s.end_frame) == pytest.approx(s.t_end_ms, abs=1e-3)
    for s in tr.playout:
        assert clock.output_time(s.onset_frame) == pytest.approx(s.t_onset_ms, abs=1e-3)
    # What was played was recorded: the webm decodes and holds the tone.
    assert r.webm_bytes > 0
    x, sr = decode_webm(tmp_path / "post_browser_reply.webm")
    assert sr == 48_000 and len(x) > sr
    assert float(np.sqrt(np.mean(x**2))) > 0.015


def test_scripted_mic_plays_segments_at_their_anchors_to_the_sample(built_page, tmp_path):
    from autobrowser.selftest import run_script_selftest

    r = run_script_selftest(tmp_path, delay_ms=1500.0, offset_ms=500.0)
    print(f"script selftest: mic errors={r.mic_errors} anchor={r.anchor_error_samples} "
          f"playout={r.playout_onset_error_samples} late={r.late_frames}")
    # No capture device in between: the mic worklet sees the scheduled samples exactly.
    assert len(r.mic_errors) == 2 and all(e == (0, 0) for e in r.mic_errors)
    # Segment 1 starts offset_ms after the stand-in agent's detected onset, not late.
    assert r.anchor_error_samples == 0 and r.late_frames == (0, 0)
    assert r.playout_onset_error_samples == 0
