/**
 * The `--html FILE` report of `quorumlock bench`: one self-contained page
 * (inline SVG and CSS, no scripts, no external assets) with the latency
 * percentile curves, the nodes' round-trip times and the tables.
 */
import { type BenchResult, fmt, type LatencySummary } from './bench-report.js';

/** A named set of raw latencies (ms) to draw as a percentile curve. */
export interface Series {
  readonly name: string;
  readonly samplesMs: readonly number[];
  readonly color: string;
}

const WIDTH = 720;
const HEIGHT = 300;
const PAD = { left: 64, right: 150, top: 20, bottom: 44 };
/** Percentiles marked on the x axis. */
const TICKS = [0, 50, 90, 99, 99.9, 99.99];

/** The whole page. */
export function benchHtml(r: BenchResult, charts: { title: string; series: Series[] }[]): string {
  const body = [
    `<h1>quorumlock bench${r.quick ? ' <small>(--quick)</small>' : ''}</h1>`,
    `<p class="meta">${esc(r.backend)}, ${r.nodes.length} node(s), quorum ${r.quorum} · quorumlock ${esc(r.version)} · ${esc(r.date)}</p>`,
    '<h2>Nodes</h2>',
    rttChart(r),
    '<h2>Latency percentiles</h2>',
    '<p class="note">x: percentile (logarithmic toward the tail) · y: milliseconds · dashed: the physical limit (no acquire can be faster)</p>',
    ...charts.map((c) => `<h3>${esc(c.title)}</h3>${curveChart(c.series, r.rtt.physicalLimitMs)}`),
    '<h2>Numbers</h2>',
    table(r),
  ].join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>quorumlock bench ${esc(r.date)}</title>
<style>
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:900px;color:#1b1f24;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
h3{font-size:1rem;margin:1.2rem 0 .3rem} .meta,.note{color:#57606a} small{font-weight:normal;color:#57606a}
table{border-collapse:collapse;margin:.5rem 0} th,td{padding:.25rem .6rem;border-bottom:1px solid #eaeef2;text-align:right}
th:first-child,td:first-child{text-align:left} th{background:#f6f8fa}
svg{display:block;max-width:100%;height:auto} svg text{font:12px system-ui,sans-serif;fill:#3d444d}
</style></head><body>
${body}
</body></html>
`;
}

function x(p: number): number {
  // -log10(1 - p) spreads the tail: p0 at 0, p90 at 1, p99 at 2, p99.9 at 3.
  return p >= 100 ? 4 : -Math.log10(1 - p / 100);
}

function curveChart(series: readonly Series[], limitMs: number | null): string {
  const curves = series
    .filter((s) => s.samplesMs.length > 0)
    .map((s) => ({ ...s, sorted: [...s.samplesMs].sort((a, b) => a - b) }));
  if (curves.length === 0) return '<p class="note">no samples</p>';
  const maxX = Math.min(4, Math.max(...curves.map((c) => Math.log10(c.sorted.length))));
  const yMax = niceCeil(
    Math.max(limitMs ?? 0, ...curves.map((c) => c.sorted[c.sorted.length - 1]!)),
  );
  const w = WIDTH - PAD.left - PAD.right;
  const h = HEIGHT - PAD.top - PAD.bottom;
  const sx = (v: number) => PAD.left + (Math.min(v, maxX) / maxX) * w;
  const sy = (ms: number) => PAD.top + h - (ms / yMax) * h;
  const parts: string[] = [];
  // Axes and grid.
  for (const t of niceTicks(yMax)) {
    parts.push(
      `<line x1="${PAD.left}" x2="${PAD.left + w}" y1="${sy(t)}" y2="${sy(t)}" stroke="#eaeef2"/>`,
      `<text x="${PAD.left - 6}" y="${sy(t) + 4}" text-anchor="end">${tick(t)}</text>`,
    );
  }
  for (const p of TICKS) {
    if (x(p) > maxX + 1e-9) continue;
    parts.push(
      `<line x1="${sx(x(p))}" x2="${sx(x(p))}" y1="${PAD.top}" y2="${PAD.top + h}" stroke="#eaeef2"/>`,
      `<text x="${sx(x(p))}" y="${PAD.top + h + 16}" text-anchor="middle">p${p}</text>`,
    );
  }
  parts.push(
    `<text x="${PAD.left + w / 2}" y="${HEIGHT - 6}" text-anchor="middle">percentile</text>`,
    `<text transform="translate(14 ${PAD.top + h / 2}) rotate(-90)" text-anchor="middle">ms</text>`,
    `<rect x="${PAD.left}" y="${PAD.top}" width="${w}" height="${h}" fill="none" stroke="#8c959f"/>`,
  );
  if (limitMs !== null) {
    parts.push(
      `<line x1="${PAD.left}" x2="${PAD.left + w}" y1="${sy(limitMs)}" y2="${sy(limitMs)}" stroke="#cf222e" stroke-dasharray="5 4"/>`,
    );
  }
  curves.forEach((c, i) => {
    const points: string[] = [];
    for (let v = 0; v <= maxX + 1e-9; v += 0.02) {
      const p = 1 - 10 ** -v;
      const ms = c.sorted[Math.min(c.sorted.length - 1, Math.floor(p * c.sorted.length))]!;
      points.push(`${sx(v).toFixed(1)},${sy(ms).toFixed(1)}`);
    }
    points.push(`${sx(maxX).toFixed(1)},${sy(c.sorted[c.sorted.length - 1]!).toFixed(1)}`);
    parts.push(
      `<polyline fill="none" stroke="${c.color}" stroke-width="2" points="${points.join(' ')}"/>`,
      `<line x1="${PAD.left + w + 12}" x2="${PAD.left + w + 30}" y1="${PAD.top + 10 + i * 20}" y2="${PAD.top + 10 + i * 20}" stroke="${c.color}" stroke-width="3"/>`,
      `<text x="${PAD.left + w + 36}" y="${PAD.top + 14 + i * 20}">${esc(c.name)}</text>`,
    );
  });
  if (limitMs !== null) {
    const y = PAD.top + 10 + curves.length * 20;
    parts.push(
      `<line x1="${PAD.left + w + 12}" x2="${PAD.left + w + 30}" y1="${y}" y2="${y}" stroke="#cf222e" stroke-dasharray="5 4"/>`,
      `<text x="${PAD.left + w + 36}" y="${y + 4}">physical limit</text>`,
    );
  }
  return `<svg viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img">${parts.join('')}</svg>`;
}

function rttChart(r: BenchResult): string {
  const rows = r.rtt.nodes;
  if (rows.length === 0) {
    return `<p class="note">Round trips are measured for Redis nodes only, not for ${esc(r.backend)}.</p>`;
  }
  const rowH = 26;
  const height = PAD.top + rows.length * rowH + 40;
  const labelW = 170;
  const w = WIDTH - labelW - 90;
  const max = niceCeil(Math.max(0.001, ...rows.map((n) => n.rtt?.p99Ms ?? 0)));
  const sx = (ms: number) => labelW + (ms / max) * w;
  const parts: string[] = [];
  for (const t of niceTicks(max)) {
    parts.push(
      `<line x1="${sx(t)}" x2="${sx(t)}" y1="${PAD.top - 6}" y2="${PAD.top + rows.length * rowH}" stroke="#eaeef2"/>`,
      `<text x="${sx(t)}" y="${PAD.top + rows.length * rowH + 16}" text-anchor="middle">${tick(t)}</text>`,
    );
  }
  rows.forEach((n, i) => {
    const y = PAD.top + i * rowH;
    parts.push(`<text x="${labelW - 8}" y="${y + 15}" text-anchor="end">${esc(n.node)}</text>`);
    if (n.ok && n.rtt) {
      parts.push(
        `<rect x="${labelW}" y="${y + 4}" width="${Math.max(1, sx(n.rtt.p50Ms) - labelW)}" height="${rowH - 10}" fill="#0969da"/>`,
        `<line x1="${sx(n.rtt.p50Ms)}" x2="${sx(n.rtt.p99Ms)}" y1="${y + rowH / 2 - 1}" y2="${y + rowH / 2 - 1}" stroke="#57606a"/>`,
        `<line x1="${sx(n.rtt.p99Ms)}" x2="${sx(n.rtt.p99Ms)}" y1="${y + 6}" y2="${y + rowH - 8}" stroke="#57606a"/>`,
        `<text x="${sx(n.rtt.p99Ms) + 6}" y="${y + 15}">${fmt(n.rtt.p50Ms)} / ${fmt(n.rtt.p99Ms)} ms</text>`,
      );
    } else {
      parts.push(
        `<text x="${labelW + 4}" y="${y + 15}" fill="#cf222e">unreachable: ${esc(n.error ?? 'no answer')}</text>`,
      );
    }
  });
  if (r.rtt.physicalLimitMs !== null) {
    const lx = sx(r.rtt.physicalLimitMs);
    parts.push(
      `<line x1="${lx}" x2="${lx}" y1="${PAD.top - 8}" y2="${PAD.top + rows.length * rowH}" stroke="#cf222e" stroke-dasharray="5 4"/>`,
    );
  }
  parts.push(
    `<text x="${labelW + w / 2}" y="${height - 4}" text-anchor="middle">PING round trip, ms (bar: p50, whisker: p99, dashed: physical limit)</text>`,
  );
  return `<svg viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}" role="img">${parts.join('')}</svg>`;
}

function table(r: BenchResult): string {
  const row = (name: string, s: LatencySummary) =>
    `<tr><td>${esc(name)}</td><td>${s.count}</td>${[s.p50Ms, s.p90Ms, s.p99Ms, s.p999Ms, s.maxMs, s.meanMs].map((v) => `<td>${fmt(v)}</td>`).join('')}</tr>`;
  return `<table><thead><tr><th>latency (ms)</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>mean</th></tr></thead><tbody>
${row('sequential acquire', r.sequential.acquire)}
${row('sequential release', r.sequential.release)}
${row(`acquire at concurrency ${r.throughput.concurrency}`, r.throughput.acquire)}
${row(`contended handoff (${r.contended.clients} clients)`, r.contended.handoff)}
</tbody></table>
<table><tbody>
<tr><td>acquire+release cycles/s at concurrency ${r.throughput.concurrency}</td><td>${r.throughput.cyclesPerSecond.toFixed(0)}</td></tr>
<tr><td>contended acquisitions/s (${r.contended.clients} clients, hold ${r.contended.holdMs} ms)</td><td>${r.contended.acquisitionsPerSecond.toFixed(0)}</td></tr>
<tr><td>physical limit (ms)</td><td>${r.rtt.physicalLimitMs === null ? 'unknown' : fmt(r.rtt.physicalLimitMs)}</td></tr>
</tbody></table>`;
}

/** The smallest 1, 2 or 5 × 10^k at or above `v`. */
function niceCeil(v: number): number {
  if (v <= 0) return 1;
  const k = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * k >= v) return m * k;
  return 10 * k;
}

function niceTicks(max: number): number[] {
  const step = niceCeil(max / 5);
  const ticks: number[] = [];
  for (let t = 0; t <= max + step / 1000; t += step) ticks.push(Number(t.toPrecision(6)));
  return ticks;
}

/** An axis label: as few digits as the tick needs (0.5, 2, 10). */
function tick(v: number): string {
  return String(Number(v.toPrecision(3)));
}

function esc(text: string): string {
  return text.replace(
    /[&<>"]/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c,
  );
}
