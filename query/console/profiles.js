// Profiles: find one by userId, email or anonymousId; a profile page with traits,
// identities, segments, lead score and one timeline of events, sends and segment entries.
import { useEffect, useState } from '/console/vendor/hooks.mjs';
import { api, Empty, ErrorBox, Field, fmtTime, html, navigate } from './ui.js';

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
  useEffect(() => {
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
