"""autobrowser.detect: the numpy detector equals the worklet's per-sample state machine."""

import numpy as np
import pytest

from autobrowser.detect import DetectorConfig, Segment, detect_segments

pytestmark = pytest.mark.unit

SR = 48_000


def worklet_reference(x: np.ndarray, sr: int, cfg: DetectorConfig) -> list[Segment]:
    """A line-by-line port of web/src/detector-worklet.js `process` + `flush`."""
    w, s = cfg.window_samples(sr), cfg.silence_samples(sr)
    thr2 = cfg.threshold_rms**2
    ring = [0.0] * w
    pos = 0
    total = 0.0
    in_seg = False
    onset = end = last_active = last_loud = -1
    out = []
    for n, v in enumerate(x.astype(np.float64)):
        v2 = v * v
        total += v2 - ring[pos]
        ring[pos] = v2
        pos = (pos + 1) % w
        if v2 >= thr2:
            last_loud = n
        if total >= thr2 * w:
            if not in_seg:
                in_seg = True
                onset = n
                for j in range(w):
                    k = n - w + 1 + j
                    if k >= 0 and ring[(pos + j) % w] >= thr2:
                        onset = k
                        break
            last_active = n
            end = last_loud
        elif in_seg and n - last_active >= s:
            in_seg = False
            out.append(Segment(onset, end))
    if in_seg:
        out.append(Segment(onset, end))
    return out


def tone(ms: float, amp: float = 0.3, f: float = 440.0) -> np.ndarray:
    n = np.arange(int(round(ms * SR / 1000)))
    return (amp * np.sin(2 * np.pi * f * n / SR)).astype(np.float32)


def silence(ms: float) -> np.ndarray:
    return np.zeros(int(round(ms * SR / 1000)), np.float32)


def test_tone_burst_edges_are_the_first_and_last_loud_samples():
    x = np.concatenate([silence(300), tone(500), silence(800)])
    segs = detect_segments(x, SR)
    loud = np.flatnonzero(np.abs(x) >= 0.015)
    assert segs == [Segment(int(loud[0]), int(loud[-1]))]
    # and those are within one sample of the burst's true edges
    assert abs(segs[0].onset - 300 * 48) <= 1
    assert abs(segs[0].end - (800 * 48 - 1)) <= 1


def test_gap_up_to_the_silence_window_merges_and_a_longer_one_splits():
    cfg = DetectorConfig(silence_ms=400)
    merged = np.concatenate([tone(200), silence(300), tone(200), silence(600)])
    split = np.concatenate([tone(200), silence(500), tone(200), silence(600)])
    assert len(detect_segments(merged, SR, cfg)) == 1
    assert len(detect_segments(split, SR, cfg)) == 2


def test_quiet_signal_below_threshold_gives_no_segment():
    x = np.concatenate([silence(100), tone(500, amp=0.015), silence(500)])  # RMS 0.0106 < 0.015
    assert detect_segments(x, SR) == []


def test_threshold_is_configurable():
    x = np.concatenate([silence(100), tone(500, amp=0.015), silence(500)])
    assert len(detect_segments(x, SR, DetectorConfig(threshold_rms=0.01))) == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numpy_detector_equals_the_worklet_state_machine(seed):
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(8):  # speech-like: noise bursts with a random envelope, random pauses
        n = int(rng.uniform(0.05, 0.6) * SR)
        env = np.abs(np.sin(np.linspace(0, np.pi * rng.integers(1, 5), n))) * rng.uniform(0.01, 0.3)
        parts.append((rng.standard_normal(n) * env).astype(np.float32))
        parts.append((rng.standard_normal(int(rng.uniform(0.05, 0.7) * SR)) * 0.002).astype(np.float32))
    x = np.concatenate(parts)
    cfg = DetectorConfig()
    got = detect_segments(x, SR, cfg)
    assert got, "the fixture must contain speech"
    assert got == worklet_reference(x, SR, cfg)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="1-D"):
        detect_segments(np.zeros((10, 2)), SR)
    with pytest.raises(ValueError, match="sample rate"):
        detect_segments(np.zeros(10), 0)
