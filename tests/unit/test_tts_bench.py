"""The TTS bench end to end (worker process group, gold, gates, CLI) on the bundled piper voice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from autortc.tts_bench.bench import BenchConfig, BenchError, BenchEvent, run_bench, write_result
from autortc.tts_bench.gates import load_tts_gates
from system.procgroup import ProcessGroup, group_members, wait_pid_exit
from autortc.tts_bench.report import render_markdown
from autortc.tts_bench.sentences import SentenceSetError, load_sentences

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SENTENCES = REPO / "cases" / "tts" / "sentences.json"
SUBSET = ("short_01", "punct_03")
# timing depends on the host's load; these tests judge the non-timing gates only
NO_TIMING = load_tts_gates(None, {"ttfa_p95": {"enabled": False}, "underruns": {"enabled": False}}, source="tests")


def _gate(result, name: str):
    return next(g for g in result.gates if g.gate == name)


def test_committed_sentence_set_is_valid_and_covers_the_categories() -> None:
    sset = load_sentences(SENTENCES)
    assert {"short", "long", "numbers", "punctuation"} <= {s.category for s in sset.sentences}
    for s in sset.sentences:
        assert (SENTENCES.parent / "gold" / f"{s.id}.wav").is_file(), s.id


def test_fidelity_gate_passes_on_gold_settings_and_fails_when_length_scale_changes(tmp_path: Path) -> None:
    same = run_bench(BenchConfig(sentences_path=SENTENCES, out_dir=tmp_path / "same", repeats=2,
                                 only=SUBSET, gates=NO_TIMING))
    assert _gate(same, "fidelity_snr").status == "PASS"
    assert _gate(same, "duration_diff_p95").status == "PASS"
    assert _gate(same, "determinism").status == "PASS" and same.summary["hash_unique_max"] == 1
    assert same.summary["snr_min_db"] >= 15.0
    assert same.passed, same.failed_gates

    slower = run_bench(BenchConfig(sentences_path=SENTENCES, out_dir=tmp_path / "slow", repeats=1,
                                   only=SUBSET, gates=NO_TIMING, options={"length_scale": 1.3}))
    assert _gate(slower, "fidelity_snr").status == "FAIL"
    assert _gate(slower, "duration_diff_p95").status == "FAIL"
    assert slower.summary["snr_min_db"] < 15.0
    assert slower.summary["duration_diff_p95_ms"] > 50.0
    assert not slower.passed

    md = render_markdown(slower)
    assert "fidelity_snr" in md and "**FAIL**" in md
    write_result(slower, tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["passed"] is False and "fidelity_snr" in data["failed_gates"]
    assert data["engine"]["options"]["length_scale"] == 1.3
    assert render_markdown(data) == md  # the report can render from the JSON alone


def test_streaming_gates_are_measured(tmp_path: Path) -> None:
    result = run_bench(BenchConfig(sentences_path=SENTENCES, out_dir=tmp_path, repeats=1,
                                   only=("punct_01",), gates=NO_TIMING))
    s = result.summary
    assert s["chunk_samples"] == 441 and s["max_chunk_samples"] <= 441 and s["oversize_chunks"] == 0
    assert s["multi_segment_sentences"] == 1 and s["first_chunk_late_calls"] == 0
    assert result.sentences[0].segments >= 2
    assert {_gate(result, n).status for n in ("chunk_size", "empty_chunks", "first_chunk_early", "repetition",
                                                "ms_per_char_min", "ms_per_char_max")} == {"PASS"}


def _cli() -> typer.Typer:
    from autortc.commands import tts_bench

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    tts_bench.register(app)
    return app


def test_cli_update_gold_writes_gold_and_prints_the_diff(tmp_path: Path) -> None:
    sentences = tmp_path / "sentences.json"
    sentences.write_text(json.dumps({"version": 1, "sentences": [
        {"id": "a", "category": "short", "text": "Got it, thanks."},
        {"id": "b", "category": "long", "text": "Sure. I will send the code to your phone now; it expires in ten minutes."},
    ]}))
    gold = tmp_path / "gold"
    runner = CliRunner()
    app = _cli()
    relax = ["-g", "ttfa_p95=1e9", "-g", "underruns=1000000000"]
    args = ["tts-bench", "--sentences", str(sentences), "--repeats", "1", *relax]

    missing = runner.invoke(app, [*args, "--out-dir", str(tmp_path / "r0")])
    assert missing.exit_code == 1, missing.output
    assert "--update-gold" in missing.output

    made = runner.invoke(app, [*args, "--out-dir", str(tmp_path / "r1"), "--update-gold"])
    assert made.exit_code == 0, made.output
    assert sorted(p.name for p in gold.iterdir()) == ["a.wav", "b.wav", "manifest.json"]
    assert "new" in made.output

    again = runner.invoke(app, [*args, "--out-dir", str(tmp_path / "r2"), "--json", str(tmp_path / "out.json")])
    assert again.exit_code == 0, again.output
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["summary"]["snr_min_db"] == 120.0 and data["passed"] is True
    assert (tmp_path / "r2" / "tts_bench.md").read_text().startswith("## TTS regression")

    changed = runner.invoke(app, [*args, "--out-dir", str(tmp_path / "r3"), "--update-gold", "--length-scale", "1.3",
                                  "--json", str(tmp_path / "changed.json")])
    assert changed.exit_code == 0, changed.output
    update = {c["id"]: c for c in json.loads((tmp_path / "changed.json").read_text())["gold_update"]}
    assert update["a"]["status"] == update["b"]["status"] == "changed"
    assert update["b"]["duration_change_ms"] > 200 and update["b"]["snr_db"] < 15
    assert "changed" in changed.output


def test_cli_bad_input_exits_2(tmp_path: Path) -> None:
    runner = CliRunner()
    app = _cli()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "sentences": [{"id": "x", "category": "c", "text": "  "}]}))
    r = runner.invoke(app, ["tts-bench", "--sentences", str(bad), "--out-dir", str(tmp_path / "o")])
    assert r.exit_code == 2 and "sentences.0.text" in r.output
    r = runner.invoke(app, ["tts-bench", "--sentences", str(SENTENCES), "-o", "length_scale=-1"])
    assert r.exit_code == 2 and "length_scale" in r.output
    r = runner.invoke(app, ["tts-bench", "--sentences", str(SENTENCES), "-g", "no_such_gate=1"])
    assert r.exit_code == 2 and "no_such_gate" in r.output


def test_sentence_file_errors_name_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(SentenceSetError, match="not found"):
        load_sentences(tmp_path / "none.json")
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps({"version": 1, "sentences": [{"id": "a", "category": "c", "text": "x"},
                                                           {"id": "a", "category": "c", "text": "y"}]}))
    with pytest.raises(SentenceSetError, match=r"dup\.json.*duplicate sentence id 'a'"):
        load_sentences(dup)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 2, "sentences": []}))
    with pytest.raises(SentenceSetError, match="version"):
        load_sentences(bad)


# -- process hygiene (seed SOP): nothing the bench starts survives it -----------------------

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_process_group_kill_takes_grandchildren_with_it() -> None:
    group = ProcessGroup(["bash", "-c", "sleep 300 & echo $!; wait"], name="test-group")
    with group:
        assert group.proc is not None and group.proc.stdout is not None
        grandchild = int(group.proc.stdout.readline())
        pgid = group.pgid
        assert pgid != os.getpgrp()
        assert set(group_members(pgid)) >= {group.proc.pid, grandchild}
    assert group_members(pgid) == []
    assert not _alive(grandchild)


def test_process_group_kill_reaches_orphans_after_the_leader_exited() -> None:
    group = ProcessGroup(["bash", "-c", "sleep 300 & echo $!"], name="test-orphan")
    group.start()
    try:
        assert group.proc is not None and group.proc.stdout is not None
        orphan = int(group.proc.stdout.readline())
        group.proc.wait(timeout=10)  # the leader is gone, its child lives on in the group
        assert _alive(orphan)
    finally:
        group.kill()
    assert not _alive(orphan)
    assert group_members(group.pgid) == []


@pytest.mark.parametrize("exc", [RuntimeError("consumer failed"), KeyboardInterrupt()])
def test_bench_kills_the_worker_group_on_failure_and_ctrl_c(tmp_path: Path, exc: BaseException) -> None:
    seen: dict[str, int] = {}

    def on_event(ev: BenchEvent) -> None:
        if ev.kind == "worker_started":
            seen["pgid"] = ev.data["pgid"]
        if ev.kind == "result":
            assert group_members(seen["pgid"]), "worker should be running mid-bench"
            raise exc

    with pytest.raises(type(exc)):
        run_bench(BenchConfig(sentences_path=SENTENCES, out_dir=tmp_path, repeats=3, only=SUBSET), on_event)
    assert seen["pgid"] > 0
    assert group_members(seen["pgid"]) == []


def test_worker_failure_is_reported_and_leaves_nothing(tmp_path: Path) -> None:
    seen: dict[str, int] = {}

    def on_event(ev: BenchEvent) -> None:
        if ev.kind == "worker_started":
            seen["pgid"] = ev.data["pgid"]

    with pytest.raises(BenchError, match="voice"):
        run_bench(BenchConfig(sentences_path=SENTENCES, out_dir=tmp_path, repeats=1, only=SUBSET,
                              options={"voice": str(tmp_path / "missing.onnx")}), on_event)
    assert group_members(seen["pgid"]) == []


def test_worker_exits_when_its_parent_dies(tmp_path: Path) -> None:
    """SIGKILL of the bench process (no cleanup possible) still leaves no worker behind."""
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"engine": "piper", "repeats": 50, "audio_dir": str(tmp_path / "a"),
                               "sentences": [{"id": "x", "text": "Hello there, this keeps the worker busy."}]}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    code = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-m', 'autortc.tts_bench.worker', "
            f"{str(job)!r}], stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True); "
            "print(p.pid, flush=True); p.stdout.readline(); print('ready', flush=True); sys.stdin.read()")
    parent = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env=env, text=True)
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    try:
        assert parent.stdout.readline().strip() == "ready"  # engine loaded, synthesizing
        assert _alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert wait_pid_exit(worker, 30.0), "worker outlived its parent"
        assert not _alive(worker)
    finally:
        parent.kill()
        parent.wait(timeout=10)
        if _alive(worker):
            os.killpg(worker, signal.SIGKILL)

