// Profiles: find one by userId, email or anonymousId; a profile page with traits,
// identities, segments, lead score, consent per channel and purpose (with its history), a
// data export, erasure (asked inline, then followed until done) and one timeline of events,
// sends and segment entries.
import { useEffect, useState } from '/console/vendor/hooks.mjs';
import { focusOnMount } from './forms.js';
import { api, download, Empty, ErrorBox, Field, fmtTime, html, navigate } from './ui.js';

export function ProfileSearch() {
  const [by, setBy] = useState('userId');
  const [value, setValue] = useState('');
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const p = await api(`/v1/profiles?${by}=${encodeURIComponent(value.trim())}`);
      navigate(`#/profiles/${encodeURIComponent(p.id)}`);
    } catch (err) {
      setError(err);
    }
  };
  return html`
    <section aria-labelledby="profiles-title">
      <h1 id="profiles-title">Profiles</h1>
      <form class="row search" onSubmit=${submit} role="search">
        <${Field} label="Find by">
          <select onChange=${(e) => setBy(e.currentTarget.value)}>
            <option value="userId" selected=${by === 'userId'}>userId</option>
            <option value="email" selected=${by === 'email'}>email</option>
            <option value="anonymousId" selected=${by === 'anonymousId'}>anonymousId</option>
          </select>
        <//>
        <${Field} label="Value">
          <input value=${value} required onInput=${(e) => setValue(e.currentTarget.value)} />
        <//>
        <button type="submit" class="primary" disabled=${value.trim() === ''}>Find</button>
      </form>
      <${ErrorBox} error=${error} />
    </section>`;
}

/** Numbers rounded for reading (scores decay to long fractions); anything else as JSON text. */
const fmtValue = (v) =>
  typeof v === 'number' ? String(Math.round(v * 100) / 100) : typeof v === 'string' ? v : JSON.stringify(v);

/** Lead scores are computed traits when the workspace defines them (e.g. `leadScore`). */
const scoreOf = (p) =>
  p.scores ?? Object.fromEntries(Object.entries(p.traits).filter(([k]) => /^lead_?score/i.test(k)));

export function ProfilePage({ id }) {
  const [p, setP] = useState(null);
  const [timeline, setTimeline] = useState(null);
  const [segments, setSegments] = useState([]);
  const [campaigns, setCampaigns] = useState([]);
  const [error, setError] = useState(null);
  const [erasure, setErasure] = useState(null);
  useEffect(() => {
    setErasure(null);
    api('/v1/campaigns')
      .then((r) => setCampaigns(r.campaigns))
      .catch(() => {});
    setP(null);
    setTimeline(null);
    api(`/v1/profiles/${encodeURIComponent(id)}`)
      .then(setP)
      .catch(setError);
    api(`/v1/profiles/${encodeURIComponent(id)}/timeline?limit=200`)
      .then((r) => setTimeline(r.items))
      .catch(setError);
    api('/v1/segments')
      .then((r) => setSegments(r.segments))
      .catch(() => {});
  }, [id]);
  if (erasure) return html`<${ErasureStatus} first=${erasure} />`;
  if (!p)
    return html`<${ErrorBox} error=${error} />${error ? html`<a href="#/profiles">Search again</a>` : html`<p class="muted">Loading…</p>`}`;
  const segName = (sid) => segments.find((s) => s.id === sid)?.name ?? sid;
  const campaignName = (cid) => campaigns.find((c) => c.id === cid)?.name ?? cid;
  const scores = Object.entries(scoreOf(p));
  const ids = [
    ...p.userIds.map((v) => ['userId', v]),
    ...p.emails.map((v) => ['email', v]),
    ...p.anonymousIds.map((v) => ['anonymousId', v]),
    ...(p.externalIds ?? []).map((x) => [x.type, x.id]),
  ];
  return html`
    <section aria-labelledby="profile-title">
      <div class="title-row">
        <h1 id="profile-title">${p.userIds[0] ?? p.emails[0] ?? p.id}</h1>
        <span class="muted">first seen ${fmtTime(p.firstSeenAt)} · last seen ${fmtTime(p.lastSeenAt)}</span>
      </div>
      <p class="links">
        <a href=${`#/ledger?profileId=${encodeURIComponent(p.id)}`}>Their sends in the ledger</a>
        <a href=${`#/ledger/steps?profileId=${encodeURIComponent(p.id)}`}>Their journey steps</a>
        <a href=${`#/audit?entityId=${encodeURIComponent(p.id)}`}>Audit history (consent, erasure)</a>
      </p>
      <${DataActions} p=${p} onErasing=${setErasure} />
      <${ErrorBox} error=${error} />
      <div class="grid2">
        <div class="panel">
          <h2>Traits</h2>
          ${
            Object.keys(p.traits).length === 0
              ? html`<p class="muted">No traits.</p>`
              : html`<dl class="kv">${Object.entries(p.traits).map(
                  ([k, v]) => html`<dt>${k}</dt><dd>${typeof v === 'string' ? v : JSON.stringify(v)}</dd>`,
                )}</dl>`
          }
        </div>
        <div class="panel">
          <h2>Identities</h2>
          <dl class="kv">${ids.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>
          <p class="muted small">profile id <code>${p.id}</code></p>
        </div>
        <div class="panel">
          <h2>Segments</h2>
          ${
            p.segments.length === 0
              ? html`<p class="muted">In no segment.</p>`
              : html`<ul>${p.segments.map((s) => html`<li><a href=${`#/segments/${s}`}>${segName(s)}</a></li>`)}</ul>`
          }
        </div>
        <div class="panel">
          <h2>Lead score</h2>
          ${
            scores.length === 0
              ? html`<p class="muted">No lead score for this profile.</p>`
              : html`<dl class="kv">${scores.map(([k, v]) => html`<dt>${k}</dt><dd>${fmtValue(v)}</dd>`)}</dl>`
          }
          ${
            Object.keys(p.computed ?? {}).length > 0 &&
            html`<h3>Computed traits</h3>
              <dl class="kv">${Object.entries(p.computed).map(
                ([k, v]) => html`<dt>${k}</dt><dd>${v === null ? '—' : fmtValue(v)}</dd>`,
              )}</dl>`
          }
        </div>
      </div>
      <${Consent} id=${p.id} />
      <h2>Timeline</h2>
      ${
        timeline === null
          ? html`<p class="muted">Loading…</p>`
          : timeline.length === 0
            ? html`<${Empty} title="Nothing yet"><p>Events and sends for this person will show here.</p><//>`
            : html`<ol class="timeline" aria-label="Timeline">${timeline.map((item, i) => html`<${TimelineRow} key=${i} item=${item} segName=${segName} campaignName=${campaignName} />`)}</ol>`
      }
    </section>`;
}

function TimelineRow({ item, segName, campaignName }) {
  const when = html`<time datetime=${item.at}>${fmtTime(item.at)}</time>`;
  switch (item.kind) {
    case 'event':
      return html`<li class="tl event">${when}<span class="tag">${item.type}</span>
        <strong>${item.event ?? item.name ?? ''}</strong>
        ${Object.keys(item.properties).length > 0 ? html`<code class="props">${JSON.stringify(item.properties)}</code>` : null}</li>`;
    case 'send':
      return html`<li class=${`tl send ${item.outcome}`}>${when}<span class="tag">${item.channel}</span>
        <strong>${item.outcome}</strong>${item.reason ? html` (${item.reason})` : null}
        <a href=${`#/campaigns/${item.campaignId}`}>${campaignName(item.campaignId)}</a></li>`;
    case 'segment':
      return html`<li class="tl segment">${when}<span class="tag">segment</span> entered
        <a href=${`#/segments/${item.segmentId}`}>${segName(item.segmentId)}</a></li>`;
    case 'journey':
      return html`<li class="tl journey">${when}<span class="tag">journey</span>
        <strong>${item.step}</strong> ${item.nodeId ? html`at <code>${item.nodeId}</code>` : null}
        ${item.detail ? html` (${item.detail})` : null}
        <a href=${`#/journeys/${item.journeyId}`}>${item.journeyId}</a> v${item.version}</li>`;
    default:
      return null;
  }
}

const CHANNELS = [
  ['email', 'email'],
  ['sms', 'SMS'],
  ['push', 'push'],
  ['webhook', 'webhook'],
  ['*', 'every channel'],
];
const scope = (v) => (v === '*' ? 'all' : v);

/** Consent per channel and purpose: what holds now, a change (audited, logged with the key), the history. */
function Consent({ id }) {
  const base = `/v1/profiles/${encodeURIComponent(id)}/consent`;
  const [now, setNow] = useState(null);
  const [history, setHistory] = useState(null);
  const [f, setF] = useState({ channel: 'email', purpose: 'marketing', subscribed: 'true' });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState(null);
  const load = () => {
    api(base)
      .then((r) => setNow(r.consents))
      .catch(setError);
    api(`${base}/history?limit=50`)
      .then((r) => setHistory(r.history))
      .catch(setError);
  };
  useEffect(load, [base]);
  const put = async (channel, purpose, subscribed) => {
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      const r = await api(base, { method: 'PUT', body: { channel, purpose, subscribed } });
      setNow(r.consents);
      setDone(`${subscribed ? 'Granted' : 'Revoked'}: ${scope(channel)} / ${scope(purpose)}.`);
      load();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const submit = (e) => {
    e.preventDefault();
    put(f.channel, f.purpose.trim() || '*', f.subscribed === 'true');
  };
  return html`<section aria-labelledby="consent-title" data-testid="consent">
    <h2 id="consent-title">Consent</h2>
    ${
      now === null
        ? html`<p class="muted">Loading…</p>`
        : now.length === 0
          ? html`<p class="muted">No consent recorded: campaigns follow their purpose's default.</p>`
          : html`<div class="table-wrap"><table data-testid="consent-now">
              <thead><tr><th scope="col">Channel</th><th scope="col">Purpose</th><th scope="col">Status</th>
                <th scope="col">Since</th><th scope="col">Source</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
              <tbody>${now.map(
                (c) => html`<tr key=${`${c.channel}:${c.purpose}`}>
                  <td>${scope(c.channel)}</td><td>${scope(c.purpose)}</td><td>${c.status}</td>
                  <td>${fmtTime(c.updatedAt)}</td><td>${c.source}</td>
                  <td><button type="button" class="link" disabled=${busy}
                    aria-label=${`${c.subscribed ? 'Revoke' : 'Grant'} ${scope(c.channel)} ${scope(c.purpose)}`}
                    onClick=${() => put(c.channel, c.purpose, !c.subscribed)}>${c.subscribed ? 'Revoke' : 'Grant'}</button></td>
                </tr>`,
              )}</tbody></table></div>`
    }
    <form class="row" onSubmit=${submit} aria-label="Record consent">
      <${Field} label="Channel"><select value=${f.channel} onChange=${(e) => setF({ ...f, channel: e.currentTarget.value })}>
        ${CHANNELS.map(([v, l]) => html`<option value=${v}>${l}</option>`)}</select><//>
      <${Field} label="Purpose" hint="e.g. marketing; * for every purpose"><input required maxlength="40" value=${f.purpose}
        onInput=${(e) => setF({ ...f, purpose: e.currentTarget.value })} /><//>
      <${Field} label="Decision"><select value=${f.subscribed} onChange=${(e) => setF({ ...f, subscribed: e.currentTarget.value })}>
        <option value="true">subscribed</option><option value="false">revoked</option></select><//>
      <button type="submit" class="primary" disabled=${busy}>Record consent</button>
    </form>
    <${ErrorBox} error=${error} />
    ${done ? html`<p role="status" data-testid="consent-done">${done}</p>` : null}
    <details>
      <summary>Consent history${history ? ` (${history.length}${history.length === 50 ? '+' : ''})` : ''}</summary>
      ${
        history?.length
          ? html`<div class="table-wrap"><table data-testid="consent-history">
              <thead><tr><th scope="col">When</th><th scope="col">Channel</th><th scope="col">Purpose</th><th scope="col">Status</th>
                <th scope="col">Source</th><th scope="col">By</th></tr></thead>
              <tbody>${history.map(
                (
                  h,
                  i,
                ) => html`<tr key=${i}><td>${fmtTime(h.at)}</td><td>${scope(h.channel)}</td><td>${scope(h.purpose)}</td>
                  <td>${h.status}</td><td>${h.source}</td><td><code>${h.actor || '—'}</code></td></tr>`,
              )}</tbody></table></div>`
          : html`<p class="muted">No decisions logged.</p>`
      }
    </details>
  </section>`;
}

/** The person's data as a file (their export), and erasure, asked first. */
function DataActions({ p, onErasing }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const path = `/v1/profiles/${encodeURIComponent(p.id)}`;
  const exportData = async () => {
    setBusy(true);
    setError(null);
    try {
      download(`profile-${p.id}.ndjson`, await api(`${path}/export`, { blob: true }), 'application/x-ndjson');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const erase = async () => {
    setBusy(true);
    setError(null);
    try {
      onErasing((await api(path, { method: 'DELETE' })).job);
    } catch (err) {
      setError(err);
      setAsking(false);
    } finally {
      setBusy(false);
    }
  };
  return html`<div class="row actions">
    <button type="button" disabled=${busy} onClick=${exportData}>Download their data</button>
    ${
      asking
        ? html`<span class="confirm" data-testid="erase-confirm"><span>Erase this person? Their profile, identities, traits, scores, consent,
            events, sends and journey steps are deleted for good (the suppression list is kept), and
            this cannot be undone. An event sent later with one of their identifiers starts a new, empty profile.</span>
            <button type="button" disabled=${busy} onClick=${erase}>Erase for good</button>
            <button type="button" ref=${focusOnMount} onClick=${() => setAsking(false)}>Keep it</button></span>`
        : html`<button type="button" onClick=${() => setAsking(true)}>Erase…</button>`
    }
    <${ErrorBox} error=${error} />
  </div>`;
}

/** An erasure job followed until it is done (GET /v1/erasures/{id} every second). */
function ErasureStatus({ first }) {
  const [job, setJob] = useState(first);
  const [error, setError] = useState(null);
  useEffect(() => {
    if (job.status === 'done') return;
    const t = setTimeout(
      () =>
        api(`/v1/erasures/${encodeURIComponent(job.id)}`)
          .then((j) => {
            setError(null);
            setJob(j);
          })
          .catch((err) => {
            setError(err);
            setJob({ ...job });
          }),
      1000,
    );
    return () => clearTimeout(t);
  }, [job]);
  const counts = Object.entries(job.counts ?? {}).filter(([, n]) => n > 0);
  return html`<section aria-labelledby="erasure-title">
    <h1 id="erasure-title" tabindex="-1" ref=${focusOnMount}>Erasure ${job.status === 'done' ? 'done' : 'under way'}</h1>
    <p role="status" data-testid="erasure-status">${
      job.status === 'done'
        ? `Erased ${fmtTime(job.finishedAt)}.`
        : `${job.done.length} steps done (${job.done.join(', ') || 'starting'})${job.lastError ? `; retrying: ${job.lastError}` : ''}…`
    }</p>
    ${counts.length > 0 ? html`<dl class="kv">${counts.map(([k, n]) => html`<dt>${k}</dt><dd>${n}</dd>`)}</dl>` : null}
    <${ErrorBox} error=${error} />
    <p class="muted">Job <code>${job.id}</code> · <a href=${`#/audit?entityType=profile&entityId=${encodeURIComponent(job.profileId)}`}>Audit history</a> ·
      <a href="#/profiles">Find another profile</a></p>
  </section>`;
}
