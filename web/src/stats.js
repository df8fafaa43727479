// WebRTC getStats snapshot of the inbound (agent) audio, reduced to the fields
// a voice-agent engineer reads. Cumulative counters are kept raw; per-turn
// deltas are derived by the harness (autobrowser/stats.py) from two snapshots.

import { nowMs } from './clock.js';

const INBOUND_FIELDS = [
  'ssrc', 'packetsReceived', 'packetsLost', 'packetsDiscarded', 'bytesReceived', 'jitter',
  'jitterBufferDelay', 'jitterBufferTargetDelay', 'jitterBufferMinimumDelay', 'jitterBufferEmittedCount',
  'totalSamplesReceived', 'concealedSamples', 'silentConcealedSamples', 'concealmentEvents',
  'insertedSamplesForDeceleration', 'removedSamplesForAcceleration', 'audioLevel', 'totalAudioEnergy',
  'totalSamplesDuration', 'fecPacketsReceived', 'fecPacketsDiscarded', 'lastPacketReceivedTimestamp',
  'playoutId',
];

function pick(obj, fields) {
  const out = {};
  for (const f of fields) if (obj[f] !== undefined) out[f] = obj[f];
  return out;
}

export function reduceReport(report) {
  const snap = { inbound: null, remote_outbound: null, candidate_pair: null, codec: null, playout: null };
  if (!report) return snap;
  const byId = new Map();
  report.forEach((s) => byId.set(s.id, s));
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && (s.kind === 'audio' || s.mediaType === 'audio')) {
      snap.inbound = pick(s, INBOUND_FIELDS);
      const codec = s.codecId && byId.get(s.codecId);
      if (codec) snap.codec = { mimeType: codec.mimeType, clockRate: codec.clockRate, channels: codec.channels };
      const playout = s.playoutId && byId.get(s.playoutId);
      if (playout) snap.playout = pick(playout, ['synthesizedSamplesDuration', 'synthesizedSamplesEvents',
        'totalSamplesDuration', 'totalPlayoutDelay', 'totalSamplesCount']);
    } else if (s.type === 'remote-outbound-rtp' && (s.kind === 'audio' || s.mediaType === 'audio')) {
      snap.remote_outbound = pick(s, ['roundTripTime', 'totalRoundTripTime', 'roundTripTimeMeasurements',
        'packetsSent', 'bytesSent']);
    } else if (s.type === 'candidate-pair' && (s.nominated || s.selected) && s.state === 'succeeded') {
      snap.candidate_pair = pick(s, ['currentRoundTripTime', 'totalRoundTripTime', 'responsesReceived',
        'availableIncomingBitrate']);
    }
  });
  return snap;
}

export async function snapshot(track, label) {
  const t = nowMs();
  let report = null;
  let error = null;
  try {
    report = await track.getRTCStatsReport();
  } catch (e) {
    error = String(e);
  }
  return { label, t, ...reduceReport(report), ...(error ? { error } : {}) };
}
