// One clock for everything on the page: epoch milliseconds
//   t = performance.timeOrigin + performance.now()
// and the mapping from AudioContext frames to that clock.
//
// Mapping: AudioContext.getOutputTimestamp() returns {contextTime, performanceTime}:
// the frame at `contextTime` left the output device at `performanceTime`. Sampled
// every `periodMs`, each sample gives offset_ms = timeOrigin + performanceTime -
// contextTime * 1000. A frame F then reached the output at
//   t_out(F) = F / sampleRate * 1000 + offset_ms     (offset of the nearest sample)
// (offset_ms: the median of the samples within +-5 s of F, robust to the estimator's jitter)
// and was rendered (passed through the worklets) `renderToOutputMs` earlier
//   t_render(F) = t_out(F) - renderToOutputMs,  renderToOutputMs = (baseLatency + outputLatency) * 1000.
// The error of the mapping is the scatter of offset_ms across samples (both clocks
// tick at the same rate on one host, so the spread is the estimator's own jitter);
// `stats()` reports it. Before the context has produced output, getOutputTimestamp
// returns zeros; those samples are discarded.

export function nowMs() {
  return performance.timeOrigin + performance.now();
}

export class ClockMap {
  constructor(ctx, { periodMs = 100, windowS = 5 } = {}) {
    this.ctx = ctx;
    this.windowS = windowS;
    this.samples = []; // [contextTime_s, performanceTime_epoch_ms]
    this.timer = setInterval(() => this.sample(), periodMs);
    this.sample();
  }

  sample() {
    if (this.ctx.state !== 'running') return;
    const ts = this.ctx.getOutputTimestamp();
    if (!ts || !(ts.performanceTime > 0) || !(ts.contextTime > 0)) return;
    const p = performance.timeOrigin + ts.performanceTime;
    const last = this.samples[this.samples.length - 1];
    if (last && last[0] === ts.contextTime) return;
    this.samples.push([ts.contextTime, p]);
    if (this.samples.length > 20000) this.samples.splice(0, 10000);
  }

  renderToOutputMs() {
    return ((this.ctx.baseLatency || 0) + (this.ctx.outputLatency || 0)) * 1000;
  }

  offsetNear(contextTimeS) {
    if (this.samples.length === 0) {
      // Fallback (no output timestamp yet): now minus the render position.
      return { offset: nowMs() - this.ctx.currentTime * 1000 + this.renderToOutputMs(), method: 'currentTime' };
    }
    // Median of the offsets sampled within +-windowS of the frame: the estimator jitters by
    // a few ms per call (the output callback's timing), both clocks tick at the same rate.
    let near = this.samples.filter((s) => Math.abs(s[0] - contextTimeS) <= this.windowS);
    if (near.length === 0) near = this.samples;
    const offs = near.map((s) => s[1] - s[0] * 1000).sort((a, b) => a - b);
    const m = offs.length >> 1;
    const offset = offs.length % 2 ? offs[m] : (offs[m - 1] + offs[m]) / 2;
    return { offset, method: 'getOutputTimestamp' };
  }

  // Epoch ms at which frame `frame` was rendered (went through the worklets).
  renderTime(frame) {
    const c = frame / this.ctx.sampleRate;
    return c * 1000 + this.offsetNear(c).offset - this.renderToOutputMs();
  }

  // Epoch ms at which frame `frame` left the output device (became audible).
  outputTime(frame) {
    const c = frame / this.ctx.sampleRate;
    return c * 1000 + this.offsetNear(c).offset;
  }

  stats() {
    const offs = this.samples.map((s) => s[1] - s[0] * 1000);
    const med = offs.length ? [...offs].sort((a, b) => a - b)[offs.length >> 1] : null;
    const absDev = offs.map((o) => Math.abs(o - med)).sort((a, b) => a - b);
    const n = offs.length;
    if (n === 0) return { method: 'currentTime', n: 0 };
    const mean = offs.reduce((a, b) => a + b, 0) / n;
    const sd = Math.sqrt(offs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, n - 1));
    const sorted = [...offs].sort((a, b) => a - b);
    return {
      method: 'getOutputTimestamp', n, offset_ms_mean: mean, offset_ms_std: sd,
      offset_ms_min: sorted[0], offset_ms_max: sorted[n - 1], offset_ms_spread: sorted[n - 1] - sorted[0],
      offset_ms_median: med, offset_ms_mad: absDev[n >> 1], offset_ms_p95_abs_dev: absDev[Math.min(n - 1, Math.floor(0.95 * n))],
    };
  }

  close() {
    clearInterval(this.timer);
  }
}
