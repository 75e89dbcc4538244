// Destinations: the list; an editor (kind — webhook, HubSpot, Salesforce, ads audience — the
// source and its filter or segments, the mapping as JSON, the provider's settings and its
// write-only token); and a screen to watch one (deliveries/s from the stats' sent count
// between polls, retries, dead letters, latency, consumer lag), pause or resume it, and
// dry-run a sample through its filter and mapping. A webhook's signing secret is write-only:
// when the server generates one (a create, or a built-in turned into a webhook), its answer is
// the only place it is shown, so the destination's screen shows it once, right after the save.
import { useEffect, useRef, useState } from '/console/vendor/hooks.mjs';
import { CopyBox } from './forms.js';
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

const num = (n) => (n === undefined || n === null ? '' : String(n));

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
    maxWaitMs: num(d?.http.batch?.maxWaitMs),
    timeoutMs: num(d?.http.timeoutMs),
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

/**
 * The editor's fields → the API's body (the token only when typed: blank keeps the stored one).
 * A PUT replaces the whole definition, so what the form does not show (rate limit, retry, a
 * provider's API version) is carried over from the loaded definition `d`.
 */
function toBody(f, d) {
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
  const apiVersion = d?.type === f.type && d[f.type]?.apiVersion ? { apiVersion: d[f.type].apiVersion } : {};
  // a number as typed (the API says what is out of range); empty: the default
  const n = (v) => (v.trim() === '' ? undefined : Number(v));
  const maxEvents = n(f.maxEvents);
  const maxWaitMs = n(f.maxWaitMs);
  const timeoutMs = n(f.timeoutMs);
  if (maxWaitMs !== undefined && maxEvents === undefined)
    throw new FormError('Batch wait: set a batch size too (it waits for a batch to fill)');
  return {
    name: f.name,
    type: f.type,
    source,
    ...(mapping !== undefined ? { mapping } : {}),
    http: {
      url: f.url,
      ...(maxEvents !== undefined
        ? { batch: { maxEvents, ...(maxWaitMs !== undefined ? { maxWaitMs } : {}) } }
        : {}),
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    },
    ...(f.type === 'hubspot' ? { hubspot: { idProperty: f.idProperty, ...token } } : {}),
    ...(f.type === 'salesforce'
      ? { salesforce: { externalIdField: f.externalIdField, object: f.object, ...apiVersion, ...token } }
      : {}),
    ...(f.type === 'audience'
      ? { audience: { audienceId: f.audienceId, identifier: f.identifier, ...apiVersion, ...token } }
      : {}),
    ...(d?.rateLimit ? { rateLimit: d.rateLimit } : {}),
    ...(d?.retry ? { retry: d.retry } : {}),
  };
}

/**
 * A signing secret the server generated in a save's answer, kept here (never stored) until the
 * destination's screen takes it: shown there once, gone on the next visit or reload.
 */
let generated = null;
const takeGenerated = (id) => {
  const g = generated?.id === id ? generated.secret : null;
  generated = null;
  return g;
};

export function DestinationEditor({ id }) {
  const [form, setForm] = useState(id ? null : toForm(undefined));
  const [loaded, setLoaded] = useState(undefined);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (!id) return;
    api(`/v1/destinations/${encodeURIComponent(id)}`)
      .then((d) => {
        setLoaded(d);
        setForm(toForm(d));
      })
      .catch(setError);
  }, [id]);
  if (!form) return html`<${ErrorBox} error=${error} /><p class="muted">Loading…</p>`;
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });
  const save = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = toBody(form, loaded);
      const saved = id
        ? await api(`/v1/destinations/${encodeURIComponent(id)}`, { method: 'PUT', body })
        : await api('/v1/destinations', { method: 'POST', body });
      generated = typeof saved.http?.secret === 'string' ? { id: saved.id, secret: saved.http.secret } : null;
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
        <${Field} label="Batch wait (ms)" hint="0–60000: how long a batch waits to fill after its first item (empty: 0)">
          <input type="number" inputmode="numeric" value=${form.maxWaitMs} onInput=${set('maxWaitMs')} />
        <//>
        <${Field} label="Timeout (ms)" hint="100–30000: one deadline per attempt (empty: 10000)">
          <input type="number" inputmode="numeric" value=${form.timeoutMs} onInput=${set('timeoutMs')} />
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
        ${
          builtin
            ? null
            : html`<p class="muted">${
                id && loaded?.type === 'http'
                  ? 'The signing secret is kept (it is write-only).'
                  : 'A signing secret is generated on save and shown once, on the next screen.'
              }</p>`
        }
        <${ErrorBox} error=${error} />
        <button type="submit" class="primary" disabled=${busy}>${busy ? 'Saving…' : 'Save destination'}</button>
      </form>
    </section>`;
}

/** The generated signing secret, shown this once; focused, so a keyboard or screen reader lands on it. */
function SecretOnce({ secret, onDone }) {
  const ref = useRef(null);
  useEffect(() => ref.current?.focus(), []);
  return html`<div class="panel" role="region" aria-labelledby="secret-once-title" tabindex="-1" ref=${ref} data-testid="secret-once">
    <h2 id="secret-once-title">Signing secret</h2>
    <p><strong>Copy it now: it is not shown again.</strong> Receivers check the <code>webhook-signature</code> of every request with it. Lost it? Set a new one through the API.</p>
    <${CopyBox} label="Signing secret" text=${secret} />
    <button type="button" onClick=${onDone}>I have copied it</button>
  </div>`;
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
  const [secret, setSecret] = useState(() => takeGenerated(id));
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
      <p class="muted">${typeLabel(def.type)} · ${def.source.kind === 'events' ? 'events' : 'segment changes'} · v${def.version}${def.credentialsSet ? ' · token set' : ''}${def.http.secretSet ? ` · signing secret set${def.http.secretFingerprint ? ` (${def.http.secretFingerprint})` : ''}` : ''}</p>
      ${secret ? html`<${SecretOnce} secret=${secret} onDone=${() => setSecret(null)} />` : null}
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
