"""TTS regression bench (``autortc tts-bench``): TTFA, determinism, fidelity vs gold,
repetition and streaming sanity of a :class:`system.tts.StreamingTTS`, outside WebRTC.

* :mod:`.sentences` — the sentence file (pydantic).
* :mod:`.worker` — the engine process; :mod:`system.procgroup` holds its process group.
* :mod:`.metrics` — pure metrics; :mod:`.gates` — thresholds and verdicts.
* :mod:`.gold` — gold WAVs and manifest; :mod:`.bench` — the orchestration;
  :mod:`.report` — the markdown section.
"""
