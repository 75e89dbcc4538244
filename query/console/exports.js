// Data exports: start one (a segment's members, events in a range with their names, or a
// BI view by name; CSV or Parquet), watch the latest 50 with their progress (polled while
// any is under way), download a finished file (fetched with the admin key as a Blob: a
// link cannot carry the key), delete one (a running one is cancelled).
import { useEffect, useState } from '/console/vendor/hooks.mjs';
import { parseApiError } from './form-model.js';
import { F, focusOnMount, lastDays, useGet } from './forms.js';
import { ApiError, api, authHeaders, download, Empty, ErrorBox, fmtNum, fmtTime, html } from './ui.js';

const TABLES = [
  'bi_events',
  'bi_identities',
  'bi_touchpoints',
  'bi_conversions',
  'bi_segment_membership',
  'bi_segment_members',
  'bi_sends',
  'bi_journey_steps',
  'bi_consent',
  'bi_audit',
];
const ACTIVE = new Set(['pending', 'running']);
const KEYS = [
  'format',
  'segment',
  'segment.id',
  'events',
  'events.from',
  'events.to',
  'events.events',
  'events.where',
  'table',
  'table.name',
  'table.from',
  'table.to',
];

/** What an export reads, in a few words. */
function describe(src, segName) {
  if (src.segment) return `segment ${segName(src.segment.id)}`;
  if (src.events)
    return `events ${src.events.from.slice(0, 10)} → ${src.events.to.slice(0, 10)}${src.events.events ? ` (${src.events.events.join(', ')})` : ''}`;
  if (src.table)
    return `${src.table.name}${src.table.from ? ` ${src.table.from.slice(0, 10)} → ${(src.table.to ?? '').slice(0, 10)}` : ''}`;
  return '—';
}

const fmtBytes = (n) =>
  n === null || n === undefined
    ? '—'
    : n < 1024
      ? `${n} B`
      : n < 1048576
        ? `${(n / 1024).toFixed(1)} KB`
        : `${(n / 1048576).toFixed(1)} MB`;

/** The finished file, fetched with the key (and chosen workspace), saved under the job's id. */
async function downloadFile(job) {
  let res;
  try {
    res = await fetch(`/v1/exports/${encodeURIComponent(job.id)}/file`, {
      headers: authHeaders(),
    });
  } catch {
    throw new ApiError(0, 'the query service cannot be reached');
  }
  if (!res.ok) {
    let msg = `${res.status} ${res.statusText}`;
    try {
      msg = (await res.json()).error ?? msg;
    } catch {
      // not JSON
    }
    throw new ApiError(res.status, msg);
  }
  const blob = await res.blob();
  download(`${job.id}.${job.format}`, blob, blob.type);
}

function NewExport({ segments, onStarted }) {
  const [f, setF] = useState(() => ({
    kind: 'segment',
    format: 'csv',
    segment: '',
    events: '',
    table: 'bi_events',
    whole: true,
    ...lastDays(7),
  }));
  const [errors, setErrors] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (k) => (e) => setF({ ...f, [k]: e.currentTarget.value });
  const submit = async (e) => {
    e.preventDefault();
    const range = { from: f.from, to: f.to };
    const names = f.events
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
    const body = { format: f.format };
    if (f.kind === 'segment') body.segment = { id: f.segment };
    else if (f.kind === 'events') body.events = { ...range, ...(names.length ? { events: names } : {}) };
    else body.table = { name: f.table, ...(f.whole ? {} : range) };
    setBusy(true);
    setErrors(null);
    setError(null);
    try {
      onStarted(await api('/v1/exports', { method: 'POST', body }));
    } catch (err) {
      const p = parseApiError(err);
      const key = p && KEYS.includes(p.path) ? p.path : null;
      if (key) setErrors({ key, message: p.message });
      else setError(err);
    } finally {
      setBusy(false);
    }
  };
  const dates = (at) => html`
    <${F} label="From" k=${`${at}.from`} errors=${errors}><input type="date" value=${f.from} required onInput=${set('from')} /><//>
    <${F} label="To (exclusive)" k=${`${at}.to`} errors=${errors}><input type="date" value=${f.to} required onInput=${set('to')} /><//>`;
  return html`<form class="stack panel" onSubmit=${submit} aria-labelledby="new-export-title">
    <h2 id="new-export-title">New export</h2>
    <fieldset class="row"><legend>Export</legend>
      ${[
        ['segment', "A segment's members"],
        ['events', 'Events in a range'],
        ['table', 'A BI view'],
      ].map(
        ([k, l]) =>
          html`<label class="check" key=${k}><input type="radio" name="export-kind" checked=${f.kind === k} onChange=${() => setF({ ...f, kind: k })} /><span>${l}</span></label>`,
      )}
    </fieldset>
    <div class="row">
      ${
        f.kind === 'segment'
          ? html`<${F} label="Segment" k="segment.id" errors=${errors}><select value=${f.segment} required onChange=${set('segment')}>
              <option value="">Choose a segment…</option>
              ${(segments ?? []).map((s) => html`<option value=${s.id}>${s.name}</option>`)}</select><//>`
          : f.kind === 'events'
            ? html`${dates('events')}
              <${F} label="Event names (optional)" k="events.events" errors=${errors} hint="Comma-separated; empty: all events">
                <input value=${f.events} placeholder="Order Completed, Form Submitted" onInput=${set('events')} /><//>`
            : html`<${F} label="BI view" k="table.name" errors=${errors}><select value=${f.table} onChange=${set('table')}>
                ${TABLES.map((t) => html`<option value=${t}>${t}</option>`)}</select><//>
              <label class="check"><input type="checkbox" checked=${f.whole} onChange=${(e) => setF({ ...f, whole: e.currentTarget.checked })} /><span>All time</span></label>
              ${f.whole ? null : dates('table')}`
      }
      <${F} label="Format" k="format" errors=${errors}><select value=${f.format} onChange=${set('format')}>
        <option value="csv">CSV</option><option value="parquet">Parquet</option></select><//>
    </div>
    <${ErrorBox} error=${error} />
    <div class="row actions"><button type="submit" class="primary" disabled=${busy}>${busy ? 'Starting…' : 'Start export'}</button></div>
  </form>`;
}

function ExportRow({ job, onChanged, segName }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [confirm, setConfirm] = useState(false);
  const act = async (fn) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const pctDone = Math.round((job.progress ?? 0) * 100);
  return html`<tr data-export=${job.id}>
    <td class="mono">${job.id}</td>
    <td>${describe(job.source, segName)}</td>
    <td>${job.format}</td>
    <td><span class=${`badge ${job.status}`}>${job.status}</span>${job.error ? html`<div class="small field-error">${job.error}</div>` : null}</td>
    <td><progress max="100" value=${pctDone} aria-label=${`Progress of ${job.id}`}></progress> ${pctDone}%
      <div class="small muted">${fmtNum(job.rowsDone)}${job.rowsTotal !== null ? ` of ${fmtNum(job.rowsTotal)}` : ''} rows</div></td>
    <td class="num nowrap">${fmtBytes(job.bytes)}</td>
    <td>${fmtTime(job.createdAt)}${job.expiresAt ? html`<div class="small muted">file deleted after ${fmtTime(job.expiresAt)}</div>` : null}</td>
    <td>
      <div class="row">
        ${job.status === 'done' ? html`<button type="button" class="small" disabled=${busy} aria-label=${`Download ${job.id}`} onClick=${() => act(() => downloadFile(job))}>Download</button>` : null}
        ${
          confirm
            ? html`<button type="button" class="small" disabled=${busy} onClick=${() =>
                act(async () => {
                  await api(`/v1/exports/${encodeURIComponent(job.id)}`, { method: 'DELETE' });
                  onChanged();
                })}>${ACTIVE.has(job.status) ? `Cancel ${job.id} now` : `Delete ${job.id} now`}</button>
              <button type="button" class="small" ref=${focusOnMount} onClick=${() => setConfirm(false)}>Keep</button>`
            : html`<button type="button" class="small" aria-label=${`${ACTIVE.has(job.status) ? 'Cancel' : 'Delete'} ${job.id}`} onClick=${() => setConfirm(true)}>${ACTIVE.has(job.status) ? 'Cancel…' : 'Delete…'}</button>`
        }
      </div>
      <${ErrorBox} error=${error} />
    </td>
  </tr>`;
}

export function ExportsScreen() {
  const [segs] = useGet('/v1/segments');
  const [items, setItems] = useState(null);
  const [error, setError] = useState(null);
  const [tick, setTick] = useState(0);
  const active = (items ?? []).some((j) => ACTIVE.has(j.status));
  useEffect(() => {
    // the list now, then every 2 s while an export is under way (else every 30 s)
    let live = true;
    let t;
    const next = (ms) => {
      if (live) t = setTimeout(() => live && setTick((n) => n + 1), ms);
    };
    api('/v1/exports')
      .then((r) => {
        if (!live) return;
        setItems(r.items);
        setError(null);
        next(r.items.some((j) => ACTIVE.has(j.status)) ? 2000 : 30_000);
      })
      .catch((e) => {
        if (live) setError(e);
        next(5000);
      });
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [tick]);
  const refresh = () => setTick((n) => n + 1);
  const segName = (id) => segs?.segments?.find((x) => x.id === id)?.name ?? id;
  return html`
    <section aria-labelledby="exports-title">
      <h1 id="exports-title">Exports</h1>
      <p class="muted">Files for offline work, kept for a limited time and deleted when an erasure runs. Every export is in the audit log.</p>
      <${NewExport} segments=${segs?.segments} onStarted=${(job) => {
        setItems([job, ...(items ?? []).filter((j) => j.id !== job.id)]);
        refresh();
      }} />
      <h2>Latest exports</h2>
      <${ErrorBox} error=${error} />
      <p class="sr-only" role="status">${active ? 'An export is under way.' : ''}</p>
      ${
        items === null
          ? error
            ? null
            : html`<p class="muted">Loading…</p>`
          : items.length === 0
            ? html`<${Empty} title="No exports yet"><p>Start one above.</p><//>`
            : html`<div class="table-wrap"><table>
                <caption class="sr-only">Exports, newest first</caption>
                <thead><tr><th scope="col">Id</th><th scope="col">Source</th><th scope="col">Format</th><th scope="col">Status</th>
                  <th scope="col">Progress</th><th scope="col">Size</th><th scope="col">Started</th><th scope="col">Actions</th></tr></thead>
                <tbody>${items.map((j) => html`<${ExportRow} key=${j.id} job=${j} onChanged=${refresh} segName=${segName} />`)}</tbody>
              </table></div>`
      }
    </section>`;
}
