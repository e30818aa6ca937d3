/**
 * `quorumlock/otel`: turns quorumlock's diagnostics channels into
 * OpenTelemetry metrics and spans. Optional: it needs the peer dependency
 * `@opentelemetry/api`, and nothing of it runs (or is even loaded) unless
 * this module is imported and `instrumentQuorumlock()` is called.
 *
 * Names follow the semantic-convention habits: a `quorumlock.` namespace,
 * durations as histograms in seconds, the result as an attribute of the
 * duration (`quorumlock.lock.outcome`, plus `error.type` on failures), counts
 * with a `{unit}` annotation. Resource names are high-cardinality: they go on
 * spans, never on metrics.
 */
import diagnostics from 'node:diagnostics_channel';
import {
  type Attributes,
  type Counter,
  context,
  type Histogram,
  type Meter,
  type MeterProvider,
  metrics,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  trace,
  type UpDownCounter,
} from '@opentelemetry/api';
import { channels, type RoundEvent } from './diagnostics.js';

/** Options of instrumentQuorumlock. */
export interface QuorumlockInstrumentationOptions {
  /** Where metrics go; default: the global MeterProvider (`metrics.getMeterProvider()`). */
  readonly meterProvider?: MeterProvider;
  /** Where spans go; default: the global TracerProvider (`trace.getTracerProvider()`). */
  readonly tracerProvider?: TracerProvider;
  /** Record metrics (default true). */
  readonly metrics?: boolean;
  /** Record spans (default true). */
  readonly traces?: boolean;
  /** Put the lock's resource names on spans as `quorumlock.lock.resources` (default true). */
  readonly resourceNames?: boolean;
}

/** A running instrumentation; `unsubscribe()` (or `using`) stops it. */
export interface QuorumlockInstrumentation extends Disposable {
  /** Stops listening to the channels; safe to call twice. */
  unsubscribe(): void;
}

/** The instrumentation scope name of every meter and tracer this bridge uses. */
export const INSTRUMENTATION_SCOPE = 'quorumlock';

/** Metric names this bridge records, all under `quorumlock.`. */
export const metricNames = {
  /** Histogram, s: one acquire round (a waiting acquire makes several). */
  acquireDuration: 'quorumlock.lock.acquire.duration',
  /** Histogram, s: one extend round (renewals included). */
  extendDuration: 'quorumlock.lock.extend.duration',
  /** Histogram, s: one release. */
  releaseDuration: 'quorumlock.lock.release.duration',
  /** Counter, {lock}: held locks that were lost (renewal failed, or expired). */
  lost: 'quorumlock.lock.lost',
  /** UpDownCounter, {waiter}: acquisitions waiting for a lock another holder has. */
  waiters: 'quorumlock.lock.waiters',
} as const;

/** Bucket boundaries, s: from a sub-millisecond local round to a multi-second wait. */
const DURATION_BUCKETS = [
  0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** The message of `quorumlock:lost`. */
interface LostEvent {
  readonly resources: readonly string[];
  readonly reason: string;
  readonly error?: unknown;
}

/** The message of `quorumlock:wait`. */
interface WaitEvent {
  readonly resources: readonly string[];
  readonly waiting: boolean;
}

interface Instruments {
  readonly acquire: Histogram;
  readonly extend: Histogram;
  readonly release: Histogram;
  readonly lost: Counter;
  readonly waiters: UpDownCounter;
}

/**
 * Subscribes to quorumlock's diagnostics channels and records metrics and
 * spans until `unsubscribe()`. Spans start in the context that is active
 * where the lock call was made, so they nest under the caller's own span.
 */
export function instrumentQuorumlock(
  options: QuorumlockInstrumentationOptions = {},
): QuorumlockInstrumentation {
  const instruments =
    options.metrics === false
      ? undefined
      : makeInstruments(
          (options.meterProvider ?? metrics.getMeterProvider()).getMeter(INSTRUMENTATION_SCOPE),
        );
  const tracer =
    options.traces === false
      ? undefined
      : (options.tracerProvider ?? trace.getTracerProvider()).getTracer(INSTRUMENTATION_SCOPE);
  const names = options.resourceNames !== false;

  const handlers: Array<[string, (message: unknown) => void]> = [
    [
      channels.acquire,
      (m) => {
        const e = m as RoundEvent;
        const outcome = e.ok ? 'acquired' : (e.reason ?? 'failed');
        const attributes: Attributes = {
          'quorumlock.lock.outcome': outcome,
          ...(e.ok || outcome === 'taken' ? {} : { 'error.type': errorType(outcome, e.error) }),
        };
        instruments?.acquire.record(e.durationMs / 1000, attributes);
        if (tracer)
          roundSpan(tracer, 'quorumlock acquire', e, attributes, names, outcome === 'taken');
      },
    ],
    [
      channels.extend,
      (m) => {
        const e = m as RoundEvent;
        const attributes: Attributes = e.ok
          ? { 'quorumlock.lock.outcome': 'extended' }
          : { 'quorumlock.lock.outcome': 'failed', 'error.type': errorType('failed', e.error) };
        instruments?.extend.record(e.durationMs / 1000, attributes);
        if (tracer) roundSpan(tracer, 'quorumlock extend', e, attributes, names, false);
      },
    ],
    [
      channels.release,
      (m) => {
        const e = m as RoundEvent;
        const attributes: Attributes = e.ok
          ? { 'quorumlock.lock.outcome': 'released' }
          : { 'quorumlock.lock.outcome': 'failed', 'error.type': errorType('failed', e.error) };
        instruments?.release.record(e.durationMs / 1000, attributes);
        if (tracer) roundSpan(tracer, 'quorumlock release', e, attributes, names, false);
      },
    ],
    [
      channels.lost,
      (m) => {
        const e = m as LostEvent;
        const type = errorType('lost', e.error);
        instruments?.lost.add(1, { 'error.type': type });
        if (tracer) {
          const span = tracer.startSpan(
            'quorumlock lost',
            {
              kind: SpanKind.INTERNAL,
              attributes: {
                'error.type': type,
                ...(names ? { 'quorumlock.lock.resources': [...e.resources] } : {}),
              },
            },
            context.active(),
          );
          span.setStatus({ code: SpanStatusCode.ERROR, message: e.reason });
          span.end();
        }
      },
    ],
    [
      channels.wait,
      (m) => {
        const e = m as WaitEvent;
        instruments?.waiters.add(e.waiting ? 1 : -1);
      },
    ],
  ];
  for (const [name, handler] of handlers) diagnostics.subscribe(name, handler);

  let subscribed = true;
  const unsubscribe = () => {
    if (!subscribed) return;
    subscribed = false;
    for (const [name, handler] of handlers) diagnostics.unsubscribe(name, handler);
  };
  return { unsubscribe, [Symbol.dispose]: unsubscribe };
}

function makeInstruments(meter: Meter): Instruments {
  const duration = (name: string, description: string) =>
    meter.createHistogram(name, {
      description,
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    });
  return {
    acquire: duration(
      metricNames.acquireDuration,
      'Duration of one acquire round on the lock store (a waiting acquire makes several)',
    ),
    extend: duration(
      metricNames.extendDuration,
      'Duration of one extend round (renewals included)',
    ),
    release: duration(metricNames.releaseDuration, 'Duration of one release'),
    lost: meter.createCounter(metricNames.lost, {
      description: 'Held locks that were lost before their release',
      unit: '{lock}',
    }),
    waiters: meter.createUpDownCounter(metricNames.waiters, {
      description: 'Acquisitions waiting for a lock another holder has',
      unit: '{waiter}',
    }),
  };
}

/** A span covering a round that just ended `durationMs` ago. */
function roundSpan(
  tracer: Tracer,
  name: string,
  e: RoundEvent,
  attributes: Attributes,
  names: boolean,
  expected: boolean,
): void {
  const end = Date.now();
  const nodes = e.nodes ?? [];
  const span = tracer.startSpan(
    name,
    {
      kind: SpanKind.INTERNAL,
      startTime: end - e.durationMs,
      attributes: {
        ...attributes,
        ...(names ? { 'quorumlock.lock.resources': [...e.resources] } : {}),
        'quorumlock.lock.resource_count': e.resources.length,
        ...(nodes.length > 0
          ? {
              'quorumlock.nodes.count': nodes.length,
              'quorumlock.nodes.acquired': nodes.filter((n) => n.status === 'acquired').length,
            }
          : {}),
        ...fenceAttribute(e.fences),
      },
    },
    context.active(),
  );
  // A lock held by someone else is the normal answer of a contended round, not an error.
  if (!e.ok && !expected) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: String(attributes['error.type']) });
  }
  span.end(end);
}

function fenceAttribute(fences: RoundEvent['fences']): Attributes {
  if (!fences) return {};
  const values = Object.values(fences);
  return values.length === 0 ? {} : { 'quorumlock.lock.fence': Math.max(...values) };
}

/** `error.type`: the error's stable code when it has one, else the outcome. */
function errorType(fallback: string, error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : fallback;
}
