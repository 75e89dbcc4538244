// Small SVG charts (no chart library): horizontal bars and grouped bars. Each chart has a
// text alternative (role="img" + aria-label) and the numbers are also in a table beside it.
import { html } from './ui.js';

const COLORS = ['#2f6fde', '#e07b39', '#3a9e5c', '#9b59b6', '#c0392b', '#16a085'];

/** rows: [{label, value, note?}] as horizontal bars scaled to the largest value. */
export function BarChart({ rows, label, format = (v) => String(v) }) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  const rowH = 28;
  const h = rows.length * rowH + 4;
  return html`
    <svg class="chart" viewBox=${`0 0 600 ${h}`} preserveAspectRatio="xMinYMin meet" role="img" aria-label=${label}>
      ${rows.map((r, i) => {
        const w = Math.max(1, (r.value / max) * 380);
        const y = i * rowH + 2;
        return html`<g key=${i}>
          <text x="0" y=${y + 17} class="axis">${r.label.length > 22 ? `${r.label.slice(0, 21)}…` : r.label}</text>
          <rect x="170" y=${y + 4} width=${w} height=${rowH - 10} rx="3" fill=${COLORS[0]} />
          <text x=${176 + w} y=${y + 17} class="value">${format(r.value)}${r.note ? ` · ${r.note}` : ''}</text>
        </g>`;
      })}
    </svg>`;
}

/** groups: [{label, values: {series: number}}], series: names, as grouped vertical bars. */
export function GroupedBars({ groups, series, label }) {
  const max = Math.max(1e-9, ...groups.flatMap((g) => series.map((s) => g.values[s] ?? 0)));
  const groupW = Math.max(40, series.length * 14 + 16);
  const w = Math.max(300, groups.length * groupW + 40);
  const h = 220;
  const barW = (groupW - 16) / series.length;
  return html`
    <figure class="chart-figure">
      <svg class="chart" viewBox=${`0 0 ${w} ${h + 40}`} preserveAspectRatio="xMinYMin meet" role="img" aria-label=${label}>
        <line x1="30" y1=${h} x2=${w} y2=${h} class="gridline" />
        ${groups.map((g, gi) =>
          series.map((s, si) => {
            const v = g.values[s] ?? 0;
            const bh = (v / max) * (h - 20);
            return html`<rect key=${`${gi}-${si}`} x=${38 + gi * groupW + si * barW} y=${h - bh} width=${barW - 2}
              height=${bh} fill=${COLORS[si % COLORS.length]}><title>${`${g.label} · ${s}: ${v}`}</title></rect>`;
          }),
        )}
        ${groups.map(
          (g, gi) =>
            html`<text key=${gi} x=${38 + gi * groupW} y=${h + 16} class="axis">${g.label.length > 8 ? `${g.label.slice(0, 7)}…` : g.label}</text>`,
        )}
      </svg>
      <figcaption class="legend">${series.map(
        (s, i) =>
          html`<span key=${s}><i class="swatch" style=${{ background: COLORS[i % COLORS.length] }}></i>${s}</span>`,
      )}</figcaption>
    </figure>`;
}
