// Latency histograms (HDR, microseconds) and the summaries the report prints:
// percentiles per run, and medians with min–max across repetitions.
import hdrModule from 'hdr-histogram-js';

const hdr = hdrModule.default ?? hdrModule;

/** Highest latency a histogram tracks: 120 s in µs. Larger values are clamped. */
const HIGHEST_US = 120_000_000;

/** A fresh HDR histogram in µs with 3 significant digits. */
export function newHistogram() {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_US,
    numberOfSignificantValueDigits: 3,
    bitBucketSize: 32,
    useWebAssembly: false,
  });
}

/** Records a duration given in ms (fractional) into `h` as whole µs. */
export function recordMs(h, ms) {
  h.recordValue(Math.min(HIGHEST_US, Math.max(1, Math.round(ms * 1000))));
}

/** p50/p90/p99/p99.9/max/mean in µs, and the sample count. */
export function summarize(h) {
  if (h.totalCount === 0) return { count: 0 };
  return {
    count: h.totalCount,
    p50: h.getValueAtPercentile(50),
    p90: h.getValueAtPercentile(90),
    p99: h.getValueAtPercentile(99),
    p999: h.getValueAtPercentile(99.9),
    max: h.maxValue,
    mean: Math.round(h.mean),
  };
}

/**
 * Percentile curve points [percentile, µs] for charts, dense toward the tail.
 * One pass over the buckets: getValueAtPercentile() walks them all per call,
 * which for a hundred points took seconds per chart on a busy machine.
 */
export function curve(h) {
  if (h.totalCount === 0) return [];
  // [highest value of the bucket, count of values up to it], for every bucket that holds any.
  const steps = [];
  let total = 0;
  for (let i = 0; i < h.countsArrayLength; i++) {
    const n = h.getCountAtIndex(i);
    if (n === 0) continue;
    total += n;
    steps.push([h.highestEquivalentValue(h.valueFromIndex(i)), total]);
  }
  const points = [];
  // x = -log10(1 - p): 0 → p0, 1 → p90, 2 → p99, 3 → p99.9 ...
  const maxX = Math.min(5, Math.log10(h.totalCount));
  let i = 0;
  for (let x = 0; x <= maxX + 1e-9; x += 0.05) {
    const p = 100 * (1 - 10 ** -x);
    // As getValueAtPercentile: the first value whose cumulative count reaches ⌈p·total⌉.
    const count = Math.max(1, Math.ceil((p / 100) * h.totalCount - 1e-9));
    while (i < steps.length - 1 && steps[i][1] < count) i++;
    points.push([Number(p.toFixed(4)), x === 0 ? h.minNonZeroValue : steps[i][0]]);
  }
  points.push([100, h.maxValue]);
  return points;
}

/** Adds `src` into `dst` (both HDR histograms). */
export function mergeInto(dst, src) {
  dst.add(src);
  return dst;
}

/** Compressed base64 form of a histogram, for the results JSON. */
export function encode(h) {
  return hdr.encodeIntoCompressedBase64(h);
}

/** The median of numbers (mean of the middle two for an even count); NaN when empty. */
export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** { median, min, max } of the finite numbers in `values`. */
export function spread(values) {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 };
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
}
