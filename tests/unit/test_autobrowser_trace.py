"""autobrowser.trace and autobrowser.chromium: reading the page's trace, launch flags."""

import pytest

from autobrowser.chromium import chromium_args
from autobrowser.trace import BrowserTrace, TraceError

pytestmark = pytest.mark.unit


def page_trace():
    def s(a, b, ta, tb):
        return {"onset_frame": a, "end_frame": b, "t_onset": ta, "t_end": tb, "open": False}

    return {
        "v": 1, "kind": "browser_trace", "status": "done", "failure": None,
        "config": {"speech_ms": 1000.0},
        "audio": {"sample_rate": 48000, "render_to_output_ms": 40.0, "mapping": {"n": 10}},
        "mic": {"first_input_frame": 100, "segments": [s(48000, 96000, 1000.0, 2000.0)]},
        "playout": {"first_input_frame": 100, "segments": [s(120000, 200000, 2540.0, 4206.0)]},
    }


def test_kpi_from_the_page_segments():
    tr = BrowserTrace.from_dict(page_trace())
    k = tr.user_kpi()
    assert (k.raw_ms, k.clamped_ms, k.is_talk_over) == (540.0, 540.0, False)
    assert tr.render_to_output_ms == 40.0 and tr.mic_first_input_frame == 100


def test_missing_field_is_named():
    d = page_trace()
    del d["playout"]["segments"]
    with pytest.raises(TraceError, match="playout.segments"):
        BrowserTrace.from_dict(d)


def test_bad_segment_is_named():
    d = page_trace()
    d["mic"]["segments"][0]["t_end"] = None
    with pytest.raises(TraceError, match=r"mic.segments\[0\]"):
        BrowserTrace.from_dict(d)


def test_not_a_trace():
    with pytest.raises(TraceError, match="kind"):
        BrowserTrace.from_dict({"kind": "other"})


def test_chromium_flags(tmp_path):
    wav = tmp_path / "cap.wav"
    wav.write_bytes(b"RIFF")
    args = chromium_args(wav)
    for f in ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
              "--autoplay-policy=no-user-gesture-required", "--no-sandbox", "--disable-gpu",
              "--disable-dev-shm-usage", "--disable-quic"):
        assert f in args
    assert f"--use-file-for-fake-audio-capture={wav.resolve()}" in args
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        chromium_args(tmp_path / "missing.wav")


def scripted_trace():
    d = page_trace()
    # the page's render clock: context time 0 s <-> epoch 5040 ms at the output, 40 ms after render
    d["audio"]["clock_samples"] = [[0.0, 5040.0], [10.0, 15040.0]]
    d["mic"]["script"] = {"segments": [{"index": 0, "start_frame": 4800}, {"index": 1, "start_frame": 96000}]}
    return d


SPEECH_STARTS = [1200, 2400]  # first speech sample of each prepared WAV, at 48 kHz


def test_scripted_segments_are_placed_at_their_first_speech_sample():
    # segment 1 starts at frame 96000 (2000 ms of context time), its speech 2400 samples (50 ms) later:
    # render time 2050 ms + 5040 ms offset - 40 ms render-to-output = 7050 ms; segment 0: 100 + 25 + 5000
    assert BrowserTrace.from_dict(scripted_trace()).script_speech_onsets_ms(SPEECH_STARTS, 48000) == [5125.0, 7050.0]


def test_a_scripted_segment_the_page_never_started_or_without_speech_has_no_onset():
    d = scripted_trace()
    d["mic"]["script"]["segments"] = d["mic"]["script"]["segments"][:1]  # the barge-in never came
    assert BrowserTrace.from_dict(d).script_speech_onsets_ms(SPEECH_STARTS, 48000) == [5125.0, None]
    assert BrowserTrace.from_dict(scripted_trace()).script_speech_onsets_ms([1200, None], 48000) == [5125.0, None]


def test_a_script_at_another_rate_is_named():
    with pytest.raises(TraceError, match="16000 Hz"):
        BrowserTrace.from_dict(scripted_trace()).script_speech_onsets_ms(SPEECH_STARTS, 16000)
