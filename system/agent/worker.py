"""The bundled agent's worker: ``python -m system.agent.worker start``.

LISTENING → THINKING → SPEAKING, barge-in cancels the cascade (LiveKit Agents'
interruption handling, local VAD mode), every turn traced by the AutoRTC protocol.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livekit import rtc
from livekit.agents import Agent, AgentServer, AgentSession, JobContext, JobExecutorType, JobProcess, cli, inference
from livekit.agents.voice.room_io import AudioInputOptions, RoomOptions

from autortc.protocol.livekit_agents import AutoRTCAgentProtocol
from system.agent.compute_priority import limit_blas_threads
from system.agent.config import AgentConfig
from system.agent.fault_output import FaultWiring
from system.agent.scripted_llm import ScriptedLLM, load_rules
from system.agent.start_cushion import StartCushion
from system.agent.stt_whisper import WhisperOptions, WhisperStreamingSTT, WhisperTranscriber, pausing_hold_for
from system.agent.tts_adapter import LocalTTS
from system.agent.turn_text import hold_is_short, hold_reason
from system.agent.vad_voiced import agent_vad

log = logging.getLogger("autortc.agent")

CONFIG = AgentConfig.from_env()
READY_FILE = os.environ.get("AUTORTC_AGENT_READY_FILE")

MAX_JOBS = int(os.environ.get("AUTORTC_AGENT_MAX_JOBS", "4"))
"""Calls one worker carries at once: the SFU sends no job request while ``MAX_JOBS`` are live."""

SFU_TARGET_LOAD = 0.7
"""livekit-server's ``agent.target_load`` (pkg/agent/config.go ``DefaultTargetLoad``): the SFU claims a job for a
worker only while ``target_load - load`` is above 0 (service/agentservice.go ``JobRequestAffinity``), ``load``
being the worker's last status report (LiveKit Agents sends one every 2.5 s)."""


_CLOSING: set[str] = set()
"""Job ids whose agent session has closed; the job stays in the worker's list until its room is torn down."""


def calls_carried(job_ids: Iterable[str], closing: Collection[str]) -> int:
    """How many of the running jobs still carry a call: those whose agent session is not closed."""
    return sum(1 for j in job_ids if j not in closing)


def _job_load(srv: AgentServer) -> float:
    """The worker's load in [0, 1]: ``SFU_TARGET_LOAD`` once ``MAX_JOBS`` calls are live, in proportion below.

    Load by calls, not machine CPU: the rig's own bots and analysis share this machine, and a
    CPU-based load would refuse dispatches whenever the harness is busy. A job whose call has
    ended (its user left; the room is being torn down) carries none. Scaled to the SFU's target
    load: at calls / MAX_JOBS the SFU refused every dispatch past 2.8 calls of 4, and a report
    made while two rooms were closing and a third starting read 3 calls (0.75): "failed to send job
    request: no servers available (received 1 responses)", a NO_AGENT case (run rs15dj2, session 12's
    s12j2a-d; docs/agent-latency.md "Parallel rooms").
    """
    ids = [j.job.id for j in srv.active_jobs]
    # a job stays in the list after its shutdown callbacks ran (the thread executor keeps its running_job
    # until the pool drops it): its mark is kept until then, and dropped here once it is out
    _CLOSING.intersection_update(ids)
    calls = calls_carried(ids, _CLOSING)
    return min(1.0, SFU_TARGET_LOAD * calls / MAX_JOBS)


server = AgentServer(
    job_executor_type=JobExecutorType(os.environ.get("AUTORTC_AGENT_EXECUTOR", "thread")),
    setup_fnc=None,
    load_fnc=_job_load,
    port=int(os.environ.get("AUTORTC_AGENT_HTTP_PORT", "8081")),
    host="127.0.0.1",
    num_idle_processes=int(os.environ.get("AUTORTC_AGENT_IDLE_PROCESSES", "2")),
    load_threshold=float(os.environ.get("AUTORTC_AGENT_LOAD_THRESHOLD", "0.95")),
    initialize_process_timeout=60.0,
    shutdown_process_timeout=5.0,
)


@dataclass
class Models:
    """One job's models: VAD, whisper, piper. Loading takes seconds of CPU, so they are kept."""

    vad: Any
    whisper: Any  # ShortWindowTranscriber (stt=ct2) or WhisperTranscriber (stt=faster-whisper)
    tts: list[Any]  # PiperTTS engines of one voice (CONFIG.tts_engines)
    rules: Any
    hf_llm: Any = None  # TransformersLLM when AUTORTC_AGENT_LLM=transformers

    @classmethod
    def load(cls) -> Models:
        from system.tts.piper_engine import PiperOptions, PiperTTS
        from system.tts.segmenter import SegmenterOptions

        t0 = time.monotonic()
        m = cls(
            vad=agent_vad(CONFIG),
            whisper=_load_stt(),
            tts=[PiperTTS(PiperOptions(
                length_scale=CONFIG.tts_length_scale, intra_op_threads=CONFIG.tts_threads,
                max_lead_ms=CONFIG.tts_max_lead_ms if CONFIG.tts_max_lead_ms > 0 else None,
                segmenter=SegmenterOptions(first_segment_max_chars=CONFIG.tts_first_segment_chars,
                                           segment_growth=CONFIG.tts_segment_growth),
            )) for _ in range(max(1, CONFIG.tts_engines))],
            rules=load_rules(Path(CONFIG.rules_path)),
        )
        if CONFIG.llm == "transformers":
            from system.agent.hf_llm import TransformersLLM

            if not CONFIG.llm_model:
                raise ValueError("AUTORTC_AGENT_LLM=transformers needs AUTORTC_AGENT_LLM_MODEL=<local model folder>")
            m.hf_llm = TransformersLLM.from_pretrained(CONFIG.llm_model)
        elif CONFIG.llm != "scripted":
            raise ValueError(f"AUTORTC_AGENT_LLM={CONFIG.llm!r}: expected scripted or transformers")
        log.info("loaded models in %.2f s", time.monotonic() - t0)
        return m


def _load_stt() -> Any:
    if CONFIG.stt == "ct2":
        from system.agent.stt_ct2 import ShortWindowOptions, ShortWindowTranscriber

        return ShortWindowTranscriber(ShortWindowOptions(intra_threads=CONFIG.whisper_threads))
    if CONFIG.stt == "faster-whisper":
        return WhisperTranscriber(WhisperOptions(cpu_threads=CONFIG.whisper_threads))
    raise ValueError(f"AUTORTC_AGENT_STT={CONFIG.stt!r}: expected ct2 or faster-whisper")


# Jobs run as threads of the worker (EXECUTOR=thread, the default): a finished job's models go
# back to this pool for the next room. With one process per job, every room end started a new
# process that spent 3-10 s of CPU loading models while the next case was being measured -- the
# seed's "20 s recycle wait" between rooms.
_POOL: list[Models] = []
_POOL_LOCK = threading.Lock()


def _acquire() -> Models:
    with _POOL_LOCK:
        if _POOL:
            return _POOL.pop()
    return Models.load()


def _release(models: Models) -> None:
    with _POOL_LOCK:
        _POOL.append(models)


def preload(n: int) -> None:
    """Fill the pool with ``n`` model sets, then freeze the heap they made.

    ``gc.freeze()`` moves every object alive now (models, imports) out of the collector's
    generations, so later full collections do not walk them: a gen-2 collection of this heap
    took 0.1 s with the GIL held (LiveKit Agents' loop monitor: "event loop blocked ... gc_time").
    """
    t0 = time.monotonic()
    loaded = [Models.load() for _ in range(max(0, n - len(_POOL)))]
    for m in loaded:
        _release(m)
    warm_lazy_inits()
    gc.collect()
    gc.freeze()
    # before cli.run_app the log has no handler yet: stderr goes to the agent's log file
    print(f"autortc.agent: preloaded {len(loaded)} model sets in {time.monotonic() - t0:.2f} s "
          f"({gc.get_freeze_count()} objects frozen)", file=sys.stderr, flush=True)


def warm_lazy_inits() -> None:
    """Build now what LiveKit Agents builds on the event loop at the process's first reply.

    The transcript synchronizer hyphenates the reply's words, and the hyphenator compiles its
    pattern table on first use (``functools.cache``): 63 ms on the job's event loop, in the same
    tick as the reply's first frame. The room output forwards one 50 ms frame per loop round
    trip, so the first frame's round trip took 76-81 ms and the source ran dry: the suite's
    first case, ``endpoint_short_hello``, had a run break at 50 ms in each of the six fast-suite
    runs checked (rx10-rx12, b0, v1, v2) and an audible 15 ms hole at 62-77 ms in two of them
    (b0, v2); LiveKit's loop monitor at 40 ms (run dbg4) named ``_basic_hyphenator._insert_pattern``."""
    from livekit.agents import tokenize

    tokenize.basic.hyphenate_word("warm")


def prewarm(proc: JobProcess) -> None:
    """Give the (thread or process) job executor its models before a job is assigned to it."""
    proc.userdata["models"] = _acquire()


server.setup_fnc = prewarm


def _on_registered(*_: Any) -> None:
    if READY_FILE:
        Path(READY_FILE).write_text(str(os.getpid()))
    log.info("worker registered (agent_name=%s)", CONFIG.agent_name)


server.on("worker_registered", _on_registered)


class BundledAgent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are the AutoRTC bundled test agent; replies come from rules.json.")


@server.rtc_session(agent_name=CONFIG.agent_name)
async def entrypoint(ctx: JobContext) -> None:
    proto: AutoRTCAgentProtocol | None = None

    cpu: dict[str, Any] = {"trace": None}  # CPU-seconds of the current turn, reported in its trace

    def stage(name: str, t_mono: float, info: dict[str, Any]) -> None:
        if proto is None:
            return
        if name in ("stt_decode", "tts_done"):
            _account_cpu(name, info)
            return
        proto.mark(name, t_mono, first=not name.startswith("stt_"))

    def _account_cpu(name: str, info: dict[str, Any]) -> None:
        # per turn: STT decode threads, TTS synthesis threads, and the whole worker process from
        # the turn's first decode on (with several rooms in one process it counts them all)
        assert proto is not None
        tid = proto.current_trace_id
        if tid is None:
            return
        if cpu["trace"] != tid:
            cpu.update(trace=tid, stt=0.0, tts=0.0, p0=time.process_time() - info["cpu_s"])
        key = "stt" if name == "stt_decode" else "tts"
        cpu[key] += info["cpu_s"]
        proto.set_metric(f"cpu_s_{key}", cpu[key])
        proto.set_metric("cpu_s_process", time.process_time() - cpu["p0"])

    models: Models = ctx.proc.userdata["models"]

    holder: dict[str, Any] = {}  # the session, and the STT and TTS it was given (closed in give_back)

    async def give_back() -> None:
        # AgentSession does not close the STT and TTS it was given: each holds executor threads
        # (whisper, piper-first, piper-ahead) until the garbage collector finds it
        for name in ("stt", "tts"):
            owned = holder.get(name)
            if owned is not None:
                try:
                    await owned.aclose()
                except Exception:
                    log.exception("room %s: closing the session's %s", ctx.room.name, name)
        left = models.vad.drop_subscribers()
        if left:  # a stream that was never closed: it would queue every event of the next sessions
            log.warning("room %s: %d VAD subscription(s) left by this session's STT; dropped before the "
                        "models go back to the pool", ctx.room.name, left)
        _release(models)

    ctx.add_shutdown_callback(give_back)
    vad = models.vad
    turn_detection: Any = "vad"
    if CONFIG.turn_detector == "v1-mini":
        turn_detection = inference.TurnDetector(version="v1-mini")
    # fault bench (docs/faultbench.md): the planted fault of this room, if its metadata names one
    faults = FaultWiring.from_job(ctx, reply_text_for=lambda case_id: models.rules.reply_for(case_id.replace("_", " "))[1])

    def agent_speaking() -> bool:
        s = holder.get("session")
        return s is not None and s.agent_state == "speaking"

    def interrupt(why: str, *, only_speaking: bool) -> None:
        s = holder.get("session")
        if s is None or (only_speaking and s.agent_state != "speaking"):
            return
        if not faults.plan.allow_interruptions:
            # fault bench no_yield: session.interrupt() stops the speech even with interruption disabled
            # (fb-bots-s14 b075: the stop word "Wait." cut the reply 262 ms after the user's onset)
            log.info("%s: not interrupted (planted fault no_yield)", why)
            return
        try:
            s.interrupt()
        except RuntimeError as exc:  # the current speech does not allow interruptions
            log.info("%s: not interrupted: %s", why, exc)

    def stop_word(text: str) -> None:
        interrupt(f"stop word in {text!r}", only_speaking=True)

    def reopen(text: str) -> None:
        # the user goes on before the reply to `text` was heard: that reply answers half a turn
        interrupt(f"the user went on before the reply to {text!r}", only_speaking=False)

    # the session's STT and TTS, kept for give_back to close (AgentSession does not close them)
    holder["stt"] = WhisperStreamingSTT(transcriber=models.whisper, vad=vad, agent_speaking=agent_speaking,
                                        drop_overlap_shorter_s=CONFIG.interruption_min_duration_s,
                                        model=f"whisper-tiny.en/{CONFIG.stt}", shared_vad=True, on_event=stage,
                                        preflight_silence_s=CONFIG.stt_preflight_silence_s if CONFIG.stt_preflight_silence_s > 0 else None,
                                        preflight_by_level=CONFIG.stt_preflight_by_level,
                                        hold_reason=hold_reason if CONFIG.turn_hold_s > 0 else None,
                                        hold_s=lambda r: CONFIG.turn_short_hold_s if hold_is_short(r) else CONFIG.turn_hold_s,
                                        stop_words=frozenset(CONFIG.stop_words.lower().split()) if CONFIG.stop_check_voiced_s > 0 else frozenset(),
                                        stop_check_voiced_s=CONFIG.stop_check_voiced_s, stop_recheck_s=CONFIG.stop_recheck_s,
                                        on_stop_word=stop_word, reopen_s=CONFIG.turn_reopen_s,
                                        on_reopen=reopen, room=ctx.room.name,
                                        pausing_hold=pausing_hold_for(CONFIG))
    holder["tts"] = LocalTTS(engine=models.tts, on_event=stage, ahead_nice=CONFIG.tts_ahead_nice)
    session = AgentSession(
        vad=vad,
        stt=holder["stt"],
        llm=models.hf_llm if models.hf_llm is not None else ScriptedLLM(rules=models.rules, on_event=stage, chunk=CONFIG.llm_chunk),
        tts=holder["tts"],
        turn_handling=faults.turn_handling({
            "turn_detection": turn_detection,
            "endpointing": {
                "mode": "fixed",
                "min_delay": CONFIG.endpointing_min_delay_s,
                "max_delay": CONFIG.endpointing_max_delay_s,
            },
            "interruption": {
                "enabled": True,
                "mode": "vad",
                "min_duration": CONFIG.interruption_min_duration_s,
                "min_words": CONFIG.interruption_min_words,
                "resume_false_interruption": CONFIG.resume_false_interruption,
                "false_interruption_timeout": CONFIG.false_interruption_timeout_s,
            },
            "preemptive_generation": {"enabled": CONFIG.preemptive_generation,
                                      "preemptive_tts": CONFIG.preemptive_tts},
        }),
        aec_warmup_duration=None,
        user_away_timeout=None,
    )
    holder["session"] = session

    def end_job(ev: Any) -> None:
        _CLOSING.add(ctx.job.id)  # no call any more: not counted as load while the room is torn down
        # The job would otherwise last until the SFU deletes the empty room (~10 s later) and
        # count against MAX_JOBS all that time: with --jobs 2 the worker then answered the next
        # dispatch "not available" and the SFU dropped it (run base1: "failed to send job
        # request: no servers available", a 30 s barrier timeout and a retried case).
        ctx.shutdown(reason=f"agent session closed ({getattr(ev, 'reason', '')})")

    session.on("close", end_job)

    def user_left(p: rtc.RemoteParticipant) -> None:
        # the call ends when the user leaves; the session's close (end_job) can come seconds later.
        # Registered before session.start, so it runs before RoomIO's own handler unlinks the participant
        try:
            linked = session.room_io.linked_participant
        except RuntimeError:  # the session has no room IO yet
            return
        if linked is not None and p.identity == linked.identity:
            _CLOSING.add(ctx.job.id)
            if "unpublish" not in tasks:
                tasks["unpublish"] = asyncio.create_task(unpublish_tracks(), name="agent.unpublish")

    async def unpublish_tracks() -> None:
        # At once when the user leaves, while the room is still open: a local track still published
        # when the room closes stays in the LiveKit SDK for the life of this process, with its native
        # AudioSourceCapture thread ticking every 10 ms (livekit/rust-sdks#1443). The job's own
        # shutdown takes ~2 s, and the SFU closes a room that only agents are left in after its
        # departure_timeout (the runner's 2 s): measured, 13 of 16 rooms left a thread, idle CPU
        # +0.25 % of a core per room served (docs/protocol.md "Leaving a room").
        lp = ctx.room.local_participant
        for sid in list(lp.track_publications):
            try:
                await lp.unpublish_track(sid)
            except Exception as exc:  # the room is already gone: nothing left to unpublish through
                log.info("room %s: unpublish %s after the user left: %s", ctx.room.name, sid, exc)

    async def await_unpublish() -> None:
        if "unpublish" in tasks:
            await tasks["unpublish"]  # owned: its error surfaces in the job's shutdown

    tasks: dict[str, asyncio.Task[None]] = {}
    ctx.add_shutdown_callback(await_unpublish)
    ctx.room.on("participant_disconnected", user_left)
    await session.start(agent=faults.agent(BundledAgent)(), room=ctx.room, room_options=RoomOptions(
        close_on_disconnect=True, audio_input=AudioInputOptions(frame_size_ms=CONFIG.input_frame_ms)))
    faults.install_path(session)  # fault bench: path faults after the pre-RTC copy
    proto = AutoRTCAgentProtocol(room=ctx.room, session=session, trace_fields=faults.trace_fields)
    await proto.start()
    faults.install_agent(session)  # fault bench: agent faults before the pre-RTC copy
    if CONFIG.tts_start_cushion_ms > 0:  # first in the chain: a reply starts with audio in hand
        session.output.audio = StartCushion(session.output.audio, min_ms=CONFIG.tts_start_cushion_ms)
    log.info("session started in room %s", ctx.room.name)


if __name__ == "__main__":
    limit_blas_threads(1)
    preload(CONFIG.preload_models)
    cli.run_app(server)
