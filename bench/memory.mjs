// Memory check, run in a child process of its own so the RSS it reports is
// quorumlock's alone: `concurrency` loops of acquire + release on their own
// keys until `pairs` pairs are done, sampling RSS along the way. Prints one
// JSON object on stdout.
//
//   node --expose-gc bench/memory.mjs --nodes redis://127.0.0.1:7001,... --pairs 200000
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string' },
    pairs: { type: 'string', default: '200000' },
    concurrency: { type: 'string', default: '16' },
    ttl: { type: 'string', default: '10000' },
    prefix: { type: 'string', default: 'bench:mem:' },
    fencing: { type: 'string', default: 'true' },
  },
});

const total = Number(values.pairs);
const concurrency = Number(values.concurrency);
// The first 10% are warm-up: pools, JIT and buffers settle there.
const warmup = Math.floor(total / 10);
const sampleEvery = Math.max(1000, Math.floor(total / 40));

const { Redlock } = await import('../dist/index.js');
const redlock = new Redlock(values.nodes.split(','), {
  ttl: Number(values.ttl),
  fencing: values.fencing === 'true',
});

const samples = [];
const sample = (done) => {
  globalThis.gc?.();
  const m = process.memoryUsage();
  samples.push({ pairs: done, rss: m.rss, heapUsed: m.heapUsed, external: m.external });
};

let done = 0;
let errors = 0;
let nextSample = warmup;
const t0 = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async (_, i) => {
    const key = `${values.prefix}${i}`;
    while (done < total) {
      try {
        const lock = await redlock.acquire(key, { ttl: Number(values.ttl) });
        await lock.release();
      } catch {
        errors++;
      }
      done++;
      if (done >= nextSample) {
        nextSample += sampleEvery;
        sample(done);
      }
    }
  }),
);
const elapsed = performance.now() - t0;
// Let in-flight releases and their bookkeeping settle before the last sample.
await new Promise((resolve) => setTimeout(resolve, 200));
sample(done);
await redlock.close();

// Other loops keep running while one samples, so single samples jump with
// whatever is in flight; compare the medians of the first and last quarter.
const medianOf = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  return v[v.length >> 1];
};
const quarter = Math.max(1, Math.floor(samples.length / 4));
const early = samples.slice(0, quarter);
const late = samples.slice(-quarter);
const afterWarmup = samples[0];
const final = samples[samples.length - 1];
const maxRss = Math.max(...samples.map((s) => s.rss));
const rssEarly = medianOf(early.map((s) => s.rss));
const rssLate = medianOf(late.map((s) => s.rss));
process.stdout.write(
  `${JSON.stringify({
    pairs: done,
    errors,
    concurrency,
    elapsedMs: elapsed,
    gcExposed: typeof globalThis.gc === 'function',
    rssAfterWarmup: afterWarmup.rss,
    rssFinal: final.rss,
    rssMax: maxRss,
    rssEarly,
    rssLate,
    growth: (rssLate - rssEarly) / rssEarly,
    heapEarly: medianOf(early.map((s) => s.heapUsed)),
    heapLate: medianOf(late.map((s) => s.heapUsed)),
    heapAfterWarmup: afterWarmup.heapUsed,
    heapFinal: final.heapUsed,
    samples,
  })}\n`,
);
