import { metrics, trace } from '@opentelemetry/api';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { Redlock } from 'quorumlock';
import { instrumentQuorumlock } from 'quorumlock/otel';

// Your SDK setup; in production the exporters would be OTLP ones (or the SDK's NodeSDK).
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter: metricExporter });
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
const spanExporter = new InMemorySpanExporter();
trace.setGlobalTracerProvider(
  new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] }),
);

// One call wires quorumlock's diagnostics channels to the global providers.
const instrumentation = instrumentQuorumlock();

const nodes = (
  process.env.QUORUMLOCK_NODES ??
  'redis://127.0.0.1:6381,redis://127.0.0.1:6382,redis://127.0.0.1:6383'
).split(',');
const redlock = new Redlock(nodes);
const holder = await redlock.acquire('invoice:42');
console.log('while held, tryAcquire gives', await redlock.tryAcquire('invoice:42'));
await holder.release();
await redlock.close();

await reader.forceFlush();
for (const scope of metricExporter.getMetrics().at(-1)?.scopeMetrics ?? []) {
  for (const metric of scope.metrics) {
    for (const point of metric.dataPoints) {
      const value = /** @type {{ count?: number }} */ (point.value);
      console.log(
        metric.descriptor.name,
        metric.descriptor.unit,
        JSON.stringify(point.attributes),
        `count=${value.count ?? point.value}`,
      );
    }
  }
}
for (const span of spanExporter.getFinishedSpans()) {
  console.log('span', span.name, span.attributes['quorumlock.lock.outcome']);
}
instrumentation.unsubscribe();
