// Destinations: the list; an editor (kind — webhook, HubSpot, Salesforce, ads audience — the
// source and its filter or segments, the mapping as JSON, the provider's settings and its
// write-only token); and a screen to watch one (deliveries/s from the stats' sent count
// between polls, retries, dead letters, latency, consumer lag), pause or resume it, and
// dry-run a sample through its filter and mapping.
import { useEffect, useRef, useState } from '/console/vendor/hooks.mjs';
import { api, Empty, ErrorBox, Field, fmtNum, fmtTime, html, navigate, usePolled } from './ui.js';

const TYPES = [
  ['http', 'Webhook (signed)'],
  ['hubspot', 'HubSpot contacts'],
  ['salesforce', 'Salesforce records'],
  ['audience', 'Ads custom audience'],
];
const typeLabel = (t) => TYPES.find(([k]) => k === t)?.[1] ?? t;

export function DestinationList() {
  const [data, error] = usePolled('/v1/destinations', 5000);
  const list = data?.destinations ?? null;
  return html`
    <section aria-labelledby="destinations-title">
      <div class="title-row">
        <h1 id="destinations-title">Destinations</h1>
        <a class="button primary" href="#/destinations/new">New destination</a>
      </div>
      <${ErrorBox} error=${error} />
      ${
        list === null
          ? html`<p class="muted">Loading…</p>`
          : list.length === 0
            ? html`<${Empty} title="No destinations yet">
                <p>A destination sends events or segment changes to a webhook, a CRM or an ads audience.</p>
              <//>`
            : html`<table aria-label="Destinations">
                <thead><tr><th>Name</th><th>Kind</th><th>Source</th><th>Status</th><th>Updated</th></tr></thead>
                <tbody>
                  ${list.map(
                    (d) => html`<tr key=${d.id}>
                      <td><a href=${`#/destinations/${encodeURIComponent(d.id)}`}>${d.name}</a></td>
                      <td>${typeLabel(d.type)}</td>
                      <td>${d.source.kind === 'events' ? 'events' : 'segment changes'}</td>
                      <td><span class=${`badge ${d.status}`}>${d.status}</span></td>
                      <td>${fmtTime(d.updatedAt)}</td>
                    </tr>`,
                  )}
                </tbody>
              </table>`
      }
    </section>`;
}

const pretty = (v) => (v === undefined ? '' : JSON.stringify(v, null, 2));

/** A definition → the editor's fields (text for JSON parts). */
function toForm(d) {
  return {
    name: d?.name ?? '',
    type: d?.type ?? 'http',
    sourceKind: d?.source.kind ?? 'events',
    filter: d?.source.kind === 'events' ? pretty(d.source.filter) : '',
    segmentIds: d?.source.kind === 'segment_changes' ? (d.source.segmentIds ?? []).join(', ') : '',
    mapping: pretty(d?.mapping),
    url: d?.http.url ?? '',
    maxEvents: d?.http.batch?.maxEvents ? String(d.http.batch.maxEvents) : '',
    token: '',
    idProperty: d?.hubspot?.idProperty ?? 'email',
    externalIdField: d?.salesforce?.externalIdField ?? '',
    object: d?.salesforce?.object ?? 'Contact',
    audienceId: d?.audience?.audienceId ?? '',
    identifier: d?.audience?.identifier ?? 'email',
  };
}

class FormError extends Error {}
const parseJson = (text, what) => {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new FormError(`${what}: not valid JSON`);
  }
};

/** The editor's fields → the API's body (the token only when typed: blank keeps the stored one). */
function toBody(f) {
  const source =
    f.sourceKind === 'events'
      ? { kind: 'events', ...(f.filter.trim() ? { filter: parseJson(f.filter, 'Filter') } : {}) }
      : {
          kind: 'segment_changes',
          ...(f.segmentIds.trim()
            ? {
                segmentIds: f.segmentIds
                  .split(',')
                  .map((s) => s.trim())
                  .filter(Boolean),
              }
            : {}),
        };
  const mapping = parseJson(f.mapping, 'Mapping');
  const token = f.token.trim() ? { token: f.token.trim() } : {};
  return {
    name: f.name,
    type: f.type,
    source,
    ...(mapping !== undefined ? { mapping } : {}),
    http: { url: f.url, ...(f.maxEvents ? { batch: { maxEvents: Number(f.maxEvents) } } : {}) },
    ...(f.type === 'hubspot' ? { hubspot: { idProperty: f.idProperty, ...token } } : {}),
    ...(f.type === 'salesforce'
      ? { salesforce: { externalIdField: f.externalIdField, object: f.object, ...token } }
      : {}),
    ...(f.type === 'audience'
      ? { audience: { audienceId: f.audienceId, identifier: f.identifier, ...token } }
      : {}),
  };
}

export function DestinationEditor({ id }) {
  const [form, setForm] = useState(id ? null : toForm(undefined));
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (!id) return;
    api(`/v1/destinations/${encodeURIComponent(id)}`)
      .then((d) => setForm(toForm(d)))
      .catch(setError);
  }, [id]);
  if (!form) return html`<${ErrorBox} error=${error} /><p class="muted">Loading…</p>`;
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });
  const save = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = toBody(form);
      const saved = id
        ? await api(`/v1/destinations/${encodeURIComponent(id)}`, { method: 'PUT', body })
        : await api('/v1/destinations', { method: 'POST', body });
      navigate(`#/destinations/${encodeURIComponent(saved.id)}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const builtin = form.type !== 'http';
  return html`
    <section aria-labelledby="destination-editor-title">
      <h1 id="destination-editor-title">${id ? 'Edit destination' : 'New destination'}</h1>
      <form onSubmit=${save}>
        <${Field} label="Name"><input required value=${form.name} onInput=${set('name')} /><//>
        <${Field} label="Kind">
          <select value=${form.type} onChange=${set('type')}>
            ${TYPES.map(([k, l]) => html`<option value=${k}>${l}</option>`)}
          </select>
        <//>
        <${Field} label="Source">
          <select value=${form.sourceKind} onChange=${set('sourceKind')}>
            <option value="events">Events</option>
            <option value="segment_changes">Segment changes</option>
          </select>
        <//>
        ${
          form.sourceKind === 'events'
            ? html`<${Field} label="Filter (JSON Logic)" hint="Empty: every event" wide>
                <textarea rows="3" value=${form.filter} onInput=${set('filter')} />
              <//>`
            : html`<${Field} label="Segment ids" hint="Comma separated; empty: every segment">
                <input value=${form.segmentIds} onInput=${set('segmentIds')} />
              <//>`
        }
        ${
          form.type === 'audience'
            ? null
            : html`<${Field} label="Mapping (JSON)" hint="Output field → path, {const} or {liquid}; empty: the whole event" wide>
                <textarea rows="5" value=${form.mapping} onInput=${set('mapping')} />
              <//>`
        }
        <${Field} label=${builtin ? 'API base URL' : 'URL'} hint=${builtin ? 'e.g. https://api.hubapi.com, your instance URL, https://graph.facebook.com' : ''}>
          <input required value=${form.url} onInput=${set('url')} />
        <//>
        <${Field} label="Batch size" hint="Items a request (empty: the kind's default)">
          <input type="number" min="1" value=${form.maxEvents} onInput=${set('maxEvents')} />
        <//>
        ${
          form.type === 'hubspot'
            ? html`<${Field} label="Upsert by property"><input value=${form.idProperty} onInput=${set('idProperty')} /><//>`
            : null
        }
        ${
          form.type === 'salesforce'
            ? html`<${Field} label="External id field"><input required value=${form.externalIdField} onInput=${set('externalIdField')} /><//>
                <${Field} label="Object"><input value=${form.object} onInput=${set('object')} /><//>`
            : null
        }
        ${
          form.type === 'audience'
            ? html`<${Field} label="Audience id"><input required value=${form.audienceId} onInput=${set('audienceId')} /><//>
                <${Field} label="Match on">
                  <select value=${form.identifier} onChange=${set('identifier')}>
                    <option value="email">Email (hashed)</option>
                    <option value="phone">Phone, E.164 (hashed)</option>
                  </select>
                <//>`
            : null
        }
        ${
          builtin
            ? html`<${Field} label="Access token" hint=${id ? 'Write-only: leave empty to keep the stored one' : 'Write-only: stored encrypted, never shown again'}>
                <input type="password" autocomplete="off" value=${form.token} onInput=${set('token')} />
              <//>`
            : null
        }
        <${ErrorBox} error=${error} />
        <button type="submit" class="primary" disabled=${busy}>${busy ? 'Saving…' : 'Save destination'}</button>
      </form>
    </section>`;
}

/** Deliveries per second from the sent count's change between two polls. */
function useRate(sent) {
  const last = useRef(null);
  const [rate, setRate] = useState(null);
  useEffect(() => {
    if (sent === undefined || sent === null) return;
    const now = Date.now();
    const prev = last.current;
    if (prev && now > prev.at) setRate(Math.max(0, ((sent - prev.sent) * 1000) / (now - prev.at)));
    last.current = { sent, at: now };
  }, [sent]);
  return rate;
}

export function DestinationDetail({ id }) {
  const path = `/v1/destinations/${encodeURIComponent(id)}`;
  const [def, setDef] = useState(null);
  const [error, setError] = useState(null);
  const [stats, statsError] = usePolled(`${path}/stats`, 2000);
  const rate = useRate(stats?.sent);
  const [sample, setSample] = useState('');
  const [dry, setDry] = useState(null);
  useEffect(() => {
    api(path).then(setDef).catch(setError);
  }, [path]);
  if (!def) return html`<${ErrorBox} error=${error} /><p class="muted">Loading…</p>`;
  const toggle = async () => {
    setError(null);
    try {
      setDef(await api(`${path}/${def.status === 'active' ? 'pause' : 'resume'}`, { method: 'POST' }));
    } catch (err) {
      setError(err);
    }
  };
  const field = def.source.kind === 'events' ? 'event' : 'change';
  const dryRun = async (e) => {
    e.preventDefault();
    setDry(null);
    let parsed;
    try {
      parsed = JSON.parse(sample);
    } catch {
      setDry({ error: 'The sample is not valid JSON' });
      return;
    }
    try {
      setDry(await api(`${path}/dry-run`, { method: 'POST', body: { [field]: parsed } }));
    } catch (err) {
      setDry({ error: err.message });
    }
  };
  const stat = (label, value, testid) =>
    html`<div class="stat"><dt>${label}</dt><dd data-testid=${testid}>${value}</dd></div>`;
  return html`
    <section aria-labelledby="destination-title">
      <div class="title-row">
        <h1 id="destination-title">${def.name}</h1>
        <span class=${`badge ${def.status}`} data-testid="destination-status">${def.status}</span>
        <button type="button" onClick=${toggle}>${def.status === 'active' ? 'Pause' : 'Resume'}</button>
        <a class="button" href=${`#/destinations/${encodeURIComponent(id)}/edit`}>Edit</a>
      </div>
      <p class="muted">${typeLabel(def.type)} · ${def.source.kind === 'events' ? 'events' : 'segment changes'} · v${def.version}${def.credentialsSet ? ' · token set' : ''}</p>
      <${ErrorBox} error=${error} />
      <h2>Deliveries</h2>
      <${ErrorBox} error=${statsError} />
      <dl class="stats" aria-label="Delivery stats">
        ${stat('Deliveries/s', rate === null ? '—' : rate.toFixed(1), 'stat-rate')}
        ${stat('Sent', fmtNum(stats?.sent), 'stat-sent')}
        ${stat('Retried', fmtNum(stats?.retried), 'stat-retried')}
        ${stat('Behind open circuit', fmtNum(stats?.circuitOpen), 'stat-circuit')}
        ${stat('Errors (dead-lettered)', fmtNum(stats?.deadLettered), 'stat-dead')}
        ${stat('Lag', stats?.lag === null || stats?.lag === undefined ? '—' : fmtNum(stats.lag), 'stat-lag')}
        ${stat('Latency p50 / p99', stats?.latencyMs?.p50 === null || !stats ? '—' : `${fmtNum(stats.latencyMs.p50)} / ${fmtNum(stats.latencyMs.p99)} ms`, 'stat-latency')}
      </dl>
      <h2>Dry run</h2>
      <form onSubmit=${dryRun}>
        <${Field} label=${def.source.kind === 'events' ? 'Sample event (JSON)' : 'Sample segment change (JSON)'} wide>
          <textarea rows="6" value=${sample} onInput=${(e) => setSample(e.currentTarget.value)} />
        <//>
        <button type="submit">Dry run</button>
      </form>
      ${
        dry
          ? dry.error
            ? html`<div class="error" role="alert">${dry.error}</div>`
            : html`<p data-testid="dry-matched">${dry.matched ? 'Passes the filter' : 'Filtered out'}</p>
                <pre data-testid="dry-payload">${JSON.stringify(dry.payload, null, 2)}</pre>`
          : null
      }
    </section>`;
}
