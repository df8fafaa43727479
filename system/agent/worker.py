"""The bundled agent's worker: ``python -m system.agent.worker start``.

LISTENING → THINKING → SPEAKING, barge-in cancels the cascade (LiveKit Agents'
interruption handling, local VAD mode), every turn traced by the AutoRTC protocol.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, JobProcess, cli, inference
from livekit.agents.voice.room_io import RoomOptions

from autortc.protocol.livekit_agents import AutoRTCAgentProtocol
from system.agent.config import AgentConfig
from system.agent.scripted_llm import ScriptedLLM, load_rules
from system.agent.stt_whisper import WhisperOptions, WhisperStreamingSTT, WhisperTranscriber
from system.agent.tts_adapter import LocalTTS

log = logging.getLogger("autortc.agent")

CONFIG = AgentConfig.from_env()
READY_FILE = os.environ.get("AUTORTC_AGENT_READY_FILE")

MAX_JOBS = int(os.environ.get("AUTORTC_AGENT_MAX_JOBS", "4"))


def _job_load(srv: AgentServer) -> float:
    # Load by jobs, not machine CPU: the rig's own bots and analysis share this machine,
    # and a CPU-based load would refuse dispatches whenever the harness is busy.
    return min(1.0, len(srv.active_jobs) / MAX_JOBS)


server = AgentServer(
    setup_fnc=None,
    load_fnc=_job_load,
    port=int(os.environ.get("AUTORTC_AGENT_HTTP_PORT", "8081")),
    host="127.0.0.1",
    num_idle_processes=int(os.environ.get("AUTORTC_AGENT_IDLE_PROCESSES", "2")),
    load_threshold=float(os.environ.get("AUTORTC_AGENT_LOAD_THRESHOLD", "0.95")),
    initialize_process_timeout=60.0,
    shutdown_process_timeout=5.0,
)


def prewarm(proc: JobProcess) -> None:
    """Load every model once per job process, before a job is assigned to it."""
    from system.tts.piper_engine import PiperTTS, PiperOptions

    t0 = time.monotonic()
    proc.userdata["vad"] = inference.VAD(
        min_silence_duration=CONFIG.vad_min_silence_s,
        min_speech_duration=CONFIG.vad_min_speech_s,
        activation_threshold=CONFIG.vad_activation_threshold,
    )
    proc.userdata["whisper"] = WhisperTranscriber(WhisperOptions(cpu_threads=CONFIG.whisper_threads))
    proc.userdata["tts"] = PiperTTS(PiperOptions(length_scale=CONFIG.tts_length_scale))
    proc.userdata["rules"] = load_rules(Path(CONFIG.rules_path))
    log.info("prewarmed models in %.2f s", time.monotonic() - t0)


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

    def stage(name: str, t_mono: float, info: dict[str, Any]) -> None:
        if proto is not None:
            proto.mark(name, t_mono)

    vad = ctx.proc.userdata["vad"]
    turn_detection: Any = "vad"
    if CONFIG.turn_detector == "v1-mini":
        turn_detection = inference.TurnDetector(version="v1-mini")
    session = AgentSession(
        vad=vad,
        stt=WhisperStreamingSTT(transcriber=ctx.proc.userdata["whisper"], vad=vad),
        llm=ScriptedLLM(rules=ctx.proc.userdata["rules"], on_event=stage),
        tts=LocalTTS(engine=ctx.proc.userdata["tts"], on_event=stage),
        turn_handling={
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
            "preemptive_generation": {"enabled": CONFIG.preemptive_generation},
        },
        aec_warmup_duration=None,
        user_away_timeout=None,
    )
    await session.start(agent=BundledAgent(), room=ctx.room, room_options=RoomOptions(close_on_disconnect=True))
    proto = AutoRTCAgentProtocol(room=ctx.room, session=session)
    await proto.start()
    log.info("session started in room %s", ctx.room.name)


if __name__ == "__main__":
    cli.run_app(server)
