// Analytics: funnel, retention, attribution and trends over the ClickHouse history, each with an
// SVG chart, the numbers in a table, and a CSV download of the same rows (Accept: text/csv).
import { useState } from '/console/vendor/hooks.mjs';
import { BarChart, GroupedBars } from './charts.js';
import { api, download, ErrorBox, Field, fmtNum, html } from './ui.js';

const day = 86_400_000;
const isoDate = (ms) => new Date(ms).toISOString().slice(0, 10);
const defaultRange = () => ({ from: isoDate(Date.now() - 30 * day), to: isoDate(Date.now() + day) });
const MODELS = ['first_touch', 'last_touch', 'linear', 'time_decay', 'position_based'];
const TABS = [
  ['funnel', 'Funnel'],
  ['retention', 'Retention'],
  ['attribution', 'Attribution'],
  ['trends', 'Trends'],
];

export function AnalyticsScreen({ tab }) {
  const current = TABS.some(([t]) => t === tab) ? tab : 'funnel';
  return html`
    <section aria-labelledby="analytics-title">
      <h1 id="analytics-title">Analytics</h1>
      <nav class="tabs" aria-label="Analytics reports">
        ${TABS.map(([t, label]) => html`<a href=${`#/analytics/${t}`} aria-current=${t === current ? 'page' : undefined}>${label}</a>`)}
      </nav>
      ${current === 'funnel' ? html`<${Funnel} />` : current === 'retention' ? html`<${Retention} />` : current === 'trends' ? html`<${Trends} />` : html`<${Attribution} />`}
    </section>`;
}

/** Runs a report; `csv()` downloads the same request as CSV. */
function useReport(path) {
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [last, setLast] = useState(null);
  const run = async (body) => {
    setBusy(true);
    setError(null);
    try {
      setResult(await api(`/v1/analytics/${path}`, { method: 'POST', body }));
      setLast(body);
    } catch (err) {
      setResult(null);
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const csv = async () => {
    try {
      download(
        `${path}.csv`,
        await api(`/v1/analytics/${path}`, { method: 'POST', body: last, accept: 'text/csv' }),
      );
    } catch (err) {
      setError(err);
    }
  };
  return { result, error, busy, run, csv };
}

const Range = ({ range, setRange }) => html`
  <${Field} label="From"><input type="date" value=${range.from} required onInput=${(e) => setRange({ ...range, from: e.currentTarget.value })} /><//>
  <${Field} label="To (exclusive)"><input type="date" value=${range.to} required onInput=${(e) => setRange({ ...range, to: e.currentTarget.value })} /><//>`;

const Actions = ({ r }) => html`
  <div class="row actions">
    <button type="submit" class="primary" disabled=${r.busy}>${r.busy ? 'Running…' : 'Run'}</button>
    ${r.result ? html`<button type="button" onClick=${r.csv}>Download CSV</button>` : null}
  </div>
  <${ErrorBox} error=${r.error} />`;

function Funnel() {
  const [steps, setSteps] = useState(['', '']);
  const [win, setWin] = useState('1d');
  const [range, setRange] = useState(defaultRange);
  const r = useReport('funnel');
  const submit = (e) => {
    e.preventDefault();
    r.run({ steps: steps.filter((s) => s.trim()).map((s) => ({ event: s.trim() })), window: win, ...range });
  };
  return html`
    <form class="stack" onSubmit=${submit}>
      <div class="row">
        ${steps.map(
          (s, i) => html`<${Field} key=${i} label=${`Step ${i + 1} event`}>
            <input value=${s} required onInput=${(e) => setSteps(steps.map((x, j) => (j === i ? e.currentTarget.value : x)))} />
          <//>`,
        )}
        <button type="button" class="small" onClick=${() => setSteps([...steps, ''])} disabled=${steps.length >= 10}>+ Step</button>
        ${steps.length > 2 ? html`<button type="button" class="small" onClick=${() => setSteps(steps.slice(0, -1))}>− Step</button>` : null}
      </div>
      <div class="row">
        <${Field} label="Window" hint="e.g. 30m, 1d, 7d"><input value=${win} required onInput=${(e) => setWin(e.currentTarget.value)} /><//>
        <${Range} range=${range} setRange=${setRange} />
      </div>
      <${Actions} r=${r} />
    </form>
    ${
      r.result &&
      (r.result.steps[0]?.count === 0
        ? html`<p class="empty">No one did the first step in this range.</p>`
        : html`
      <${BarChart} label="Funnel: persons per step" format=${fmtNum}
        rows=${r.result.steps.map((s, i) => ({ label: `${i + 1}. ${s.event}`, value: s.count, note: `${Math.round(s.conversionRate * 1000) / 10}%` }))} />
      <div class="table-wrap"><table><thead><tr><th scope="col">Step</th><th scope="col">Event</th><th scope="col">Persons</th><th scope="col">Conversion</th></tr></thead>
      <tbody>${r.result.steps.map((s, i) => html`<tr><td>${i + 1}</td><td>${s.event}</td><td>${fmtNum(s.count)}</td><td>${(s.conversionRate * 100).toFixed(1)}%</td></tr>`)}</tbody></table></div>`)
    }`;
}

function Retention() {
  const [f, setF] = useState({ cohortEvent: '', returnEvent: '', period: 'week', periods: '4' });
  const [range, setRange] = useState(defaultRange);
  const r = useReport('retention');
  const submit = (e) => {
    e.preventDefault();
    r.run({
      cohortEvent: f.cohortEvent.trim(),
      returnEvent: f.returnEvent.trim(),
      period: f.period,
      periods: Number(f.periods),
      ...range,
    });
  };
  const cohorts = r.result?.cohorts ?? [];
  return html`
    <form class="stack" onSubmit=${submit}>
      <div class="row">
        <${Field} label="Cohort event"><input value=${f.cohortEvent} required onInput=${(e) => setF({ ...f, cohortEvent: e.currentTarget.value })} /><//>
        <${Field} label="Return event"><input value=${f.returnEvent} required onInput=${(e) => setF({ ...f, returnEvent: e.currentTarget.value })} /><//>
        <${Field} label="Period"><select onChange=${(e) => setF({ ...f, period: e.currentTarget.value })}>
          <option value="day" selected=${f.period === 'day'}>day</option><option value="week" selected=${f.period === 'week'}>week</option></select><//>
        <${Field} label="Periods"><input class="num" type="number" min="1" max="100" value=${f.periods} onInput=${(e) => setF({ ...f, periods: e.currentTarget.value })} /><//>
        <${Range} range=${range} setRange=${setRange} />
      </div>
      <${Actions} r=${r} />
    </form>
    ${
      r.result &&
      (cohorts.length === 0
        ? html`<p class="empty">No cohort in this range.</p>`
        : html`
      <${BarChart} label="Average share of the cohort returning, per period" format=${(v) => `${v}%`}
        rows=${Array.from({ length: Number(f.periods) }, (_, k) => {
          const size = cohorts.reduce((a, c) => a + c.size, 0);
          const back = cohorts.reduce((a, c) => a + (c.returned[k] ?? 0), 0);
          return { label: `${f.period} ${k}`, value: size ? Math.round((back / size) * 1000) / 10 : 0 };
        })} />
      <div class="table-wrap"><table class="heat"><thead><tr><th scope="col">Cohort</th><th scope="col">Size</th>
        ${cohorts[0].returned.map((_, k) => html`<th scope="col">${k}</th>`)}</tr></thead>
      <tbody>${cohorts.map(
        (c) => html`<tr><th scope="row">${c.start.slice(0, 10)}</th><td>${fmtNum(c.size)}</td>
          ${c.returned.map((n) => {
            const share = c.size ? n / c.size : 0;
            return html`<td style=${{ background: `rgba(47,111,222,${(share * 0.8).toFixed(2)})`, color: share > 0.5 ? '#fff' : 'inherit' }}>${fmtNum(n)}</td>`;
          })}</tr>`,
      )}</tbody></table></div>`)
    }`;
}

function Attribution() {
  const [f, setF] = useState({
    conversionEvent: '',
    touchpoint: 'context.campaign.name',
    lookback: '30d',
    value: '',
    models: ['first_touch', 'last_touch', 'linear'],
    sends: false,
    sendsBy: 'campaign',
  });
  const [range, setRange] = useState(defaultRange);
  const r = useReport('attribution');
  const submit = (e) => {
    e.preventDefault();
    r.run({
      conversionEvent: f.conversionEvent.trim(),
      // with sends counted as touches, the touchpoint field may be left empty
      ...(f.touchpoint.trim() ? { touchpoint: f.touchpoint.trim() } : {}),
      ...(f.sends ? { sends: { by: f.sendsBy } } : {}),
      models: f.models,
      lookback: f.lookback,
      ...(f.value.trim() ? { value: f.value.trim() } : {}),
      ...range,
    });
  };
  const rows = r.result?.rows ?? [];
  const touchpoints = [...new Set(rows.map((x) => x.touchpoint))];
  return html`
    <form class="stack" onSubmit=${submit}>
      <div class="row">
        <${Field} label="Conversion event"><input value=${f.conversionEvent} required onInput=${(e) => setF({ ...f, conversionEvent: e.currentTarget.value })} /><//>
        <${Field} label=${f.sends ? 'Touchpoint field (optional)' : 'Touchpoint field'}><input value=${f.touchpoint} required=${!f.sends} onInput=${(e) => setF({ ...f, touchpoint: e.currentTarget.value })} /><//>
        <${Field} label="Lookback"><input value=${f.lookback} required onInput=${(e) => setF({ ...f, lookback: e.currentTarget.value })} /><//>
        <${Field} label="Value field (optional)"><input value=${f.value} placeholder="properties.revenue" onInput=${(e) => setF({ ...f, value: e.currentTarget.value })} /><//>
        <${Range} range=${range} setRange=${setRange} />
      </div>
      <div class="row">
        <label class="check"><input type="checkbox" checked=${f.sends} onChange=${(e) => setF({ ...f, sends: e.currentTarget.checked })} /><span>Count messages sent as touches</span></label>
        ${f.sends ? html`<${Field} label="Name sends by"><select value=${f.sendsBy} onChange=${(e) => setF({ ...f, sendsBy: e.currentTarget.value })}><option value="campaign">campaign or journey step</option><option value="channel">channel</option></select><//>` : null}
      </div>
      <fieldset class="row"><legend>Models</legend>
        ${MODELS.map(
          (m) => html`<label class="check" key=${m}><input type="checkbox" checked=${f.models.includes(m)}
            onChange=${(e) => setF({ ...f, models: e.currentTarget.checked ? [...f.models, m] : f.models.filter((x) => x !== m) })} /><span>${m}</span></label>`,
        )}
      </fieldset>
      <${Actions} r=${r} />
    </form>
    ${
      r.result &&
      (rows.length === 0
        ? html`<p class="empty">No attributed conversions in this range (${fmtNum(r.result.unattributed)} without a touch).</p>`
        : html`
      <${GroupedBars} label="Conversions credited per touchpoint and model" series=${f.models}
        groups=${touchpoints.map((t) => ({ label: t, values: Object.fromEntries(rows.filter((x) => x.touchpoint === t).map((x) => [x.model, x.conversions])) }))} />
      <p class="muted">${fmtNum(r.result.unattributed)} conversions had no touch.</p>
      <div class="table-wrap"><table><thead><tr><th scope="col">Touchpoint</th><th scope="col">Model</th><th scope="col">Conversions</th><th scope="col">Value</th></tr></thead>
      <tbody>${rows.map((x) => html`<tr><td>${x.touchpoint}</td><td>${x.model}</td><td>${fmtNum(Math.round(x.conversions * 100) / 100)}</td><td>${fmtNum(Math.round(x.value * 100) / 100)}</td></tr>`)}</tbody></table></div>`)
    }`;
}

/** A bucket's start as its interval reads: a date, or a date and hour (UTC, as the buckets are). */
const bucketLabel = (t, interval) =>
  interval === 'hour' ? `${t.slice(0, 13).replace('T', ' ')}:00` : t.slice(0, 10);

function Trends() {
  const [f, setF] = useState({ event: '', interval: 'day', measure: 'events', breakdown: '' });
  const [range, setRange] = useState(() => ({
    from: isoDate(Date.now() - 7 * day),
    to: isoDate(Date.now() + day),
  }));
  const [shown, setShown] = useState(null);
  const r = useReport('trends');
  const submit = (e) => {
    e.preventDefault();
    setShown(f);
    r.run({
      event: f.event.trim(),
      interval: f.interval,
      measure: f.measure,
      ...(f.breakdown.trim() ? { breakdown: f.breakdown.trim() } : {}),
      ...range,
    });
  };
  const series = r.result?.series ?? [];
  const keys = series.map((x) => x.key ?? '');
  const times = series[0]?.points.map((p) => p.t) ?? [];
  const at = (x, i) => x.points[i]?.count ?? 0;
  const total = series.reduce((a, x) => a + x.points.reduce((b, p) => b + p.count, 0), 0);
  const noun = shown?.measure === 'persons' ? 'Persons' : 'Events';
  const label = (t) => bucketLabel(t, shown?.interval);
  // under grouped bars there is room for little: 12-05, or 05 14h (the table has the full dates)
  const short = (t) =>
    shown?.interval === 'hour' ? `${t.slice(8, 10)} ${t.slice(11, 13)}h` : t.slice(5, 10);
  return html`
    <form class="stack" onSubmit=${submit}>
      <div class="row">
        <${Field} label="Event"><input value=${f.event} required onInput=${(e) => setF({ ...f, event: e.currentTarget.value })} /><//>
        <${Field} label="Interval"><select value=${f.interval} onChange=${(e) => setF({ ...f, interval: e.currentTarget.value })}>
          <option value="hour">hour</option><option value="day">day</option><option value="week">week</option></select><//>
        <${Field} label="Count"><select value=${f.measure} onChange=${(e) => setF({ ...f, measure: e.currentTarget.value })}>
          <option value="events">events</option><option value="persons">persons</option></select><//>
        <${Field} label="Breakdown (optional)" hint="a field such as properties.plan or context.campaign.name">
          <input value=${f.breakdown} onInput=${(e) => setF({ ...f, breakdown: e.currentTarget.value })} /><//>
        <${Range} range=${range} setRange=${setRange} />
      </div>
      <${Actions} r=${r} />
    </form>
    ${
      r.result &&
      (total === 0
        ? html`<p class="empty">No ${shown.event} in this range.</p>`
        : html`
      ${
        keys.length > 1
          ? html`<${GroupedBars} label=${`${noun} per ${shown.interval} and ${shown.breakdown}`} series=${keys}
              groups=${times.map((t, i) => ({ label: short(t), values: Object.fromEntries(series.map((x) => [x.key ?? '', at(x, i)])) }))} />`
          : html`<${BarChart} label=${`${noun} per ${shown.interval}`} format=${fmtNum}
              rows=${times.map((t, i) => ({ label: label(t), value: at(series[0], i) }))} />`
      }
      <div class="table-wrap"><table data-testid="trends-table"><thead><tr><th scope="col">${shown.interval}</th>
        ${keys.length > 1 || keys[0] ? keys.map((k) => html`<th scope="col">${k || '(none)'}</th>`) : html`<th scope="col">${noun}</th>`}</tr></thead>
      <tbody>${times.map(
        (t, i) =>
          html`<tr><th scope="row">${label(t)}</th>${series.map((x) => html`<td>${fmtNum(at(x, i))}</td>`)}</tr>`,
      )}</tbody>
      <tfoot><tr><th scope="row">Total</th>${series.map((x) => html`<td>${fmtNum(x.points.reduce((b, p) => b + p.count, 0))}</td>`)}</tr></tfoot></table></div>`)
    }`;
}
