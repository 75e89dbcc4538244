// Live view: events per second, latency percentiles per stage and consumer lag, polled
// every 2 seconds from GET /v1/live/pipeline.
import { ErrorBox, fmtNum, html, usePolled } from './ui.js';

function RateChart({ points }) {
  const max = Math.max(1, ...points.map((p) => p.count));
  const w = 600;
  const h = 120;
  const step = w / points.length;
  const last = points.slice(-10);
  const rate = last.reduce((a, p) => a + p.count, 0) / Math.max(1, last.length);
  return html`
    <figure class="chart-figure">
      <svg class="chart" viewBox=${`0 0 ${w} ${h + 20}`} role="img"
        aria-label=${`Events per second over the last minute; ${rate.toFixed(1)} per second over the last 10 s, peak ${max}`}>
        ${points.map((p, i) => {
          const bh = (p.count / max) * h;
          return html`<rect key=${i} x=${i * step + 1} y=${h - bh + 4} width=${Math.max(1, step - 2)} height=${bh} fill="#2f6fde"><title>${`${p.t.slice(11, 19)}: ${p.count}`}</title></rect>`;
        })}
        <text x="4" y=${h + 18} class="axis">−60 s</text>
        <text x=${w - 30} y=${h + 18} class="axis">now</text>
      </svg>
      <figcaption><strong data-testid="events-rate">${rate.toFixed(1)}</strong> events/s (last 10 s) · peak ${fmtNum(max)}/s</figcaption>
    </figure>`;
}

export function LiveView() {
  const [s, error] = usePolled('/v1/live/pipeline');
  const ms = (v) => (v === null ? '—' : `${fmtNum(v)} ms`);
  return html`
    <section aria-labelledby="live-title">
      <h1 id="live-title">Live</h1>
      <${ErrorBox} error=${error} />
      ${
        s === null
          ? error
            ? null
            : html`<p class="muted">Loading…</p>`
          : html`
        <h2>Events per second</h2>
        ${s.events.total === 0 ? html`<p class="muted">No events in the last minute.</p>` : null}
        <${RateChart} points=${s.events.perSecond} />
        <h2>Latency per stage <span class="muted small">(last 5 minutes)</span></h2>
        <div class="table-wrap"><table>
          <thead><tr><th scope="col">Stage</th><th scope="col">Count</th><th scope="col">p50</th><th scope="col">p95</th><th scope="col">p99</th></tr></thead>
          <tbody>${s.stages.map(
            (
              x,
            ) => html`<tr key=${x.stage}><th scope="row">${x.stage}<br /><span class="muted small">${x.description}</span></th>
              <td>${fmtNum(x.count)}</td><td>${ms(x.p50)}</td><td>${ms(x.p95)}</td><td>${ms(x.p99)}</td></tr>`,
          )}</tbody>
        </table></div>
        <h2>Consumer lag <span class="muted small">(whole deployment)</span></h2>
        ${s.lagError ? html`<p class="error" role="status">${s.lagError}</p>` : null}
        ${
          s.lag === null
            ? null
            : html`<div class="table-wrap"><table data-testid="lag">
          <thead><tr><th scope="col">Consumer group</th><th scope="col">Topic</th><th scope="col">Partitions</th><th scope="col">Lag (messages)</th></tr></thead>
          <tbody>${s.lag.map(
            (l) =>
              html`<tr key=${`${l.group}/${l.topic}`}><td>${l.group}</td><td>${l.topic}</td><td>${l.partitions}</td><td>${l.lag === null ? '—' : fmtNum(l.lag)}</td></tr>`,
          )}</tbody>
        </table></div>`
        }`
      }
    </section>`;
}
