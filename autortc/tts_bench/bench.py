"""``autortc tts-bench``: run a TTS engine over the sentence set outside WebRTC and gate it.

Flow (one way): sentence file → worker process (own process group, see
:mod:`system.procgroup`) synthesizes every sentence ``repeats`` times and
streams per-call timings + WAVs → pure metrics (:mod:`autortc.tts_bench.metrics`) →
gold comparison → gates → :class:`BenchResult` (JSON + markdown section).

The engine runs in a separate process so that a hung or crashed engine (or one that
spawns helpers) can always be killed as a group, and timings are taken next to the
engine, as the agent would see them, with no IPC in the measured path.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import queue
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from autortc.tts_bench import metrics
from autortc.gates import GateSet
from autortc.results import GateVerdict
from autortc.tts_bench.gates import evaluate_gates, load_tts_gates
from autortc.tts_bench.gold import read_gold, read_manifest, write_gold
from autortc.tts_bench.sentences import Sentence, load_sentences
from system.files import atomic_write_text
from system.procgroup import ProcessGroup

__all__ = ["BenchConfig", "BenchError", "BenchEvent", "BenchResult", "GoldChange", "SentenceResult",
           "run_bench", "summarize", "write_result"]

logger = logging.getLogger("autortc.tts_bench")

_REPO_ROOT = Path(__file__).resolve().parents[2]


class BenchError(RuntimeError):
    """The bench could not complete (worker failed, hung or died); the message says which step."""


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """What to run.

    Attributes:
        sentences_path: sentence file (see :mod:`autortc.tts_bench.sentences`).
        out_dir: where ``audio/``, ``job.json`` and ``worker.log`` go.
        gold_dir: gold WAVs; ``None`` = ``<sentences dir>/gold``.
        repeats: synthesis calls per sentence (determinism is judged over them).
        engine: registered engine name or ``module:Class`` (see :func:`system.tts.load_engine`).
        options: engine options (fields of the engine's options dataclass).
        gates: the bench's gates (:func:`autortc.tts_bench.gates.load_tts_gates`).
        repeat_window_s, repeat_threshold: parameters of :func:`metrics.detect_repeats`
            (on joe-medium: unrelated speech <= 0.61, a repeated phrase >= 0.93 at 0.8 s).
        update_gold: overwrite gold with this run's audio (repeat 0) and report the diff.
        only: restrict to these sentence ids or categories (``None`` = all).
        ready_timeout_s: longest wait for the worker to load the engine.
        result_timeout_s: longest wait for any one synthesis result.
    """

    sentences_path: Path
    out_dir: Path
    gold_dir: Path | None = None
    repeats: int = 5
    engine: str = "piper"
    options: dict[str, Any] = field(default_factory=dict)
    gates: GateSet = field(default_factory=load_tts_gates)
    repeat_window_s: float = 0.8
    repeat_threshold: float = 0.85
    update_gold: bool = False
    only: tuple[str, ...] | None = None
    ready_timeout_s: float = 180.0
    result_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ValueError(f"repeats: expected >= 1, got {self.repeats}")

    @property
    def resolved_gold_dir(self) -> Path:
        return self.gold_dir if self.gold_dir is not None else Path(self.sentences_path).parent / "gold"


@dataclass(frozen=True)
class BenchEvent:
    """Progress notification: ``kind`` is ``worker_started`` (data: pid, pgid), ``ready``,
    ``result`` (data: the worker's result line) or ``done``; ``total`` calls expected."""

    kind: str
    done: int
    total: int
    data: dict[str, Any]


@dataclass
class SentenceResult:
    """Figures of one sentence over all repeats (times in ms, durations in s)."""

    id: str
    category: str
    text: str
    allow_repeat: bool
    segments: int
    n_samples: int
    duration_s: float
    wav: str
    ttfa_ms: list[float]
    total_ms: list[float]
    rtf: list[float]
    hash_unique: int
    sha256: str
    gold_status: str
    snr_db: float | None
    duration_diff_ms: float | None
    ms_per_char: float
    repeat: int
    repeat_max_similarity: float
    repeat_spans_s: list[list[float]]
    max_chunk_samples: int
    oversize_chunks: int
    empty_chunks: int
    underruns: int
    max_stall_ms: float
    first_chunk_early: bool | None


@dataclass
class GoldChange:
    """What ``--update-gold`` changed for one sentence (``snr_db``/``duration_change_ms`` vs the old gold)."""

    id: str
    status: str  # "new", "unchanged", "changed", "text_changed"
    snr_db: float | None
    duration_change_ms: float | None


@dataclass
class BenchResult:
    """Everything the bench measured and decided; ``to_dict()`` is the JSON written."""

    run_id: str
    created_at: str
    sentences_path: str
    gold_dir: str
    out_dir: str
    repeats: int
    engine: dict[str, Any]
    sample_rate: int
    load_s: float
    warmup_ms: float
    gate_config: dict[str, Any]
    host: dict[str, Any]
    summary: dict[str, Any]
    gates: list[GateVerdict]
    sentences: list[SentenceResult]
    gold_update: list[GoldChange] | None = None

    @property
    def passed(self) -> bool:
        return all(g.status != "FAIL" for g in self.gates)

    @property
    def failed_gates(self) -> list[str]:
        return [g.gate for g in self.gates if g.status == "FAIL"]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        """Rebuild a result from its JSON (``tts_bench.json``), e.g. for the run report.

        Raises:
            KeyError / TypeError: ``data`` is not a bench result.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in data.items() if k in fields}
        kw["gates"] = [GateVerdict(**g) for g in data["gates"]]
        kw["sentences"] = [SentenceResult(**r) for r in data["sentences"]]
        if data.get("gold_update") is not None:
            kw["gold_update"] = [GoldChange(**c) for c in data["gold_update"]]
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["passed"] = self.passed
        data["failed_gates"] = self.failed_gates
        return _json_clean(data)


def _json_clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _json_clean(value.item())
    return value


def write_result(result: BenchResult, json_path: Path) -> None:
    """Write ``result`` as JSON (atomically) to ``json_path``."""
    atomic_write_text(json_path, json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")


# -- worker I/O ---------------------------------------------------------------------------

def _reader(stream: Any, out: queue.Queue[str | None]) -> None:
    try:
        for line in stream:
            out.put(line)
    except (OSError, ValueError):
        pass  # the pipe was closed by kill()
    finally:
        out.put(None)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _collect(config: BenchConfig, sentences: list[Sentence],
             on_event: Callable[[BenchEvent], None] | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    out_dir = config.out_dir
    audio_dir = out_dir / "audio"
    job_path = out_dir / "job.json"
    log_path = out_dir / "worker.log"
    out_dir.mkdir(parents=True, exist_ok=True)
    job = {"engine": config.engine, "options": config.options, "repeats": config.repeats,
           "audio_dir": str(audio_dir), "sentences": [{"id": s.id, "text": s.text} for s in sentences]}
    job_path.write_text(json.dumps(job, indent=2), encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH")) if p)
    total = len(sentences) * config.repeats
    group = ProcessGroup([sys.executable, "-m", "autortc.tts_bench.worker", str(job_path)],
                         name=f"tts-worker[{config.engine}]", env=env, stderr_path=log_path)
    lines: queue.Queue[str | None] = queue.Queue()
    with group:
        proc = group.proc
        assert proc is not None and proc.stdout is not None
        threading.Thread(target=_reader, args=(proc.stdout, lines), name="tts-worker-stdout",
                         daemon=True).start()
        if on_event:
            on_event(BenchEvent("worker_started", 0, total, {"pid": proc.pid, "pgid": group.pgid}))

        def next_event(what: str, timeout_s: float) -> dict[str, Any]:
            try:
                line = lines.get(timeout=timeout_s)
            except queue.Empty:
                raise BenchError(f"tts worker sent no {what} within {timeout_s:g} s (log: {log_path})") from None
            if line is None:
                code = proc.wait(timeout=10)
                raise BenchError(f"tts worker exited (status {code}) before {what}; log {log_path}:\n"
                                 f"{_log_tail(log_path)}")
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                raise BenchError(f"tts worker wrote a non-JSON line while {what} was due: {line[:200]!r} "
                                 f"(engines must log to stderr)") from None
            if event.get("event") == "error":
                raise BenchError(f"tts worker failed: {event.get('message')}; log {log_path}:\n{_log_tail(log_path)}")
            return event

        ready = next_event("ready (engine loaded)", config.ready_timeout_s)
        if ready.get("event") != "ready":
            raise BenchError(f"tts worker: expected a 'ready' event first, got {ready.get('event')!r}")
        if on_event:
            on_event(BenchEvent("ready", 0, total, ready))
        results: list[dict[str, Any]] = []
        while len(results) < total:
            event = next_event(f"result {len(results) + 1}/{total}", config.result_timeout_s)
            if event.get("event") != "result":
                raise BenchError(f"tts worker: expected 'result', got {event.get('event')!r}")
            results.append(event)
            if on_event:
                on_event(BenchEvent("result", len(results), total, event))
        done = next_event("done", config.result_timeout_s)
        if done.get("event") != "done":
            raise BenchError(f"tts worker: expected 'done', got {done.get('event')!r}")
        proc.wait(timeout=30)
    if on_event:
        on_event(BenchEvent("done", total, total, {}))
    return ready, results


# -- metrics over the collected calls -----------------------------------------------------

def _sentence_result(s: Sentence, calls: list[dict[str, Any]], audio_dir: Path, sr: int, chunk_samples: int,
                     gold_dir: Path, manifest: dict[str, Any], config: BenchConfig) -> tuple[SentenceResult, np.ndarray]:
    import soundfile as sf

    calls = sorted(calls, key=lambda c: c["repeat"])
    first = calls[0]
    pcm, file_sr = sf.read(str(audio_dir / first["wav"]), dtype="int16")
    if file_sr != sr:
        raise BenchError(f"{audio_dir / first['wav']}: sample rate {file_sr} != engine's {sr}")
    duration_s = pcm.shape[0] / sr
    stats = [metrics.stream_stats(c["chunk_samples"], c["chunk_t"], 0.0, c["t_end"], sr, chunk_samples)
             if c["chunk_samples"] else None for c in calls]
    ttfa = [st.ttfa_ms if st else math.nan for st in stats]
    total = [c["t_end"] * 1000.0 for c in calls]
    rtf = [t / 1000.0 / duration_s if duration_s > 0 else math.nan for t in total]
    early: bool | None = None
    for c in calls:
        segs = c["segment_t"]
        if len(segs) >= 2 and c["chunk_t"]:
            ok = c["chunk_t"][0] <= segs[-1][0]
            early = ok if early is None else (early and ok)
    gold = read_gold(gold_dir, s.id, manifest)
    snr = dur = None
    if gold is None:
        status = "missing"
    elif gold.text is not None and gold.text != s.text:
        status = "text_changed"
    elif gold.sr != sr:
        status = f"sample_rate {gold.sr} != {sr}"
    else:
        status = "ok"
        snr = metrics.snr_db(gold.pcm, pcm)
        dur = metrics.duration_diff_ms(gold.pcm.shape[0], pcm.shape[0], sr)
    rep = metrics.detect_repeats(pcm, sr, window_s=config.repeat_window_s, threshold=config.repeat_threshold)
    present = [st for st in stats if st]
    result = SentenceResult(
        id=s.id, category=s.category, text=s.text, allow_repeat=s.allow_repeat,
        segments=int(first["segments"]), n_samples=int(pcm.shape[0]), duration_s=duration_s,
        wav=str(audio_dir / first["wav"]), ttfa_ms=ttfa, total_ms=total, rtf=rtf,
        hash_unique=len({c["sha256"] for c in calls}), sha256=first["sha256"], gold_status=status,
        snr_db=snr, duration_diff_ms=dur, ms_per_char=metrics.ms_per_char(pcm.shape[0], sr, s.text),
        repeat=rep.repeats, repeat_max_similarity=rep.max_similarity,
        repeat_spans_s=[list(span) for span in rep.spans_s],
        max_chunk_samples=max((st.max_chunk_samples for st in present), default=0),
        oversize_chunks=sum(st.oversize_chunks for st in present),
        empty_chunks=sum(st.empty_chunks for st in present) + sum(1 for st in stats if st is None),
        underruns=sum(st.underruns for st in present),
        max_stall_ms=max((st.max_stall_ms for st in present), default=0.0),
        first_chunk_early=early,
    )
    return result, pcm


def _engine_diff(gold: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """Human-readable differences between the engine that made the gold and this one."""
    diffs: list[str] = []
    for key in sorted(set(gold) | set(now)):
        a, b = gold.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _engine_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: gold {a!r}, now {b!r}")
    return diffs


def summarize(sentences: list[SentenceResult], chunk_samples: int, gates: GateSet) -> dict[str, Any]:
    """Aggregate figures over sentences (the input of :func:`evaluate_gates`); ``gates`` gives
    the ms-per-character bounds that name the sentences outside them."""
    lo, hi = gates.get("ms_per_char_min").threshold, gates.get("ms_per_char_max").threshold
    ttfa = [t for s in sentences for t in s.ttfa_ms]
    rtf = [r for s in sentences for r in s.rtf]
    with_gold = [s for s in sentences if s.snr_db is not None]
    worst = min(with_gold, key=lambda s: s.snr_db or 0.0, default=None)
    mpc = [s.ms_per_char for s in sentences]
    judged = [s for s in sentences if not s.allow_repeat]
    multi = [s for s in sentences if s.first_chunk_early is not None]
    return {
        "calls": len(ttfa),
        "audio_s_total": sum(s.duration_s for s in sentences),
        "ttfa_p50_ms": metrics.percentile(ttfa, 50),
        "ttfa_p95_ms": metrics.percentile(ttfa, 95),
        "ttfa_max_ms": max(ttfa) if ttfa else math.nan,
        "rtf_p50": metrics.percentile(rtf, 50),
        "rtf_p95": metrics.percentile(rtf, 95),
        "rtf_mean": float(np.nanmean(rtf)) if rtf else math.nan,
        "hash_unique_max": max(s.hash_unique for s in sentences),
        "nondeterministic": [s.id for s in sentences if s.hash_unique > 1],
        "snr_min_db": worst.snr_db if worst else math.nan,
        "snr_worst": f"{worst.id} ({worst.snr_db:.1f} dB)" if worst else "",
        "duration_diff_p95_ms": metrics.percentile([s.duration_diff_ms for s in with_gold], 95),
        "duration_diff_max_ms": max((s.duration_diff_ms or 0.0 for s in with_gold), default=math.nan),
        "gold_missing": [f"{s.id} ({s.gold_status})" for s in sentences if s.gold_status != "ok"],
        "ms_per_char_min": min(mpc),
        "ms_per_char_max": max(mpc),
        "ms_per_char_out": [f"{s.id} ({s.ms_per_char:.0f})" for s in sentences
                            if (lo is not None and s.ms_per_char < lo) or (hi is not None and s.ms_per_char > hi)],
        "repeat_worst": max((s.repeat for s in judged), default=0),
        "repeating": [f"{s.id} ({s.repeat}, sim {s.repeat_max_similarity:.2f})" for s in judged if s.repeat],
        "repeat_max_similarity": max((s.repeat_max_similarity for s in judged), default=0.0),
        "chunk_samples": chunk_samples,
        "max_chunk_samples": max(s.max_chunk_samples for s in sentences),
        "oversize_chunks": sum(s.oversize_chunks for s in sentences),
        "empty_chunks": sum(s.empty_chunks for s in sentences),
        "multi_segment_sentences": len(multi),
        "first_chunk_late_calls": sum(1 for s in multi if s.first_chunk_early is False),
        "underruns": sum(s.underruns for s in sentences),
        "max_stall_ms": max(s.max_stall_ms for s in sentences),
    }


def run_bench(config: BenchConfig, on_event: Callable[[BenchEvent], None] | None = None) -> BenchResult:
    """Run the bench and return its result (nothing is written besides ``out_dir`` and, with
    ``update_gold``, the gold directory).

    Raises:
        SentenceSetError: the sentence file is invalid.
        GoldError: a gold WAV is unreadable.
        BenchError: the worker failed, hung or died; it is killed as a group in every case.
    """
    sset = load_sentences(config.sentences_path)
    sentences = list(sset.sentences)
    if config.only:
        wanted = set(config.only)
        sentences = [s for s in sentences if s.id in wanted or s.category in wanted]
        if not sentences:
            raise BenchError(f"--only {sorted(wanted)} matches no sentence id or category in {config.sentences_path}")
    run_id = datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")
    # timing gates depend on what else the host runs: keep the load next to the figures
    host: dict[str, Any] = {"cpus": os.cpu_count(), "loadavg_start": list(os.getloadavg())}
    ready, calls = _collect(config, sentences, on_event)
    sr = int(ready["sample_rate"])
    chunk_samples = int(ready["chunk_samples"])
    gold_dir = config.resolved_gold_dir
    manifest = read_manifest(gold_dir)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for c in calls:
        by_id.setdefault(c["id"], []).append(c)
    results: list[SentenceResult] = []
    pcms: dict[str, np.ndarray] = {}
    for s in sentences:
        res, pcm = _sentence_result(s, by_id[s.id], config.out_dir / "audio", sr, chunk_samples,
                                    gold_dir, manifest, config)
        results.append(res)
        pcms[s.id] = pcm
    gold_update: list[GoldChange] | None = None
    if config.update_gold:
        gold_update = []
        for res in results:
            if res.gold_status == "missing":
                gold_update.append(GoldChange(res.id, "new", None, None))
            elif res.gold_status == "text_changed":
                gold_update.append(GoldChange(res.id, "text_changed", None, None))
            else:
                old = read_gold(gold_dir, res.id, manifest)
                assert old is not None
                snr = metrics.snr_db(old.pcm, pcms[res.id])
                change = (pcms[res.id].shape[0] - old.pcm.shape[0]) * 1000.0 / sr
                unchanged = snr >= metrics.SNR_CAP_DB and change == 0
                gold_update.append(GoldChange(res.id, "unchanged" if unchanged else "changed", snr, change))
        write_gold(gold_dir, {s.id: (s.text, pcms[s.id]) for s in sentences}, sr, ready["engine"])
    host["loadavg_end"] = list(os.getloadavg())
    summary = summarize(results, chunk_samples, config.gates)
    summary["gold_engine_diff"] = _engine_diff(manifest.get("engine", {}), ready["engine"]) if manifest else []
    gate_results = evaluate_gates(summary, config.gates,
                                  fidelity_skipped="gold regenerated by this run" if config.update_gold else None)
    return BenchResult(
        run_id=run_id, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        sentences_path=str(config.sentences_path), gold_dir=str(gold_dir), out_dir=str(config.out_dir),
        repeats=config.repeats, engine=ready["engine"], sample_rate=sr, load_s=float(ready["load_s"]),
        warmup_ms=float(ready["warmup_ms"]), gate_config={"gates": [dataclasses.asdict(g.info()) for g in config.gates],
                                                                   "sources": list(config.gates.sources),
                                                                   "repeat_window_s": config.repeat_window_s,
                                                                   "repeat_threshold": config.repeat_threshold}, host=host, summary=summary,
        gates=gate_results, sentences=results, gold_update=gold_update,
    )
