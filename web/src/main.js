// AutoRTC product test page.
//
// Query parameters (all optional unless stated):
//   auto=1                 join at once, no click
//   lk_token, url          LiveKit access token and ws URL; without lk_token the page asks the
//                          token server it is served from: GET /token?room=&identity=
//   room, identity         room name (needed without lk_token), participant identity
//   selftest=1             no LiveKit: the mic goes through the mic detector and, delayed by
//                          selftest_delay_ms, through the playout path as a stand-in agent
//   speech_thr=0.015       mic speech threshold (RMS of the window), seed value
//   silence_ms=400         mic silence window closing a speech segment, seed value
//   window_ms=10           RMS window of both detectors
//   playout_thr=0.015      playout (agent audio) threshold, RMS
//   playout_silence_ms=400 silence closing a playout segment
//   speech_ms              length of the case's speech (first onset to last end) in the file;
//                          bounds which mic segments are the user's turn (fake capture loops)
//   wait_agent=1           publish the mic only once a remote participant is in the room
//   wait_ready=0           AutoRTC double ACK: with 1, open the mic only after the agent's
//                          `agent_ready` (its answer to the probe's `probe_ready`), so the probe
//                          records before the user speaks; ready_timeout_ms=30000
//   agent_timeout_ms=20000
//   agent_kind=agent       whose audio is "the agent": participants of LiveKit kind AGENT
//                          (`any`: any remote participant); agent_identity=ID picks one by name
//   mic=capture            the microphone is getUserMedia (Chromium's fake capture file);
//   mic=script             the microphone is the segments given to autortc.setMicScript(), each
//                          scheduled sample-exactly relative to its anchor (case start, previous
//                          segment's end, the agent's speech start/end as the playout worklet
//                          detects it): for cases whose later segments depend on the agent
//   script_lead_ms=1000    script mode: silence between publishing and the first segment's anchor
//   aproc=0                1 enables echo cancellation / noise suppression / AGC on the mic
//   stats_ms=1000          getStats period for the inbound agent audio
//   trace_id               AutoRTC protocol: sent as `turn_start` before the mic is published,
//                          so the agent tags this turn; the agent's reply_start / reply_end /
//                          trace messages (topic "autortc") are kept in trace.protocol
//   wall_offset_s          host time.time() - time.monotonic(), to stamp t_mono on messages
//
// Everything measured is in `window.autortcTrace` (browser_trace.json); the harness
// drives `window.autortc` (turnState, finish, recordingBase64).

import { Room, RoomEvent, Track, LocalAudioTrack, createLocalAudioTrack, ConnectionErrorReason } from 'livekit-client';
import { ClockMap, nowMs } from './clock.js';
import { snapshot } from './stats.js';

const params = new URLSearchParams(location.search);
const num = (name, dflt) => {
  const v = params.get(name);
  if (v === null || v === '') return dflt;
  const x = Number(v);
  if (!Number.isFinite(x)) throw new Error(`query parameter ${name}=${v} is not a number`);
  return x;
};
const flag = (name, dflt) => {
  const v = params.get(name);
  return v === null ? dflt : v === '1' || v === 'true';
};

const config = {
  auto: flag('auto', false),
  selftest: flag('selftest', false),
  speech_threshold_rms: num('speech_thr', 0.015),
  silence_ms: num('silence_ms', 400),
  window_ms: num('window_ms', 10),
  playout_threshold_rms: num('playout_thr', 0.015),
  playout_silence_ms: num('playout_silence_ms', 400),
  speech_ms: num('speech_ms', null),
  wait_agent: flag('wait_agent', true),
  wait_ready: flag('wait_ready', false),
  ready_timeout_ms: num('ready_timeout_ms', 30000),
  agent_timeout_ms: num('agent_timeout_ms', 20000),
  audio_processing: flag('aproc', false),
  stats_ms: num('stats_ms', 1000),
  selftest_delay_ms: num('selftest_delay_ms', 1500),
  trace_id: params.get('trace_id'),
  wall_offset_s: num('wall_offset_s', null),
  agent_kind: params.get('agent_kind') || 'agent',
  mic_mode: params.get('mic') || 'capture',
  script_lead_ms: num('script_lead_ms', 1000),
  agent_identity: params.get('agent_identity'),
};

const trace = {
  v: 1,
  kind: 'browser_trace',
  clock: 'epoch ms = performance.timeOrigin + performance.now()',
  status: 'loading',
  failure: null,
  mode: config.selftest ? 'selftest' : 'room',
  config,
  page: { room: params.get('room'), identity: params.get('identity'), url: params.get('url'), user_agent: navigator.userAgent },
  events: { t_page_load: nowMs() },
  audio: null,
  mic: { first_input_frame: null, t_first_input: null, segments: [], onsets: [], zero_runs: [] },
  playout: { first_input_frame: null, t_first_input: null, segments: [], onsets: [], zero_runs: [] },
  kpi: null,
  stats: { snapshots: [] },
  recording: null,
  agent: null,
  protocol: { sent: [], received: [] },
  log: [],
};
window.autortcTrace = trace;

const logEl = () => document.getElementById('log');
function log(msg) {
  const line = `${new Date().toISOString()} ${msg}`;
  trace.log.push(line);
  const el = logEl();
  if (el) el.textContent += line + '\n';
}
function setStatus(s) {
  trace.status = s;
  const el = document.getElementById('status');
  if (el) el.textContent = s;
}
function fail(cause, message) {
  if (trace.failure) return;
  trace.failure = { cause, message: String(message), t: nowMs() };
  setStatus('error');
  log(`FAILED ${cause}: ${message}`);
}

// ---------------------------------------------------------------- audio graph
let ctx = null;
let clock = null;
let sink = null;
const detectors = {}; // label -> {node, open, lastEndFrame}
const flushWaiters = new Map();
let recorder = null;
let recChunks = [];
let recStopped = null;

async function setupAudio() {
  ctx = new AudioContext({ sampleRate: 48000, latencyHint: 'interactive' });
  await ctx.audioWorklet.addModule(new URL('detector-worklet.js', document.baseURI).href);
  if (ctx.state !== 'running') await ctx.resume();
  clock = new ClockMap(ctx);
  // The mic detector must be pulled by the graph but must not be heard.
  sink = ctx.createGain();
  sink.gain.value = 0;
  sink.connect(ctx.destination);
  trace.audio = { sample_rate: ctx.sampleRate, base_latency_s: ctx.baseLatency, output_latency_s: ctx.outputLatency };
}

function makeDetector(label, threshold, silenceMs) {
  const node = new AudioWorkletNode(ctx, 'segment-detector', {
    numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1], channelCount: 1, channelCountMode: 'explicit',
    processorOptions: { label, threshold, silenceMs, windowMs: config.window_ms },
  });
  detectors[label] = { node, open: false, lastEndFrame: null, openOnsetFrame: null };
  node.port.onmessage = (ev) => onDetectorMessage(label, ev.data);
  return node;
}

function onDetectorMessage(label, m) {
  const d = detectors[label];
  const t = trace[label];
  if (m.type === 'first-input') {
    t.first_input_frame = m.frame;
  } else if (m.type === 'onset') {
    d.open = true;
    d.openOnsetFrame = m.onsetFrame;
    // How late the main thread heard of it: a check on the frame->time mapping.
    t.onsets.push({ onset_frame: m.onsetFrame, detect_frame: m.detectFrame, t_notified: nowMs() });
    if (label === 'playout') tryPending();
  } else if (m.type === 'segment') {
    d.open = false;
    d.lastEndFrame = m.endFrame;
    t.segments.push({ onset_frame: m.onsetFrame, end_frame: m.endFrame, peak: m.peak, open: m.open,
      closed_at_frame: m.closedAtFrame });
    if (label === 'mic') log(`mic segment ${m.onsetFrame}..${m.endFrame}`);
    else { log(`playout segment ${m.onsetFrame}..${m.endFrame}`); tryPending(); }
  } else if (m.type === 'zero-run') {
    if (t.zero_runs.length < 1000) t.zero_runs.push([m.startFrame, m.length]);
  } else if (m.type === 'flushed') {
    const w = flushWaiters.get(m.id);
    if (w) { flushWaiters.delete(m.id); w(m); }
  }
}

function flushDetector(label, timeoutMs = 3000) {
  const d = detectors[label];
  if (!d) return Promise.resolve(null);
  const id = `${label}-${Math.random()}`;
  return new Promise((resolve) => {
    const timer = setTimeout(() => { flushWaiters.delete(id); resolve(null); }, timeoutMs);
    flushWaiters.set(id, (m) => { clearTimeout(timer); resolve(m); });
    d.node.port.postMessage({ type: 'flush', id });
  });
}

function attachMic(mediaStreamTrack) {
  const src = ctx.createMediaStreamSource(new MediaStream([mediaStreamTrack]));
  const node = makeDetector('mic', config.speech_threshold_rms, config.silence_ms);
  src.connect(node);
  node.connect(sink);
  trace.events.t_mic_attached = nowMs();
  return src;
}

function attachPlayout(sourceNode) {
  const node = makeDetector('playout', config.playout_threshold_rms, config.playout_silence_ms);
  sourceNode.connect(node);
  node.connect(ctx.destination);
  // The recorder takes the very samples that went to the speakers.
  const recDest = ctx.createMediaStreamDestination();
  node.connect(recDest);
  const mimeType = MediaRecorder.isTypeSupported('audio/webm;codecs=opus') ? 'audio/webm;codecs=opus' : 'audio/webm';
  recorder = new MediaRecorder(recDest.stream, { mimeType, audioBitsPerSecond: 128000 });
  recChunks = [];
  recStopped = new Promise((resolve) => { recorder.onstop = resolve; });
  recorder.ondataavailable = (ev) => { if (ev.data && ev.data.size > 0) recChunks.push(ev.data); };
  recorder.start(250);
  trace.recording = { mime: mimeType, t_start: nowMs(), ctx_frame_at_start: Math.round(ctx.currentTime * ctx.sampleRate),
    t_stop: null, bytes: 0 };
}

// ---------------------------------------------------------------- room
let room = null;
let agentTrack = null;
let statsTimer = null;

function classifyConnectError(e) {
  const msg = e && e.message ? e.message : String(e);
  if ((e && e.reason === ConnectionErrorReason.NotAllowed) || (e && (e.status === 401 || e.status === 403))
      || /unauthori[sz]ed|invalid token|token is expired|401/i.test(msg)) {
    return 'token_rejected';
  }
  return 'connect_failed';
}

function isAgent(p) {
  if (config.agent_identity) return p.identity === config.agent_identity;
  return config.agent_kind === 'any' || p.isAgent;
}

function waitForAgent(timeoutMs) {
  return new Promise((resolve, reject) => {
    const present = [...room.remoteParticipants.values()].find(isAgent);
    if (present) { resolve(present); return; }
    const on = (p) => {
      if (!isAgent(p)) return;
      clearTimeout(timer);
      room.off(RoomEvent.ParticipantConnected, on);
      resolve(p);
    };
    const timer = setTimeout(() => {
      room.off(RoomEvent.ParticipantConnected, on);
      const others = [...room.remoteParticipants.values()].map((p) => `${p.identity}(kind ${p.kind})`);
      reject(new Error(`no agent participant joined within ${timeoutMs} ms (others: ${others.join(', ') || 'none'})`));
    }, timeoutMs);
    room.on(RoomEvent.ParticipantConnected, on);
  });
}

async function onTrackSubscribed(track, publication, participant) {
  if (track.kind !== Track.Kind.Audio || agentTrack || !isAgent(participant)) return;
  agentTrack = track;
  trace.events.t_agent_track_subscribed = nowMs();
  trace.agent = { identity: participant.identity, kind: participant.kind, is_agent: participant.isAgent,
    track_sid: publication.trackSid };
  log(`subscribed to audio of ${participant.identity}`);
  const stream = new MediaStream([track.mediaStreamTrack]);
  // Chromium delivers remote WebRTC audio to Web Audio only while a media element
  // consumes the stream; the element is muted, the page plays through the graph.
  const el = new Audio();
  el.muted = true;
  el.srcObject = stream;
  el.play().catch((e) => log(`muted sink element did not start: ${e}`));
  attachPlayout(ctx.createMediaStreamSource(stream));
  trace.stats.snapshots.push(await snapshot(track, 'subscribed'));
  statsTimer = setInterval(async () => {
    if (agentTrack) trace.stats.snapshots.push(await snapshot(agentTrack, 'periodic'));
  }, config.stats_ms);
}

// ---------------------------------------------------------------- AutoRTC protocol
const PROTOCOL_TOPIC = 'autortc';

function protocolMessage(type, fields) {
  const tWall = nowMs() / 1000;
  const msg = { v: 1, type, t_wall: tWall, ...fields };
  if (config.wall_offset_s !== null) msg.t_mono = tWall - config.wall_offset_s;
  return msg;
}

async function sendProtocol(type, fields) {
  const msg = protocolMessage(type, fields);
  await room.localParticipant.publishData(new TextEncoder().encode(JSON.stringify(msg)),
    { reliable: true, topic: PROTOCOL_TOPIC });
  trace.protocol.sent.push({ ...msg, t: nowMs() });
}

let agentReadyResolve = null;
const agentReady = new Promise((resolve) => { agentReadyResolve = resolve; });

function onData(payload, participant, kind, topic) {
  if (topic !== PROTOCOL_TOPIC) return;
  let msg;
  try { msg = JSON.parse(new TextDecoder().decode(payload)); } catch (e) { log(`bad protocol packet: ${e}`); return; }
  if (!msg || msg.v !== 1 || typeof msg.type !== 'string') return;
  trace.protocol.received.push({ t: nowMs(), from: participant ? participant.identity : null, msg });
  if (msg.type === 'agent_ready' && agentReadyResolve) { trace.events.t_agent_ready = nowMs(); agentReadyResolve(); }
  if (msg.type === 'reply_start' || msg.type === 'reply_end') log(`agent ${msg.type} ${msg.trace_id} #${msg.reply_index}`);
}

async function fetchToken(roomName, identity) {
  const r = await fetch(`/token?room=${encodeURIComponent(roomName)}&identity=${encodeURIComponent(identity)}`);
  if (!r.ok) throw new Error(`token server answered ${r.status}`);
  return r.json();
}

// ---------------------------------------------------------------- scripted microphone
let micScriptResolve = null;
const micScriptReady = new Promise((resolve) => { micScriptResolve = resolve; });
let micScript = null; // [{buffer, after, offset_ms}]
let micScriptNode = null;
const scriptState = { segments: [], pending: null, start_frame: null };

function setMicScript(segments) {
  if (!ctx) throw new Error('audio not set up yet');
  micScript = segments.map((seg, i) => {
    const bin = atob(seg.pcm_b64);
    const n = bin.length >> 1;
    const buf = ctx.createBuffer(1, n, ctx.sampleRate);
    const ch = buf.getChannelData(0);
    for (let k = 0; k < n; k++) {
      let v = bin.charCodeAt(2 * k) | (bin.charCodeAt(2 * k + 1) << 8);
      if (v >= 32768) v -= 65536;
      ch[k] = v / 32768;
    }
    if (!['start', 'previous_end', 'agent_speech_start', 'agent_speech_end'].includes(seg.after)) {
      throw new Error(`segment ${i}: unknown anchor ${seg.after}`);
    }
    return { buffer: buf, after: seg.after, offset_ms: Number(seg.offset_ms) || 0 };
  });
  trace.mic.script = scriptState;
  micScriptResolve();
  return micScript.length;
}

function scheduleSegment(i, anchorFrame) {
  const seg = micScript[i];
  const sr = ctx.sampleRate;
  let startFrame = anchorFrame + Math.round((seg.offset_ms / 1000) * sr);
  const earliest = Math.ceil(ctx.currentTime * sr) + 512; // a few render quanta ahead
  const late = Math.max(0, earliest - startFrame);
  startFrame += late;
  const src = ctx.createBufferSource();
  src.buffer = seg.buffer;
  src.connect(micScriptNode);
  src.start(startFrame / sr);
  const entry = { index: i, after: seg.after, offset_ms: seg.offset_ms, anchor_frame: anchorFrame,
    start_frame: startFrame, end_frame: startFrame + seg.buffer.length, late_frames: late, ended: false };
  scriptState.segments.push(entry);
  log(`script segment ${i} at frame ${startFrame} (anchor ${seg.after} ${anchorFrame}, late ${late})`);
  src.onended = () => { entry.ended = true; };
  if (i + 1 < micScript.length) armNext(i + 1);
}

function armNext(i) {
  const seg = micScript[i];
  const prev = scriptState.segments[i - 1];
  if (seg.after === 'start') scheduleSegment(i, scriptState.start_frame);
  else if (seg.after === 'previous_end') scheduleSegment(i, prev.end_frame);
  else scriptState.pending = { index: i, after: seg.after, since_frame: prev.start_frame };
  tryPending();
}

// Called on playout detector events: anchors on the agent's speech after the previous segment began.
function tryPending() {
  const p = scriptState.pending;
  if (!p) return;
  if (p.after === 'agent_speech_start') {
    const onset = trace.playout.onsets.find((o) => o.onset_frame >= p.since_frame);
    if (onset) { scriptState.pending = null; scheduleSegment(p.index, onset.onset_frame); }
  } else if (p.after === 'agent_speech_end') {
    const seg = trace.playout.segments.find((x) => x.onset_frame >= p.since_frame);
    if (seg) { scriptState.pending = null; scheduleSegment(p.index, seg.end_frame + 1); }
  }
}

function scriptedMicTrack() {
  const dest = ctx.createMediaStreamDestination();
  dest.channelCount = 1;
  micScriptNode = makeDetector('mic', config.speech_threshold_rms, config.silence_ms);
  // A zero source keeps the mic worklet running (and its frame count) between segments.
  const zero = ctx.createConstantSource();
  zero.offset.value = 0;
  zero.connect(micScriptNode);
  zero.start();
  micScriptNode.connect(dest);
  micScriptNode.connect(sink);
  trace.events.t_mic_attached = nowMs();
  return dest.stream.getAudioTracks()[0];
}

async function join() {
  let token = params.get('lk_token');
  let url = params.get('url');
  const roomName = params.get('room');
  const identity = params.get('identity') || `browser-${Math.random().toString(36).slice(2, 8)}`;
  if (!token) {
    if (!roomName) { fail('bad_parameters', 'need lk_token or room'); return; }
    try {
      const t = await fetchToken(roomName, identity);
      token = t.token;
      url = url || t.url;
    } catch (e) { fail('token_server', e); return; }
  }
  if (!url) { fail('bad_parameters', 'need url (LiveKit ws URL)'); return; }
  setStatus('connecting');
  trace.events.t_connect_start = nowMs();
  room = new Room({ adaptiveStream: false, dynacast: false });
  room.on(RoomEvent.TrackSubscribed, (t, p, part) => { onTrackSubscribed(t, p, part).catch((e) => log(`subscribe: ${e}`)); });
  room.on(RoomEvent.ParticipantConnected, (p) => {
    if (!trace.events.t_agent_joined && isAgent(p)) trace.events.t_agent_joined = nowMs();
    log(`participant joined: ${p.identity}`);
  });
  room.on(RoomEvent.DataReceived, onData);
  room.on(RoomEvent.ParticipantDisconnected, (p) => {
    if (!isAgent(p)) return;
    trace.events.t_agent_left = nowMs();
    log(`agent left: ${p.identity}`);
  });
  room.on(RoomEvent.Disconnected, (reason) => { trace.events.t_disconnected = nowMs(); trace.events.disconnect_reason = reason; });
  try {
    await room.connect(url, token, { autoSubscribe: true });
  } catch (e) {
    fail(classifyConnectError(e), e && e.message ? e.message : e);
    return;
  }
  trace.events.t_joined = nowMs();
  setStatus('joined');
  log(`joined room ${room.name} as ${room.localParticipant.identity}`);
  if ([...room.remoteParticipants.values()].some(isAgent) && !trace.events.t_agent_joined) trace.events.t_agent_joined = nowMs();
  if (config.wait_agent) {
    try { await waitForAgent(config.agent_timeout_ms); } catch (e) { fail('no_agent', e.message); return; }
  }
  if (config.wait_ready) {
    const timeout = new Promise((_, reject) => setTimeout(
      () => reject(new Error(`no agent_ready within ${config.ready_timeout_ms} ms (is the probe in the room?)`)), config.ready_timeout_ms));
    try { await Promise.race([agentReady, timeout]); } catch (e) { fail('no_agent_ready', e.message); return; }
  }
  // Capture (and so the fake-capture file) starts here, after the agent is in the room.
  let mic;
  if (config.mic_mode === 'script') {
    await micScriptReady;
    mic = new LocalAudioTrack(scriptedMicTrack(), undefined, true);
    trace.events.t_mic_opened = nowMs();
  } else {
    try {
      mic = await createLocalAudioTrack({ echoCancellation: config.audio_processing,
        noiseSuppression: config.audio_processing, autoGainControl: config.audio_processing, channelCount: 1 });
    } catch (e) { fail('no_microphone', e); return; }
    trace.events.t_mic_opened = nowMs();
    attachMic(mic.mediaStreamTrack);
  }
  if (config.trace_id) {
    try { await sendProtocol('turn_start', { trace_id: config.trace_id }); } catch (e) { log(`turn_start not sent: ${e}`); }
  }
  try {
    await room.localParticipant.publishTrack(mic, { source: Track.Source.Microphone });
  } catch (e) { fail('publish_failed', e); return; }
  trace.events.t_mic_published = nowMs();
  setStatus('live');
  log('microphone published');
  if (config.mic_mode === 'script') {
    scriptState.start_frame = Math.round(ctx.currentTime * ctx.sampleRate) + Math.round((config.script_lead_ms / 1000) * ctx.sampleRate);
    scheduleSegment(0, scriptState.start_frame);
  }
}

async function selftest() {
  // Stand-in agent: the user's own audio, delayed by an exact number of samples.
  const delay = ctx.createDelay(Math.max(1, config.selftest_delay_ms / 1000 + 1));
  delay.delayTime.value = Math.round((config.selftest_delay_ms / 1000) * ctx.sampleRate) / ctx.sampleRate;
  if (config.mic_mode === 'script') {
    await micScriptReady;
    scriptedMicTrack();
    micScriptNode.connect(delay);
    attachPlayout(delay);
    trace.events.t_agent_track_subscribed = nowMs();
    setStatus('live');
    scriptState.start_frame = Math.round(ctx.currentTime * ctx.sampleRate) + Math.round((config.script_lead_ms / 1000) * ctx.sampleRate);
    scheduleSegment(0, scriptState.start_frame);
    log('selftest: scripted mic -> detector -> delay -> playout');
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false,
      noiseSuppression: false, autoGainControl: false, channelCount: 1 } });
  } catch (e) { fail('no_microphone', e); return; }
  trace.events.t_mic_opened = nowMs();
  const src = attachMic(stream.getAudioTracks()[0]);
  src.connect(delay);
  attachPlayout(delay);
  trace.events.t_agent_track_subscribed = nowMs();
  setStatus('live');
  log('selftest: mic -> detector, mic -> delay -> playout');
}

// ---------------------------------------------------------------- KPI
// Mirrors autobrowser/kpi.py (which the harness treats as the authority).
function computeKpi() {
  const sr = ctx.sampleRate;
  const mic = [...trace.mic.segments].sort((a, b) => a.onset_frame - b.onset_frame);
  const play = [...trace.playout.segments].sort((a, b) => a.onset_frame - b.onset_frame);
  if (mic.length === 0) return { reason: 'no user speech detected on the mic' };
  const first = mic[0];
  const firstPlay = play.find((p) => p.onset_frame >= first.onset_frame) || null;
  let userSegs;
  if (config.speech_ms !== null) {
    const horizon = first.onset_frame + ((config.speech_ms + 50) / 1000) * sr;
    userSegs = mic.filter((s) => s.onset_frame <= horizon);
  } else {
    userSegs = mic.filter((s) => !firstPlay || s.onset_frame < firstPlay.onset_frame);
    if (userSegs.length === 0) userSegs = [first];
  }
  const eotFrame = Math.max(...userSegs.map((s) => s.end_frame));
  const out = {
    user_onset_frame: first.onset_frame, user_eot_frame: eotFrame, user_segments: userSegs.length,
    t_user_onset: clock.renderTime(first.onset_frame), t_user_eot: clock.renderTime(eotFrame),
    first_playout_frame: null, t_first_playout: null, user_kpi_raw_ms: null, user_kpi_ms: null, is_talk_over: null,
  };
  if (!firstPlay) return { ...out, reason: 'no agent playout after the user began speaking' };
  out.first_playout_frame = firstPlay.onset_frame;
  out.t_first_playout = clock.outputTime(firstPlay.onset_frame);
  out.user_kpi_raw_ms = out.t_first_playout - out.t_user_eot;
  out.user_kpi_ms = Math.max(0, out.user_kpi_raw_ms);
  out.is_talk_over = out.user_kpi_raw_ms < 0;
  return out;
}

function framesToTimes() {
  for (const s of trace.mic.segments) { s.t_onset = clock.renderTime(s.onset_frame); s.t_end = clock.renderTime(s.end_frame); }
  for (const s of trace.playout.segments) { s.t_onset = clock.outputTime(s.onset_frame); s.t_end = clock.outputTime(s.end_frame); }
  for (const lab of ['mic', 'playout']) {
    const t = trace[lab];
    if (t.first_input_frame !== null) t.t_first_input = clock.renderTime(t.first_input_frame);
    for (const o of t.onsets) o.notify_lag_ms = o.t_notified - clock.renderTime(o.detect_frame);
  }
}

// ---------------------------------------------------------------- harness API
// Agent replies that began / ended after the user's last speech ended (scripted multi-segment
// turns: the reply to the last segment, not an earlier, interrupted one).
function protocolAfterLastMicEnd(micSegs) {
  const last = micSegs.length ? micSegs[micSegs.length - 1].end_frame : null;
  if (last === null || !clock) return { reply_starts_after_last_mic_end: 0, reply_ends_after_last_mic_end: 0 };
  const tEnd = clock.renderTime(last);
  const after = trace.protocol.received.filter((r) => r.t > tEnd);
  return {
    reply_starts_after_last_mic_end: after.filter((r) => r.msg.type === 'reply_start').length,
    reply_ends_after_last_mic_end: after.filter((r) => r.msg.type === 'reply_end').length,
  };
}

function turnState() {
  const sr = ctx ? ctx.sampleRate : 48000;
  const frame = ctx ? Math.round(ctx.currentTime * sr) : 0;
  const p = detectors.playout;
  const micSegs = trace.mic.segments;
  const playSegs = trace.playout.segments;
  return {
    status: trace.status, failure: trace.failure, audio_ready: !!ctx && !!clock,
    joined: !!trace.events.t_joined, mic_live: !!trace.events.t_mic_attached,
    agent_track: !!trace.events.t_agent_track_subscribed,
    agent_left: !!trace.events.t_agent_left,
    mic_first_input_frame: trace.mic.first_input_frame, ctx_frame: frame, sample_rate: sr,
    mic_segments: micSegs.length, mic_open: !!(detectors.mic && detectors.mic.open),
    playout_segments: playSegs.length, playout_open: !!(p && p.open),
    mic_first_onset_frame: micSegs.length ? micSegs[0].onset_frame : (trace.mic.onsets[0] ? trace.mic.onsets[0].onset_frame : null),
    playout_onset_frames: trace.playout.onsets.map((o) => o.onset_frame),
    reply_starts: trace.protocol.received.filter((r) => r.msg.type === 'reply_start').length,
    reply_ends: trace.protocol.received.filter((r) => r.msg.type === 'reply_end').length,
    agent_traces: trace.protocol.received.filter((r) => r.msg.type === 'trace').length,
    script_scheduled: scriptState.segments.length,
    script_total: micScript ? micScript.length : 0,
    script_done: !!micScript && scriptState.segments.length === micScript.length && scriptState.segments.every((x) => x.ended),
    ...protocolAfterLastMicEnd(micSegs),
    playout_idle_ms: p && !p.open && p.lastEndFrame !== null ? ((frame - p.lastEndFrame) / sr) * 1000 : null,
  };
}

let finished = null;
function finish({ leave = true } = {}) {
  if (finished) return finished;
  finished = (async () => {
    await Promise.all([flushDetector('mic'), flushDetector('playout')]);
    if (statsTimer) clearInterval(statsTimer);
    if (agentTrack) trace.stats.snapshots.push(await snapshot(agentTrack, 'final'));
    if (recorder && recorder.state !== 'inactive') {
      recorder.stop();
      await recStopped;
      trace.recording.t_stop = nowMs();
      trace.recording.bytes = recChunks.reduce((a, c) => a + c.size, 0);
    }
    if (ctx) {
      clock.sample();
      framesToTimes();
      trace.kpi = computeKpi();
      trace.audio.base_latency_s = ctx.baseLatency;
      trace.audio.output_latency_s = ctx.outputLatency;
      trace.audio.render_to_output_ms = clock.renderToOutputMs();
      trace.audio.mapping = clock.stats();
      trace.audio.clock_samples = clock.samples.slice(-2000);
      clock.close();
    }
    trace.events.t_finished = nowMs();
    if (room && leave) await room.disconnect();
    if (!trace.failure) setStatus('done');
    const k = trace.kpi || {};
    log(`USER_KPI raw=${k.user_kpi_raw_ms} ms clamped=${k.user_kpi_ms} talk_over=${k.is_talk_over}`);
    return JSON.parse(JSON.stringify(trace));
  })();
  return finished;
}

function recordingBase64() {
  if (!recChunks.length) return Promise.resolve(null);
  const blob = new Blob(recChunks, { type: (trace.recording && trace.recording.mime) || 'audio/webm' });
  return new Promise((resolve, reject) => {
    const fr = new FileReader();
    fr.onload = () => resolve(String(fr.result).split(',', 2)[1] || '');
    fr.onerror = () => reject(fr.error);
    fr.readAsDataURL(blob);
  });
}

window.autortc = { config, turnState, finish, recordingBase64, nowMs, setMicScript };

async function start() {
  try {
    await setupAudio();
  } catch (e) { fail('audio_setup', e); return; }
  setStatus('ready');
  if (config.selftest) await selftest();
  else await join();
}

window.addEventListener('DOMContentLoaded', () => {
  document.getElementById('join').addEventListener('click', () => { start(); });
  trace.events.t_dom_ready = nowMs();
  if (config.auto || config.selftest) start();
  else setStatus('idle (click Join)');
});
