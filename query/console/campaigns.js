// Campaigns: list, editor (trigger, channel settings, templates with a preview rendered for
// a chosen profile, contact policy), and a detail page with pause/resume and live stats.
import { useEffect, useState } from '/console/vendor/hooks.mjs';
import { CopyBox } from './forms.js';
import { api, Empty, ErrorBox, Field, fmtNum, fmtTime, html, navigate, usePolled } from './ui.js';

export const CHANNELS = ['webhook', 'email', 'sms', 'push'];
/** Each channel's settings: [field, label, kind, required]. */
export const SETTINGS = {
  webhook: [
    ['url', 'Webhook URL', 'url', true],
    ['secret', 'Signing secret (write-only; empty keeps the stored one or generates one)', 'text', false],
  ],
  email: [
    ['subject', 'Subject (Liquid)', 'text', true],
    ['text', 'Text body (Liquid)', 'area', true],
    ['html', 'HTML body (Liquid, optional)', 'area', false],
    ['from', 'From (default sender when empty)', 'text', false],
  ],
  sms: [
    ['body', 'Message (Liquid)', 'area', true],
    ['from', 'From number (default when empty)', 'text', false],
  ],
  push: [
    ['title', 'Title (Liquid)', 'text', true],
    ['body', 'Body (Liquid)', 'area', true],
    ['tokenTrait', 'Device token trait (default pushToken)', 'text', false],
  ],
};

function useSegments() {
  const [segments, setSegments] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api('/v1/segments')
      .then((r) => setSegments(r.segments))
      .catch(setError);
  }, []);
  return [segments, error];
}

export function CampaignList() {
  const [campaigns, setCampaigns] = useState(null);
  const [error, setError] = useState(null);
  const [segments] = useSegments();
  useEffect(() => {
    api('/v1/campaigns')
      .then((r) => setCampaigns(r.campaigns))
      .catch(setError);
  }, []);
  const segName = (id) => segments?.find((s) => s.id === id)?.name ?? id;
  return html`
    <section aria-labelledby="campaigns-title">
      <div class="title-row">
        <h1 id="campaigns-title">Campaigns</h1>
        <a class="button primary" href="#/campaigns/new">New campaign</a>
      </div>
      <${ErrorBox} error=${error} />
      ${
        campaigns === null
          ? error
            ? null
            : html`<p class="muted">Loading…</p>`
          : campaigns.length === 0
            ? html`<${Empty} title="No campaigns yet">
                <p>A campaign sends a webhook, email, SMS or push when a profile enters or leaves a segment.</p>
                <a class="button primary" href="#/campaigns/new">Create a campaign</a>
              <//>`
            : html`<div class="table-wrap"><table>
                <caption class="sr-only">Campaigns</caption>
                <thead><tr><th scope="col">Name</th><th scope="col">Trigger</th><th scope="col">Channel</th><th scope="col">Status</th></tr></thead>
                <tbody>${campaigns.map(
                  (c) => html`<tr key=${c.id}>
                    <td><a href=${`#/campaigns/${c.id}`}>${c.name}</a></td>
                    <td>${c.on === 'enter' ? 'enters' : 'exits'} ${segName(c.segmentId)}</td>
                    <td>${c.channel}</td>
                    <td><span class=${`badge ${c.status}`}>${c.status}</span></td>
                  </tr>`,
                )}</tbody>
              </table></div>`
      }
    </section>`;
}

const blank = () => ({
  name: '',
  segmentId: '',
  on: 'enter',
  channel: 'webhook',
  settings: { webhook: {}, email: {}, sms: {}, push: {} },
  purpose: '',
  reentry: 'every',
  everyDays: '7',
  ignoreCaps: false,
  ignoreQuietHours: false,
  status: 'active',
});

function toForm(c) {
  const f = blank();
  Object.assign(f, { name: c.name, segmentId: c.segmentId, on: c.on, channel: c.channel, status: c.status });
  // a webhook's signing secret is write-only: the API answers only that it is set
  const { secret: _s, secretSet: _set, secretFingerprint: _fp, ...settings } = c[c.channel] ?? {};
  f.settings[c.channel] = settings;
  f.purpose = c.purpose ?? '';
  const r = c.policy?.reentry;
  if (r && typeof r === 'object') {
    f.reentry = 'days';
    f.everyDays = String(r.everyDays);
  } else if (r) f.reentry = r;
  f.ignoreCaps = Boolean(c.policy?.ignoreCaps);
  f.ignoreQuietHours = Boolean(c.policy?.ignoreQuietHours);
  return f;
}

function toBody(f) {
  const settings = {};
  for (const [k, , , required] of SETTINGS[f.channel]) {
    const v = f.settings[f.channel][k];
    if (required || (v !== undefined && v !== '')) settings[k] = v ?? '';
  }
  // open and click tracking (email): kept when on, so a save never drops what the API set
  const t = f.channel === 'email' ? f.settings.email.tracking : undefined;
  if (t?.opens || t?.clicks)
    settings.tracking = { ...(t.opens ? { opens: true } : {}), ...(t.clicks ? { clicks: true } : {}) };
  const policy = {
    reentry: f.reentry === 'days' ? { everyDays: Number(f.everyDays) } : f.reentry,
    ...(f.ignoreCaps ? { ignoreCaps: true } : {}),
    ...(f.ignoreQuietHours ? { ignoreQuietHours: true } : {}),
  };
  return {
    name: f.name.trim(),
    segmentId: f.segmentId,
    on: f.on,
    channel: f.channel,
    [f.channel]: settings,
    ...(f.purpose.trim() ? { purpose: f.purpose.trim() } : {}),
    policy,
    status: f.status,
  };
}

/**
 * A webhook signing secret the server generated in a save's answer, kept here (never stored)
 * until the campaign's screen takes it: shown there once, gone on the next visit or reload.
 */
let generated = null;
const takeGenerated = (id) => {
  const g = generated?.id === id ? generated.secret : null;
  generated = null;
  return g;
};

/** The generated signing secret, shown this once. */
export function SecretOnce({ secret, onDone, what = 'Signing secret' }) {
  return html`<div class="panel" role="region" aria-label=${what} data-testid="secret-once">
    <h2>${what}</h2>
    <p><strong>Copy it now: it is not shown again.</strong> Receivers check the <code>webhook-signature</code> of every request with it. Lost it? Set a new one in the editor.</p>
    <${CopyBox} label=${what} text=${secret} />
    <button type="button" onClick=${onDone}>I have copied it</button>
  </div>`;
}

export function CampaignEditor({ id }) {
  const [form, setForm] = useState(blank);
  const [segments, segError] = useSegments();
  const [error, setError] = useState(null);
  const [saving, setSaving] = useState(false);
  useEffect(() => {
    if (id)
      api(`/v1/campaigns/${encodeURIComponent(id)}`)
        .then((c) => setForm(toForm(c)))
        .catch(setError);
  }, [id]);
  const set = (patch) => setForm((f) => ({ ...f, ...patch }));
  const setSetting = (k, v) =>
    setForm((f) => ({
      ...f,
      settings: { ...f.settings, [f.channel]: { ...f.settings[f.channel], [k]: v } },
    }));

  const save = async (e) => {
    e.preventDefault();
    setError(null);
    setSaving(true);
    try {
      const body = toBody(form);
      const saved = id
        ? await api(`/v1/campaigns/${encodeURIComponent(id)}`, { method: 'PUT', body })
        : await api('/v1/campaigns', { method: 'POST', body });
      generated =
        typeof saved.webhook?.secret === 'string' ? { id: saved.id, secret: saved.webhook.secret } : null;
      navigate(`#/campaigns/${saved.id}`);
    } catch (err) {
      setError(err);
    } finally {
      setSaving(false);
    }
  };

  return html`
    <section aria-labelledby="campaign-editor-title">
      <div class="title-row">
        <h1 id="campaign-editor-title">${id ? 'Edit campaign' : 'New campaign'}</h1>
        <a href=${id ? `#/campaigns/${id}` : '#/campaigns'}>Cancel</a>
      </div>
      <${ErrorBox} error=${segError} />
      ${
        segments && segments.length === 0
          ? html`<${Empty} title="No segments yet"><p>A campaign is triggered by a segment.</p>
              <a class="button primary" href="#/segments/new">Build a segment first</a><//>`
          : html`
      <form class="stack" onSubmit=${save} novalidate>
        <fieldset>
          <legend>Trigger</legend>
          <div class="row">
            <${Field} label="Campaign name">
              <input value=${form.name} required maxlength="200" onInput=${(e) => set({ name: e.currentTarget.value })} />
            <//>
            <${Field} label="When a profile">
              <select onChange=${(e) => set({ on: e.currentTarget.value })}>
                <option value="enter" selected=${form.on === 'enter'}>enters</option>
                <option value="exit" selected=${form.on === 'exit'}>exits</option>
              </select>
            <//>
            <${Field} label="Segment">
              <select required onChange=${(e) => set({ segmentId: e.currentTarget.value })}>
                <option value="" selected=${form.segmentId === ''}>Choose a segment…</option>
                ${(segments ?? []).map((s) => html`<option value=${s.id} selected=${s.id === form.segmentId}>${s.name}</option>`)}
              </select>
            <//>
          </div>
        </fieldset>
        <fieldset>
          <legend>Channel</legend>
          <div class="row">
            <${Field} label="Channel">
              <select onChange=${(e) => set({ channel: e.currentTarget.value })}>
                ${CHANNELS.map((c) => html`<option value=${c} selected=${c === form.channel}>${c}</option>`)}
              </select>
            <//>
          </div>
          <div class="row">
            ${SETTINGS[form.channel].map(
              ([
                k,
                label,
                kind,
              ]) => html`<${Field} key=${`${form.channel}.${k}`} label=${label} wide=${kind === 'area'}>
                ${
                  kind === 'area'
                    ? html`<textarea rows="4" class="code" value=${form.settings[form.channel][k] ?? ''}
                        onInput=${(e) => setSetting(k, e.currentTarget.value)} />`
                    : html`<input type=${kind === 'url' ? 'url' : 'text'} value=${form.settings[form.channel][k] ?? ''}
                        onInput=${(e) => setSetting(k, e.currentTarget.value)} />`
                }
              <//>`,
            )}
          </div>
          ${
            form.channel === 'email'
              ? html`<div class="row">
                  ${[
                    ['opens', 'Track opens (a 1×1 image)'],
                    ['clicks', 'Track clicks (links go through the ingest host)'],
                  ].map(
                    ([k, label]) => html`<label class="check" key=${k}><input type="checkbox"
                      checked=${Boolean(form.settings.email.tracking?.[k])}
                      onChange=${(e) => setSetting('tracking', { ...form.settings.email.tracking, [k]: e.currentTarget.checked })} /><span>${label}</span></label>`,
                  )}
                </div>`
              : null
          }
          ${form.channel === 'webhook' ? null : html`<${TemplatePreview} channel=${form.channel} settings=${form.settings[form.channel]} name=${form.name} />`}
        </fieldset>
        <fieldset>
          <legend>Contact policy</legend>
          <div class="row">
            <${Field} label="Send to a profile">
              <select onChange=${(e) => set({ reentry: e.currentTarget.value })}>
                <option value="every" selected=${form.reentry === 'every'}>on every entry</option>
                <option value="once" selected=${form.reentry === 'once'}>once ever</option>
                <option value="days" selected=${form.reentry === 'days'}>at most once per N days</option>
              </select>
            <//>
            ${
              form.reentry === 'days'
                ? html`<${Field} label="Days"><input class="num" type="number" min="1" max="3650" value=${form.everyDays}
                    onInput=${(e) => set({ everyDays: e.currentTarget.value })} /><//>`
                : null
            }
            <${Field} label="Consent purpose" hint="default marketing">
              <input value=${form.purpose} placeholder="marketing" onInput=${(e) => set({ purpose: e.currentTarget.value })} />
            <//>
            <label class="check"><input type="checkbox" checked=${form.ignoreCaps}
              onChange=${(e) => set({ ignoreCaps: e.currentTarget.checked })} /><span>Ignore frequency caps</span></label>
            <label class="check"><input type="checkbox" checked=${form.ignoreQuietHours}
              onChange=${(e) => set({ ignoreQuietHours: e.currentTarget.checked })} /><span>Ignore quiet hours</span></label>
          </div>
        </fieldset>
        <${ErrorBox} error=${error} />
        <div><button type="submit" class="primary" disabled=${saving}>${saving ? 'Saving…' : id ? 'Save changes' : 'Create campaign'}</button></div>
      </form>`
      }
    </section>`;
}

function TemplatePreview({ channel, settings, name }) {
  const [userId, setUserId] = useState('');
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const run = async () => {
    setError(null);
    setResult(null);
    try {
      let profileId;
      if (userId.trim())
        profileId = (await api(`/v1/profiles?userId=${encodeURIComponent(userId.trim())}`)).id;
      setResult(
        await api('/v1/templates/preview', {
          method: 'POST',
          body: { channel, settings, campaignName: name || 'preview', ...(profileId ? { profileId } : {}) },
        }),
      );
    } catch (err) {
      setError(err);
    }
  };
  return html`
    <div class="panel preview">
      <h2>Preview</h2>
      <div class="row">
        <${Field} label="Render for the profile with userId" hint="empty: a profile without traits">
          <input value=${userId} onInput=${(e) => setUserId(e.currentTarget.value)} />
        <//>
        <button type="button" onClick=${run}>Render preview</button>
      </div>
      <${ErrorBox} error=${error} />
      ${
        result
          ? html`<dl class="rendered">${Object.entries(result.rendered).map(
              ([k, v]) => html`<dt>${k}</dt><dd><pre class="code">${v}</pre></dd>`,
            )}</dl>`
          : null
      }
    </div>`;
}

export function CampaignDetail({ id }) {
  const [c, setC] = useState(null);
  const [stats, statsError] = usePolled(`/v1/campaigns/${encodeURIComponent(id)}/stats`);
  const [ownError, setError] = useState(null);
  const [segments] = useSegments();
  const [busy, setBusy] = useState(false);
  const [secret, setSecret] = useState(() => takeGenerated(id));
  const error = ownError ?? statsError;
  useEffect(() => {
    api(`/v1/campaigns/${encodeURIComponent(id)}`)
      .then(setC)
      .catch(setError);
  }, [id]);
  const toggle = async () => {
    setBusy(true);
    try {
      setC(
        await api(`/v1/campaigns/${encodeURIComponent(id)}/${c.status === 'active' ? 'pause' : 'resume'}`, {
          method: 'POST',
        }),
      );
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  if (!c) return html`<${ErrorBox} error=${error} />${error ? null : html`<p class="muted">Loading…</p>`}`;
  const seg = segments?.find((s) => s.id === c.segmentId);
  const settings = c[c.channel] ?? {};
  return html`
    <section aria-labelledby="campaign-title">
      <div class="title-row">
        <h1 id="campaign-title">${c.name}</h1>
        <span class=${`badge ${c.status}`} data-testid="campaign-status">${c.status}</span>
        <button type="button" onClick=${toggle} disabled=${busy}>${c.status === 'active' ? 'Pause' : 'Resume'}</button>
        <a class="button" href=${`#/campaigns/${id}/edit`}>Edit</a>
      </div>
      <${ErrorBox} error=${error} />
      ${secret ? html`<${SecretOnce} secret=${secret} onDone=${() => setSecret(null)} />` : null}
      <p>When a profile <strong>${c.on === 'enter' ? 'enters' : 'exits'}</strong>${' '}
        <a href=${`#/segments/${c.segmentId}`}>${seg?.name ?? c.segmentId}</a>, send a <strong>${c.channel}</strong>${' '}
        <span class="muted">· v${c.version} · updated ${fmtTime(c.updatedAt)}</span></p>
      <p class="links">
        <a href=${`#/ledger?campaignId=${encodeURIComponent(id)}`}>Every decision in the ledger</a>
        <a href=${`#/audit?entityType=campaign&entityId=${encodeURIComponent(id)}`}>Audit history</a>
      </p>
      <dl class="settings">
        ${Object.entries(settings).map(([k, v]) => html`<dt>${k}</dt><dd><code>${typeof v === 'string' ? v : JSON.stringify(v)}</code></dd>`)}
      </dl>
      <h2>Results</h2>
      ${
        stats === null
          ? html`<p class="muted">Loading…</p>`
          : html`
        <dl class="stats" aria-label="Campaign stats">
          <div><dt>Sent</dt><dd data-testid="stat-sent">${fmtNum(stats.sent)}</dd></div>
          <div><dt>Suppressed</dt><dd data-testid="stat-suppressed">${fmtNum(stats.suppressed.total)}</dd></div>
          <div><dt>Failed</dt><dd data-testid="stat-failed">${fmtNum(stats.failed)}</dd></div>
          <div><dt>Retried</dt><dd>${fmtNum(stats.retried)}</dd></div>
          <div><dt>Delayed</dt><dd>${fmtNum(stats.delayed)}</dd></div>
          <div><dt>Latency p50</dt><dd>${stats.latencyMs.p50 === null ? '—' : `${fmtNum(stats.latencyMs.p50)} ms`}</dd></div>
          <div><dt>Latency p99</dt><dd>${stats.latencyMs.p99 === null ? '—' : `${fmtNum(stats.latencyMs.p99)} ms`}</dd></div>
          ${
            c.channel === 'email' &&
            (c.email?.tracking?.opens || c.email?.tracking?.clicks) &&
            stats.engagement
              ? html`<div><dt>Opened</dt><dd data-testid="stat-opened" title=${`${fmtNum(stats.engagement.machineOnlyOpened)} more opened by machines only (scanners, privacy proxies)`}>${fmtNum(stats.engagement.opened)}${stats.engagement.openRate === null ? '' : ` (${Math.round(stats.engagement.openRate * 100)}%)`}</dd></div>
                <div><dt>Clicked</dt><dd data-testid="stat-clicked" title=${`${fmtNum(stats.engagement.machineOnlyClicked)} more clicked by machines only`}>${fmtNum(stats.engagement.clicked)}${stats.engagement.clickRate === null ? '' : ` (${Math.round(stats.engagement.clickRate * 100)}%)`}</dd></div>`
              : null
          }
        </dl>
        ${
          Object.keys(stats.suppressed.byReason).length === 0
            ? html`<p class="muted small">Nothing suppressed.</p>`
            : html`<h3>Suppressed by reason</h3><ul>${Object.entries(stats.suppressed.byReason).map(
                ([r, n]) => html`<li><code>${r}</code>: ${fmtNum(n)}</li>`,
              )}</ul>`
        }
        ${stats.sent + stats.failed + stats.suppressed.total === 0 ? html`<p class="muted">No sends yet: they appear here as profiles ${c.on === 'enter' ? 'enter' : 'exit'} the segment.</p>` : null}`
      }
    </section>`;
}
