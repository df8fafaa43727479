import re
import xml.etree.ElementTree as ET

import pytest

from autortc.gates import build_run_summary, load_gates
from autortc.metrics.turn import compute_turn_metrics
from autortc.report import write_report
from autortc.results import CaseResult, ResultFileError, write_json
from autortc.testing.faults import dropout, make_speech, write_turn_folder

pytestmark = pytest.mark.unit

SR = 16000


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "r1"
    s = make_speech(SR, seed=50, sentences=2, words_per_sentence=(2, 3))
    at = s.fault_points_ms(150, 1)[0]
    bad, _ = dropout(s.samples, SR, at, 150)
    cases = []
    for cid, post in (("good_case", s.samples), ("dropout_case", bad)):
        write_turn_folder(run / cid / "t0", pre=s.samples, post=post, sr=SR, case_id=cid, trace_id="t0",
                          expected_silence_ms=s.expected_silence_ms)
        t = compute_turn_metrics(run / cid / "t0", gates=load_gates())
        write_json(run / cid / "t0" / "result.json", t)
        c = CaseResult(case_id=cid, turns=[t], verdict=t.verdict, duration_s=3.0)
        write_json(run / cid / "result.json", c)
        cases.append(c)
    # a case whose result.json is broken must show up, not crash the report
    (run / "broken_case").mkdir()
    (run / "broken_case" / "result.json").write_text("{nope")
    summary = build_run_summary("r1", cases, load_gates(), suite="fast")
    from autortc.results import CaseEntry

    summary.cases.append(CaseEntry(case_id="broken_case", verdict="FAIL", result="broken_case/result.json"))
    write_json(run / "summary.json", summary)
    out = write_report(run)
    return run, out


def test_report_files_and_verdict(run_dir):
    run_dir, out = run_dir
    assert out["verdict"] == "FAIL"
    assert set(out["failed_cases"]) == {"dropout_case", "broken_case"}
    for k in ("report_md", "report_html", "junit"):
        assert out[k].exists() and out[k].stat().st_size > 0


def test_markdown_has_tables_fixes_and_figures(run_dir):
    run_dir, _ = run_dir
    md = (run_dir / "report.md").read_text()
    assert "| audible dropouts (P0 reply) | FAIL |" in md
    row = next(line for line in md.splitlines() if line.startswith("| dropout_case |"))
    assert "| FAIL |" in row and "audible_dropout=1" in row
    assert "## Suggested fixes" in md and "TTS frame pacing" in md and "dropout_case/t0" in md
    assert (run_dir / "report_assets" / "latency_cdf.png").stat().st_size > 1000
    assert (run_dir / "report_assets" / "dropout_case__t0.png").stat().st_size > 1000
    assert not (run_dir / "report_assets" / "good_case__t0.png").exists()
    assert "broken_case" in md and "not readable JSON" in md


def test_html_is_self_contained(run_dir):
    run_dir, _ = run_dir
    html = (run_dir / "report.html").read_text()
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(imgs) == 2 and all(s.startswith("data:image/png;base64,") for s in imgs)  # CDF + one failed turn
    audio = re.findall(r'<audio [^>]*src="([^"]+)"', html)  # players of the turns whose folders hold WAVs
    srcs = re.findall(r'src="([^"]+)"', html)
    assert len(srcs) == len(imgs) + len(audio) and all(s.startswith("data:audio/ogg;base64,") for s in audio)
    assert "<link" not in html and "http://" not in html and "https://" not in html
    assert "Suggested fixes" in html


def test_junit(run_dir):
    run_dir, _ = run_dir
    root = ET.parse(run_dir / "junit.xml").getroot()
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    cases = suites["autortc.fast.cases"]
    assert cases.get("tests") == "3" and cases.get("failures") == "2"
    failed = {tc.get("name"): tc.find("failure") for tc in cases.iter("testcase")}
    assert failed["good_case"] is None
    assert "audible_dropout" in failed["dropout_case"].get("message")
    gates = suites["autortc.fast.gates"]
    names = {tc.get("name") for tc in gates.iter("testcase")}
    assert {"eot_to_first_audio", "audible_dropout", "max_gap", "user_kpi"} <= names


def test_missing_summary_is_a_clear_error(tmp_path):
    with pytest.raises(ResultFileError, match="summary.json"):
        write_report(tmp_path)
