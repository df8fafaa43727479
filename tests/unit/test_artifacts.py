"""The turn contract (autortc/artifacts.py): schema committed under docs/, clear errors, one writer."""

import json
from pathlib import Path

import numpy as np
import pytest

from autortc.artifacts import (
    TRACE_VERSION,
    TraceFileError,
    TurnArtifacts,
    UserBlock,
    json_schema,
    load_turn,
    read_trace,
    write_trace,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schema_is_the_models_schema():
    committed = json.loads((ROOT / "docs" / "trace.schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema())), \
        "docs/trace.schema.json is stale: regenerate with `python -m autortc.artifacts > docs/trace.schema.json`"


def _minimal(**kw) -> TurnArtifacts:
    return TurnArtifacts(run_id="r", case_id="c", trace_id="t0", user=UserBlock(source="bot"), **kw)


def test_round_trip_through_the_writer(tmp_path):
    art = _minimal()
    write_trace(tmp_path, art)
    back = read_trace(tmp_path / "trace.json")
    assert back == art and back.v == TRACE_VERSION


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.update(v=1), "'v'"),
    (lambda d: d.update(v=99), "'v'"),
    (lambda d: d["user"].update(source="robot"), "user.source"),
    (lambda d: d["user"].update(segments=[{"index": 0, "expect": "respond", "t_onset": "soon"}]), "user.segments.0.t_onset"),
    (lambda d: d.update(probe={"sr": 48000, "frames": [[1.0]]}), "probe.frames.0"),
    (lambda d: d["case"].update(expected_silence_ms=[[1, 2, 3]]), "case.expected_silence_ms.0"),
    (lambda d: d.update(surprise=1), "surprise"),
    (lambda d: d.pop("trace_id"), "trace_id"),
])
def test_bad_trace_names_file_and_field(tmp_path, mutate, field):
    d = _minimal().model_dump(mode="json")
    mutate(d)
    p = tmp_path / "trace.json"
    p.write_text(json.dumps(d))
    with pytest.raises(TraceFileError) as ei:
        read_trace(p)
    msg = str(ei.value)
    assert str(p) in msg and field in msg, msg


def test_not_json_and_missing(tmp_path):
    p = tmp_path / "trace.json"
    with pytest.raises(TraceFileError, match="file not found"):
        read_trace(p)
    p.write_text("{broken")
    with pytest.raises(TraceFileError, match="not readable JSON"):
        read_trace(p)


def test_load_turn_reports_bad_trace_and_wav(tmp_path):
    import soundfile as sf

    (tmp_path / "trace.json").write_text(json.dumps({"v": TRACE_VERSION}))
    (tmp_path / "pre_rtc.wav").write_bytes(b"RIFF....")
    sf.write(tmp_path / "post_rtc_reply.wav", np.zeros(480, np.float32), 48000)
    t = load_turn(tmp_path)
    assert t.artifacts is None and t.audio.reply is not None and t.audio.pre is None
    assert any("trace.json" in e for e in t.errors) and any("pre_rtc.wav" in e for e in t.errors)


def test_only_the_contract_module_touches_trace_json():
    """trace.json is produced and consumed only through autortc/artifacts.py (tests use it too)."""
    offenders = []
    for p in [*ROOT.glob("autortc/**/*.py"), *ROOT.glob("autobrowser/*.py"), *ROOT.glob("system/**/*.py")]:
        if p.name == "artifacts.py":
            continue
        src = p.read_text()
        if '"trace.json"' in src or "'trace.json'" in src:
            offenders.append(str(p.relative_to(ROOT)))
    assert not offenders, f"trace.json named outside autortc/artifacts.py: {offenders}"
