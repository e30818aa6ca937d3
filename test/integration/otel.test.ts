/**
 * quorumlock/otel against real Redis: the bridge turns the diagnostics
 * channels into the documented metrics and spans, read back through the
 * SDK's in-memory exporters.
 */
import diagnostics from 'node:diagnostics_channel';
import { once } from 'node:events';
import { SpanStatusCode } from '@opentelemetry/api';
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import * as traceSdk from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { channels, Redlock } from '../../src/index.js';
import {
  instrumentQuorumlock,
  metricNames,
  type QuorumlockInstrumentation,
} from '../../src/otel.js';
import { type Ensemble, startEnsemble } from '../harness/ensemble.js';

let ensemble: Ensemble;
let metricExporter: InMemoryMetricExporter;
let reader: PeriodicExportingMetricReader;
let meterProvider: MeterProvider;
let spanExporter: traceSdk.InMemorySpanExporter;
let tracerProvider: traceSdk.BasicTracerProvider;
let bridge: QuorumlockInstrumentation;

beforeAll(async () => {
  ensemble = await startEnsemble({ size: 3 });
});

afterAll(async () => {
  await ensemble?.stop();
});

beforeEach(() => {
  metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  // Exports only when flushed by the test: the interval is never reached.
  reader = new PeriodicExportingMetricReader({
    exporter: metricExporter,
    exportIntervalMillis: 3_600_000,
  });
  meterProvider = new MeterProvider({ readers: [reader] });
  spanExporter = new traceSdk.InMemorySpanExporter();
  tracerProvider = new traceSdk.BasicTracerProvider({
    spanProcessors: [new traceSdk.SimpleSpanProcessor(spanExporter)],
  });
  bridge = instrumentQuorumlock({ meterProvider, tracerProvider });
});

afterEach(async () => {
  bridge.unsubscribe();
  await meterProvider.shutdown();
  await tracerProvider.shutdown();
  await Promise.all(ensemble.nodes.map((n) => n.flush()));
});

/** Every data point of the metric `name` recorded so far. */
async function points(name: string): Promise<{ unit: string; points: DataPoint<unknown>[] }> {
  await reader.forceFlush();
  const exports = metricExporter.getMetrics();
  const last = exports[exports.length - 1];
  for (const scope of last?.scopeMetrics ?? []) {
    for (const metric of scope.metrics) {
      if (metric.descriptor.name === name) {
        return { unit: metric.descriptor.unit, points: metric.dataPoints };
      }
    }
  }
  return { unit: '', points: [] };
}

function histogramCount(p: DataPoint<unknown>): number {
  return (p.value as Histogram).count;
}

describe('quorumlock/otel', () => {
  it('records an acquire and a release as duration histograms in seconds with their outcome, and a span each', async () => {
    const redlock = new Redlock(ensemble.urls, { ttl: 5_000 });
    try {
      const lock = await redlock.acquire('otel:invoice:42');
      await lock.release();

      const acquire = await points(metricNames.acquireDuration);
      expect(acquire.unit).toBe('s');
      expect(acquire.points).toHaveLength(1);
      expect(acquire.points[0]!.attributes).toEqual({ 'quorumlock.lock.outcome': 'acquired' });
      expect(histogramCount(acquire.points[0]!)).toBe(1);
      // A round on loopback takes well under a second: the value is in seconds, not ms.
      expect((acquire.points[0]!.value as Histogram).sum).toBeLessThan(1);

      const release = await points(metricNames.releaseDuration);
      expect(release.unit).toBe('s');
      expect(release.points.map((p) => p.attributes)).toEqual([
        { 'quorumlock.lock.outcome': 'released' },
      ]);

      const spans = spanExporter.getFinishedSpans();
      const acquireSpan = spans.find((s) => s.name === 'quorumlock acquire');
      expect(acquireSpan?.attributes).toMatchObject({
        'quorumlock.lock.outcome': 'acquired',
        'quorumlock.lock.resources': ['otel:invoice:42'],
        'quorumlock.lock.fence': lock.fence,
        'quorumlock.nodes.count': 3,
      });
      expect(acquireSpan?.status.code).toBe(SpanStatusCode.UNSET);
      expect(spans.map((s) => s.name)).toContain('quorumlock release');
    } finally {
      await redlock.close();
    }
  });

  it('records a round lost to another holder as outcome taken, without an error status', async () => {
    const holder = new Redlock(ensemble.urls, { ttl: 5_000 });
    const other = new Redlock(ensemble.urls, { ttl: 5_000 });
    try {
      const lock = await holder.acquire('otel:busy');
      expect(await other.tryAcquire('otel:busy')).toBeNull();
      await lock.release();

      const acquire = await points(metricNames.acquireDuration);
      const outcomes = acquire.points.map((p) => p.attributes['quorumlock.lock.outcome']).sort();
      expect(outcomes).toEqual(['acquired', 'taken']);
      const taken = spanExporter
        .getFinishedSpans()
        .find((s) => s.attributes['quorumlock.lock.outcome'] === 'taken');
      expect(taken?.status.code).toBe(SpanStatusCode.UNSET);
    } finally {
      await holder.close();
      await other.close();
    }
  });

  it('counts a lost lock and ends an error span with its error code', async () => {
    // Renewed every second or so: a ttl a loaded machine keeps until the nodes forget it.
    const redlock = new Redlock(ensemble.urls, { ttl: 3_000 });
    try {
      const lock = await redlock.acquire('otel:lost', { renew: true });
      // Every node forgets the lock: the next renewal finds it gone.
      await Promise.all(ensemble.nodes.map((n) => n.flush()));
      if (!lock.signal.aborted) await once(lock.signal, 'abort');
      const code = (lock.signal.reason as { code: string }).code;

      const lost = await points(metricNames.lost);
      expect(lost.unit).toBe('{lock}');
      expect(lost.points.map((p) => [p.attributes, p.value])).toEqual([
        [{ 'error.type': code }, 1],
      ]);
      const span = spanExporter.getFinishedSpans().find((s) => s.name === 'quorumlock lost');
      expect(span?.status.code).toBe(SpanStatusCode.ERROR);
      expect(span?.attributes['quorumlock.lock.resources']).toEqual(['otel:lost']);
      const extend = await points(metricNames.extendDuration);
      expect(extend.points.map((p) => p.attributes['quorumlock.lock.outcome'])).toContain('failed');
    } finally {
      await redlock.close();
    }
  });

  it('counts waiters up and down from the wait channel', async () => {
    const wait = diagnostics.channel(channels.wait);
    wait.publish({ resources: ['a'], waiting: true });
    wait.publish({ resources: ['b'], waiting: true });
    wait.publish({ resources: ['a'], waiting: false });
    const waiters = await points(metricNames.waiters);
    expect(waiters.unit).toBe('{waiter}');
    expect(waiters.points.map((p) => p.value)).toEqual([1]);
  });

  it('counts a real waiter up while it waits and down once it holds the lock', async () => {
    const redlock = new Redlock(ensemble.urls, { ttl: 5_000 });
    try {
      const held = await redlock.acquire('otel:wait');
      const other = new Redlock(ensemble.urls, { ttl: 5_000 });
      try {
        const waiting = other.acquire('otel:wait', { wait: 5_000 });
        let seen: number[] = [];
        for (let i = 0; i < 100 && !seen.includes(1); i++) {
          await new Promise((r) => setTimeout(r, 20));
          seen = (await points(metricNames.waiters)).points.map((p) => Number(p.value));
        }
        expect(seen).toEqual([1]);
        await held.release();
        await (await waiting).release();
        expect((await points(metricNames.waiters)).points.map((p) => p.value)).toEqual([0]);
      } finally {
        await other.close();
      }
    } finally {
      await redlock.close();
    }
  });

  it('keeps resource names off spans when asked, and never puts them on metrics', async () => {
    bridge.unsubscribe();
    bridge = instrumentQuorumlock({ meterProvider, tracerProvider, resourceNames: false });
    const redlock = new Redlock(ensemble.urls, { ttl: 5_000 });
    try {
      await (await redlock.acquire('otel:secret-customer')).release();
      for (const span of spanExporter.getFinishedSpans()) {
        expect(span.attributes['quorumlock.lock.resources']).toBeUndefined();
      }
      const acquire = await points(metricNames.acquireDuration);
      expect(JSON.stringify(acquire.points)).not.toContain('secret-customer');
    } finally {
      await redlock.close();
    }
  });

  it('stops recording and leaves the channels without subscribers once unsubscribed', async () => {
    bridge.unsubscribe();
    bridge.unsubscribe();
    for (const name of Object.values(channels)) {
      expect(diagnostics.channel(name).hasSubscribers, name).toBe(false);
    }
    const redlock = new Redlock(ensemble.urls, { ttl: 5_000 });
    try {
      await (await redlock.acquire('otel:after')).release();
    } finally {
      await redlock.close();
    }
    expect((await points(metricNames.acquireDuration)).points).toEqual([]);
    expect(spanExporter.getFinishedSpans()).toEqual([]);
  });
});
