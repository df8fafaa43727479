"""The page's mic zero runs: the case WAV's own digital silence vs the browser's capture slips.

Planted truth from a model of Chromium's path written here, not by the code under test:

- the fake capture (``FakeAudioWorker``) reads the file in 10 ms chunks, chunk ``j`` due at the
  end of its interval; when a callback runs late by more than an interval it skips to the next
  on-time tick (the file is read on, nothing lost): what WebRTC gets is every chunk, in order;
- the page's mic tap (``WebAudioMediaStreamAudioSink``) pushes those chunks into a FIFO and, when
  the render side needs the next 10 ms and the FIFO holds less, zero-fills one whole chunk;
- the mic worklet reports runs of >= 32 exact zeros between non-zero samples.

The model records where it zero-filled; the classifier must find exactly those, and none of the
file's own zeros (fb-browser-1903: 396 of 400 runs were the case WAVs' digital silence, 4 were
inserted 10 ms chunks).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from autobrowser.detect import DetectorConfig, detect_segments
from autobrowser.harness import _annotated_eot_frame, mic_underruns
from autobrowser.kpi import TimedSegment
from autobrowser.trace import BrowserTrace
from autobrowser.underruns import classify_zero_runs
from autobrowser.wavprep import PreparedWav

pytestmark = pytest.mark.unit

SR = 48_000
CHUNK = 480
MIN_ZERO_RUN = 32  # the worklet's minZeroRun


def _case_file(seed: int = 3) -> np.ndarray:
    """int16 capture file: 1 s lead of zeros, 3 s of 'speech' (noise bursts over a faint floor)
    with the slow speaker's kind of pause: 24 ms of exact zeros at 1.8 s and three short ones."""
    rng = np.random.default_rng(seed)
    lead, n = SR, 3 * SR
    x = np.zeros(lead + n + SR // 2)
    sp = rng.normal(0, 0.1, n) * (0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * np.arange(n) / SR) ** 2)
    sp += 0.002 * np.sin(2 * np.pi * 97.0 * np.arange(n) / SR)  # never exactly 0 by itself
    x[lead:lead + n] = sp
    for at_ms, ms in ((1800, 24.3), (900, 1.5), (2100, 3.0), (2500, 5.0)):
        a = lead + int(at_ms * SR / 1000)
        x[a:a + int(ms * SR / 1000)] = 0.0
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def _zero_runs(y: np.ndarray) -> list[list[int]]:
    """The worklet's rule: runs of exact zeros of >= MIN_ZERO_RUN, after a non-zero, ended by one."""
    out, start, seen = [], -1, False
    for i, v in enumerate(y):
        if v == 0:
            if start < 0 and seen:
                start = i
        else:
            if start >= 0 and i - start >= MIN_ZERO_RUN:
                out.append([start, i - start])
            start, seen = -1, True
    return out


def _chromium_tap(pcm: np.ndarray, *, late_chunk: int | None, late_frames: int, render_phase: int = 40):
    """(tap signal, page frame of file sample 0, [(page frame of each zero-fill, file sample reached)],
    sent chunks in order) for the model in the module doc; times in frames of the 48 kHz clock."""
    x = pcm.astype(np.float32) / 32768.0
    n_chunks = len(x) // CHUNK
    # capture deliveries: (time, chunk index)
    deliveries, t_next = [], CHUNK
    for j in range(n_chunks):
        now = t_next + (late_frames if j == late_chunk else 0)
        deliveries.append((now, j))
        t_next += CHUNK
        if t_next <= now:  # FakeAudioWorker: behind -> next on-time tick after now
            t_next = (now // CHUNK + 1) * CHUNK
    sent = [j for _, j in deliveries]
    # render side: needs chunk m of its own stream at time render_phase + (m+1)*CHUNK
    fifo: list[int] = []
    di, tap, fills = 0, [], []
    t = render_phase + CHUNK
    while di < len(deliveries) or fifo:
        while di < len(deliveries) and deliveries[di][0] <= t:
            fifo.append(deliveries[di][1])
            di += 1
        if fifo:
            tap.append(x[fifo.pop(0) * CHUNK:][:CHUNK])
        else:
            reached = deliveries[di][1] * CHUNK if di < len(deliveries) else len(x)
            fills.append((len(tap) * CHUNK, reached))
            tap.append(np.zeros(CHUNK, np.float32))
        t += CHUNK
        if di >= len(deliveries) and not fifo:
            break
    return np.concatenate(tap), fills, sent


def _classify(tap: np.ndarray, pcm: np.ndarray):
    cfg = DetectorConfig()
    page_on = detect_segments(tap.astype(np.float64), SR, cfg)[0].onset
    file_on = detect_segments(pcm.astype(np.float64) / 32768.0, SR, cfg)[0].onset
    return classify_zero_runs(_zero_runs(tap), onset_frame=page_on, file_pcm=pcm, file_onset_sample=file_on, sr=SR)


def test_without_slips_every_zero_run_is_the_files_own():
    pcm = _case_file()
    tap, fills, sent = _chromium_tap(pcm, late_chunk=None, late_frames=0)
    assert fills == [] and sent == list(range(len(pcm) // CHUNK))
    runs = _zero_runs(tap)
    # the file's runs the worklet can see: 24.3, 3.0 and 5.0 ms (1.5 ms = 72 samples also counts)
    assert len(runs) == 4
    r = _classify(tap, pcm)
    assert r.underruns == () and r.source_runs == 4 and r.inserted_frames == 0


@pytest.mark.parametrize("late_frames", [200, 500, 720])  # < 10 ms: jitter; >= 10 ms: Chromium skips a tick
def test_a_late_capture_chunk_is_found_where_the_tap_zero_filled_it(late_frames):
    pcm = _case_file()
    late_chunk = (SR + int(1.2 * SR)) // CHUNK  # inside the speech, 1.2 s into it
    tap, fills, sent = _chromium_tap(pcm, late_chunk=late_chunk, late_frames=late_frames)
    # what WebRTC was given: every chunk, in order, none zeroed (the stimulus is the file, maybe later)
    assert sent == list(range(len(pcm) // CHUNK))
    assert len(fills) == (2 if late_frames > CHUNK + 40 else 1)  # the model's render slack is 40 frames
    r = _classify(tap, pcm)
    assert r.source_runs == 4
    assert r.inserted_frames == len(fills) * CHUNK  # adjacent fills are one run of two chunks
    u = r.underruns[0]
    fill_frame, reached = fills[0]
    assert fill_frame <= u.frame < fill_frame + CHUNK  # the first exact zero of the filled chunk
    assert abs(u.file_sample - reached) <= CHUNK  # where the file was when the tap ran dry
    assert r.within(SR, SR + 3 * SR) == r.underruns  # inside the speech


def test_a_slip_next_to_the_files_own_zeros_is_still_one_chunk():
    pcm = _case_file()
    gap = SR + int(1.8 * SR)  # the 24.3 ms of exact zeros
    late_chunk = gap // CHUNK + 1  # the tap runs dry while the file's zeros play
    tap, fills, _ = _chromium_tap(pcm, late_chunk=late_chunk, late_frames=500)
    assert len(fills) == 1
    r = _classify(tap, pcm)
    assert [u.chunks for u in r.underruns] == [1] and r.source_runs == 3


def _prepared(pcm: np.ndarray, eot_sample: int) -> PreparedWav:
    segs = detect_segments(pcm.astype(np.float64) / 32768.0, SR, DetectorConfig())
    return PreparedWav(path=Path("unused.wav"), sr=SR, n_samples=len(pcm), lead_samples=SR, pad_samples=SR // 2,
                       segments=tuple(segs), detector=DetectorConfig(), eot_sample=eot_sample)


def _trace(tap: np.ndarray) -> BrowserTrace:
    s = detect_segments(tap.astype(np.float64), SR, DetectorConfig())
    mic = [TimedSegment(x.onset, x.end, x.onset / 48.0, x.end / 48.0) for x in s]
    return BrowserTrace(raw={"mic": {"zero_runs": _zero_runs(tap)}}, status="done", failure=None, sample_rate=SR,
                        mic=mic, playout=[], mic_first_input_frame=0, render_to_output_ms=0.0, mapping=None,
                        speech_ms=None)


def test_the_annotated_eot_lands_where_the_page_played_it_after_a_slip():
    pcm = _case_file()
    eot = SR + 3 * SR - 1  # the last 'speech' sample, the case's annotation
    late_chunk = (SR + SR) // CHUNK  # 1 s into the speech, before the EoT
    tap, fills, _ = _chromium_tap(pcm, late_chunk=late_chunk, late_frames=500)
    assert len(fills) == 1
    cap = _prepared(pcm, eot)
    tr = _trace(tap)
    zr = _classify(tap, pcm)
    # truth: the page frame where file sample `eot` was played, from the model (find it in the tap)
    k = eot // CHUNK
    chunk_at = next(i for i in range(0, len(tap), CHUNK) if np.array_equal(tap[i:i + CHUNK], pcm[k * CHUNK:(k + 1) * CHUNK] / 32768.0))
    truth = chunk_at + eot - k * CHUNK
    assert _annotated_eot_frame(tr, cap, None, zr) == truth
    assert _annotated_eot_frame(tr, cap, None, None) == truth - CHUNK  # without: 10 ms early
    under = mic_underruns(zr, cap)
    assert len(under) == 1 and under[0]["ms"] == 10.0 and under[0]["in_speech"]
    assert under[0]["at_ms"] == pytest.approx(1000.0, abs=10.0 + 1.0)  # 1 s into the case WAV (after its lead)


def test_a_run_off_the_file_is_an_underrun_and_never_raises():
    pcm = _case_file()
    # 412 zeros where the file has speech (one chunk, its edges smeared), 960 beyond the file's end
    r = classify_zero_runs([[SR + 1000, 412], [SR * 100, 960]], onset_frame=0, file_pcm=pcm, file_onset_sample=0, sr=SR)
    assert [u.chunks for u in r.underruns] == [1, 2] and r.source_runs == 0
    assert math.isclose(r.inserted_frames, 3 * CHUNK)


def test_the_turn_says_the_pages_mic_ran_dry_inside_the_speech(tmp_path: Path):
    from autortc.artifacts import TRACE_FILE, BrowserBlock, BrowserMicUnderrun, read_trace, write_trace
    from autortc.gates import load_gates
    from autortc.metrics.turn import compute_turn_metrics
    from autortc.testing.faults import write_turn_folder

    t = np.arange(int(0.5 * SR)) / SR
    td = tmp_path / "turn"
    write_turn_folder(td, pre=(0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr=SR)
    art = read_trace(td / TRACE_FILE)
    art.browser = BrowserBlock(mic_underruns=[BrowserMicUnderrun(at_ms=3410.7, ms=10.0, in_speech=True),
                                              BrowserMicUnderrun(at_ms=5200.0, ms=10.0, in_speech=False)])
    write_trace(td, art)
    res = compute_turn_metrics(td, gates=load_gates())
    assert res.continuity.user_mic_underruns == 1 and res.continuity.user_mic_underrun_ms == 10.0
    note = [e for e in res.errors if e.startswith("user side:")]
    assert len(note) == 1 and "at 3411 ms" in note[0] and "10 ms zero-filled" in note[0]
    # a turn measured without underruns says 0; an old trace (or a scripted mic) says nothing
    art.browser = BrowserBlock(mic_underruns=[])
    write_trace(td, art)
    assert compute_turn_metrics(td, gates=load_gates()).continuity.user_mic_underruns == 0
    art.browser = BrowserBlock()
    write_trace(td, art)
    assert compute_turn_metrics(td, gates=load_gates()).continuity.user_mic_underruns is None


@pytest.mark.parametrize("late_chunk", [None, (SR + SR) // CHUNK])
def test_the_selftest_counts_inserted_chunks_not_the_files_own_zeros(late_chunk, tmp_path: Path):
    import dataclasses

    import soundfile as sf

    from autobrowser.harness import _mic_zero_runs
    from autobrowser.selftest import evaluate_selftest

    pcm = _case_file()  # 4 runs of the file's own exact zeros inside its speech
    tap, fills, _ = _chromium_tap(pcm, late_chunk=late_chunk, late_frames=500)
    assert len(fills) == (0 if late_chunk is None else 1)
    segs = detect_segments(pcm.astype(np.float64) / 32768.0, SR, DetectorConfig())
    sf.write(str(tmp_path / "capture.wav"), pcm, SR, subtype="PCM_16")
    cap = dataclasses.replace(_prepared(pcm, segs[-1].end), path=tmp_path / "capture.wav")
    tr = _trace(tap)
    r = evaluate_selftest(tr, cap, 0, 0, tmp_path / "t.json", zero_runs=_mic_zero_runs(tr, cap, scripted=False))
    assert r.inserted_zero_samples == len(fills) * CHUNK
    assert r.underrun_blocks == len(fills)
