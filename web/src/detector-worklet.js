// AudioWorklet processor: sample-accurate speech/playout segment detector.
//
// Runs on the audio rendering thread, so every sample that passes through the
// node is seen exactly once, with its frame index on the AudioContext clock
// (`currentFrame + i`). Nothing is polled: an onset/end is a frame index, and the
// main thread maps frames to performance time (see main.js, `ClockMap`).
//
// Algorithm (mirrored exactly by autobrowser/detect.py, which the tests compare):
//   rms[n]    = sqrt( sum(x[n-W+1..n]^2) / W )          trailing window, W = window_ms
//   active[n] = rms[n] >= threshold
//   onset     = first sample k in (n0-W, n0] with |x[k]| >= threshold, n0 = first active sample
//   end (EoT) = last sample k <= last active sample with |x[k]| >= threshold
//   a segment closes once `silence_ms` samples passed after its last active sample
//   without the window becoming active again (gaps <= silence window merge).
// The node passes its input through unchanged (the playout path plays through it).

class SegmentDetector extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.label = o.label || 'detector';
    this.threshold = o.threshold ?? 0.015;
    this.thr2 = this.threshold * this.threshold;
    this.W = Math.max(1, Math.round(((o.windowMs ?? 10) * sampleRate) / 1000));
    this.S = Math.max(1, Math.round(((o.silenceMs ?? 400) * sampleRate) / 1000));
    this.ring = new Float64Array(this.W); // x^2 of the last W samples
    this.ringPos = 0;
    this.sum = 0;
    this.sinceRecompute = 0;
    this.inSegment = false;
    this.segOnset = -1;
    this.segEnd = -1; // last loud sample <= last active sample
    this.lastActive = -1;
    this.lastLoud = -1;
    this.firstInputFrame = -1;
    this.framesSeen = 0;
    this.peak = 0;
    // Runs of exact zeros between non-zero samples: with a source free of digital silence
    // these are capture/playout underruns (the browser filled a gap with zeros).
    this.minZeroRun = o.minZeroRun ?? 32;
    this.zeroRunStart = -1;
    this.seenNonZero = false;
    this.port.onmessage = (ev) => {
      if (ev.data && ev.data.type === 'flush') this.flush(ev.data.id);
    };
  }

  // Closes an open segment (used at the end of a measurement) and reports it
  // as `open: true` so the consumer knows the silence window never elapsed.
  flush(id) {
    if (this.inSegment) {
      this.port.postMessage({
        type: 'segment', label: this.label, onsetFrame: this.segOnset, endFrame: this.segEnd,
        peak: this.peak, open: true, closedAtFrame: currentFrame,
      });
      this.inSegment = false;
    }
    this.port.postMessage({ type: 'flushed', id, label: this.label, frame: currentFrame,
      firstInputFrame: this.firstInputFrame, framesSeen: this.framesSeen });
  }

  onsetInWindow(n) {
    // The ring holds x^2 for samples n-W+1..n; the oldest sits at ringPos (after the write).
    for (let j = 0; j < this.W; j++) {
      const k = n - this.W + 1 + j;
      if (k < 0) continue;
      if (this.ring[(this.ringPos + j) % this.W] >= this.thr2) return k;
    }
    return n;
  }

  process(inputs, outputs) {
    const input = inputs[0];
    const output = outputs[0];
    if (!input || input.length === 0) {
      if (output) for (const ch of output) ch.fill(0);
      return true;
    }
    const x = input[0];
    const base = currentFrame;
    if (this.firstInputFrame < 0) {
      this.firstInputFrame = base;
      this.port.postMessage({ type: 'first-input', label: this.label, frame: base });
    }
    for (let i = 0; i < x.length; i++) {
      const n = base + i;
      const v = x[i];
      const v2 = v * v;
      this.sum += v2 - this.ring[this.ringPos];
      this.ring[this.ringPos] = v2;
      this.ringPos = (this.ringPos + 1) % this.W;
      if (++this.sinceRecompute >= 48000) {
        // Running sums drift by rounding; recompute exactly once a second of audio.
        let s = 0;
        for (let j = 0; j < this.W; j++) s += this.ring[j];
        this.sum = s;
        this.sinceRecompute = 0;
      }
      if (v === 0) {
        if (this.zeroRunStart < 0 && this.seenNonZero) this.zeroRunStart = n;
      } else {
        if (this.zeroRunStart >= 0 && n - this.zeroRunStart >= this.minZeroRun) {
          this.port.postMessage({ type: 'zero-run', label: this.label, startFrame: this.zeroRunStart,
            length: n - this.zeroRunStart });
        }
        this.zeroRunStart = -1;
        this.seenNonZero = true;
      }
      const loud = v2 >= this.thr2;
      if (loud) this.lastLoud = n;
      const active = this.sum >= this.thr2 * this.W;
      if (active) {
        if (!this.inSegment) {
          this.inSegment = true;
          this.segOnset = this.onsetInWindow(n);
          this.peak = 0;
          this.port.postMessage({ type: 'onset', label: this.label, onsetFrame: this.segOnset, detectFrame: n });
        }
        this.lastActive = n;
        this.segEnd = this.lastLoud;
        const a = Math.abs(v);
        if (a > this.peak) this.peak = a;
      } else if (this.inSegment && n - this.lastActive >= this.S) {
        this.inSegment = false;
        this.port.postMessage({
          type: 'segment', label: this.label, onsetFrame: this.segOnset, endFrame: this.segEnd,
          peak: this.peak, open: false, closedAtFrame: n,
        });
      }
    }
    this.framesSeen += x.length;
    if (output) {
      for (let c = 0; c < output.length; c++) {
        const src = input[Math.min(c, input.length - 1)];
        output[c].set(src);
      }
    }
    return true;
  }
}

registerProcessor('segment-detector', SegmentDetector);
