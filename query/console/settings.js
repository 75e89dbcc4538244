// Workspace settings: write keys (create with their kind, the full key shown once, revoke),
// the suppression list (paged, add, remove) and the workspace's own channel credentials (what
// is stored, redacted to fingerprints; replace as JSON; remove to fall back to the
// deployment's). Every change goes through the API, which audits it.
import { useEffect, useState } from '/console/vendor/hooks.mjs';
import { api, Empty, ErrorBox, Field, fmtTime, html } from './ui.js';

const TABS = [
  ['keys', 'Write keys'],
  ['suppressions', 'Suppressions'],
  ['channels', 'Channel credentials'],
];

export function SettingsScreen({ tab = 'keys' }) {
  const current = TABS.some(([t]) => t === tab) ? tab : 'keys';
  return html`<section>
    <h1>Settings</h1>
    <nav aria-label="Settings" class="tabs">
      ${TABS.map(
        ([t, label]) =>
          html`<a href=${`#/settings/${t}`} aria-current=${t === current ? 'page' : undefined}>${label}</a>`,
      )}
    </nav>
    ${current === 'keys' ? html`<${WriteKeys} />` : null}
    ${current === 'suppressions' ? html`<${Suppressions} />` : null}
    ${current === 'channels' ? html`<${ChannelCredentials} />` : null}
  </section>`;
}

/** An inline "are you sure": the question, the action and a way out (focused first). */
function Confirm({ question, action, onYes, onNo, busy }) {
  return html`<span class="confirm"><span>${question}</span>
    <button type="button" disabled=${busy} onClick=${onYes}>${action}</button>
    <button type="button" ref=${(el) => el?.focus()} onClick=${onNo}>Keep it</button></span>`;
}

/** Runs `fn`, keeping its error for an ErrorBox and a busy flag for the button. */
function useAction() {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const run = async (fn) => {
    setError(null);
    setBusy(true);
    try {
      return await fn();
    } catch (err) {
      setError(err);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { error, busy, run };
}

function WriteKeys() {
  const [keys, setKeys] = useState(null);
  const [name, setName] = useState('');
  const [kind, setKind] = useState('client');
  const [created, setCreated] = useState(null);
  const [asking, setAsking] = useState(null);
  const load = useAction();
  const act = useAction();
  const refresh = () => load.run(async () => setKeys((await api('/v1/write-keys')).writeKeys));
  useEffect(() => {
    refresh();
  }, []);
  const create = async (e) => {
    e.preventDefault();
    const rec = await act.run(() =>
      api('/v1/write-keys', { method: 'POST', body: { name: name.trim(), kind } }),
    );
    if (rec) {
      setCreated(rec);
      setName('');
      refresh();
    }
  };
  const revoke = async (k) => {
    await act.run(() => api(`/v1/write-keys/${encodeURIComponent(k.id)}`, { method: 'DELETE' }));
    setAsking(null);
    refresh();
  };
  return html`<div>
    <p class="muted">A <strong>client</strong> key goes in browsers and apps: it cannot link identities on
      its own say-so or send trait operations. A <strong>server</strong> key is for your backend only.</p>
    <form onSubmit=${create} aria-label="New write key" class="row">
      <${Field} label="Name"><input required maxlength="200" value=${name} onInput=${(e) => setName(e.currentTarget.value)} /><//>
      <${Field} label="Kind">
        <select value=${kind} onChange=${(e) => setKind(e.currentTarget.value)}>
          <option value="client">client (browser, app)</option>
          <option value="server">server</option>
        </select>
      <//>
      <button type="submit" class="primary" disabled=${act.busy || name.trim() === ''}>Create key</button>
    </form>
    <${ErrorBox} error=${act.error ?? load.error} />
    ${
      created
        ? html`<div role="status" class="panel" data-testid="new-key">
            New ${created.kind} key <strong>${created.name}</strong>: <code>${created.key}</code>.
            Copy it now: it is not shown again.
          </div>`
        : null
    }
    ${
      keys === null
        ? html`<p class="muted">Loading…</p>`
        : keys.length === 0
          ? html`<${Empty} title="No write keys yet" />`
          : html`<table data-testid="write-keys">
              <thead><tr><th>Name</th><th>Kind</th><th>Key</th><th>Created</th><th>Status</th><th><span class="sr-only">Actions</span></th></tr></thead>
              <tbody>${keys.map(
                (k) => html`<tr>
                  <td>${k.name}</td><td>${k.kind ?? 'server'}</td><td><code>${k.key}</code></td>
                  <td>${fmtTime(k.createdAt)}</td>
                  <td>${k.revokedAt ? `revoked ${fmtTime(k.revokedAt)}` : 'active'}</td>
                  <td>${
                    k.revokedAt
                      ? null
                      : asking === k.id
                        ? html`<${Confirm} question=${`Revoke ${k.name}? Events sent with it are refused from then on.`}
                            action="Revoke key" busy=${act.busy} onYes=${() => revoke(k)} onNo=${() => setAsking(null)} />`
                        : html`<button type="button" class="link" aria-label=${`Revoke ${k.name}`} onClick=${() => setAsking(k.id)}>Revoke…</button>`
                  }</td>
                </tr>`,
              )}</tbody>
            </table>`
    }
  </div>`;
}

const KINDS = [
  ['email', 'Email address'],
  ['phone', 'Phone number'],
  ['profileId', 'Profile id'],
  ['deviceToken', 'Push device token'],
];
/** The API's kind name as the query parameter that removes it. */
const param = (kind) => (kind === 'device' ? 'deviceToken' : kind);

function Suppressions() {
  const [items, setItems] = useState([]);
  const [cursor, setCursor] = useState(undefined);
  const [kind, setKind] = useState('email');
  const [value, setValue] = useState('');
  const [done, setDone] = useState(null);
  const [asking, setAsking] = useState(null);
  const load = useAction();
  const act = useAction();
  const page = (from, reset) =>
    load.run(async () => {
      const r = await api(`/v1/suppressions?limit=100${from ? `&cursor=${encodeURIComponent(from)}` : ''}`);
      setItems((prev) => (reset ? r.suppressions : [...prev, ...r.suppressions]));
      setCursor(r.cursor);
    });
  useEffect(() => {
    page(null, true);
  }, []);
  const add = async (e) => {
    e.preventDefault();
    const r = await act.run(() =>
      api('/v1/suppressions', { method: 'POST', body: { [kind]: value.trim() } }),
    );
    if (r) {
      setDone(`Added ${value.trim()}: no campaign or journey sends to it any more.`);
      setValue('');
      page(null, true);
    }
  };
  const remove = async (s) => {
    setAsking(null);
    const ok = await act.run(() =>
      api(`/v1/suppressions?${param(s.kind)}=${encodeURIComponent(s.value)}`, { method: 'DELETE' }),
    );
    if (ok !== undefined) {
      setDone(`Removed ${s.value}.`);
      page(null, true);
    }
  };
  return html`<div>
    <p class="muted">Addresses, numbers, profiles and devices nothing is sent to: hard bounces, complaints,
      STOP replies and dead tokens land here by themselves; you can add and remove entries.</p>
    <form onSubmit=${add} aria-label="Suppress" class="row">
      <${Field} label="Kind">
        <select value=${kind} onChange=${(e) => setKind(e.currentTarget.value)}>
          ${KINDS.map(([k, label]) => html`<option value=${k}>${label}</option>`)}
        </select>
      <//>
      <${Field} label="Value"><input required maxlength="512" value=${value} onInput=${(e) => setValue(e.currentTarget.value)} /><//>
      <button type="submit" class="primary" disabled=${act.busy || value.trim() === ''}>Suppress</button>
    </form>
    <${ErrorBox} error=${act.error ?? load.error} />
    ${done ? html`<p role="status" data-testid="suppression-done">${done}</p>` : null}
    ${
      items.length === 0 && !load.busy
        ? html`<${Empty} title="Nothing is suppressed" />`
        : html`<table data-testid="suppressions">
            <thead><tr><th>Kind</th><th>Value</th><th><span class="sr-only">Actions</span></th></tr></thead>
            <tbody>${items.map(
              (s) => html`<tr>
                <td>${s.kind}</td><td><code>${s.value}</code></td>
                <td>${
                  asking === `${s.kind}:${s.value}`
                    ? html`<${Confirm} question=${`Take ${s.value} off the list? Sends to it may go again.`}
                        action="Remove from list" busy=${act.busy} onYes=${() => remove(s)} onNo=${() => setAsking(null)} />`
                    : html`<button type="button" class="link" aria-label=${`Remove ${s.value}`} onClick=${() => setAsking(`${s.kind}:${s.value}`)}>Remove…</button>`
                }</td>
              </tr>`,
            )}</tbody>
          </table>`
    }
    ${cursor ? html`<button type="button" onClick=${() => page(cursor, false)} disabled=${load.busy}>Load more</button>` : null}
  </div>`;
}

const CHANNELS = [
  ['email', 'Email', { provider: 'sendgrid', apiKey: 'SG.…', from: 'Shop <news@shop.example>' }],
  ['sms', 'SMS', { accountSid: 'AC…', authToken: '…', from: '+15550001' }],
  ['push', 'Push', { provider: 'fcm', serviceAccount: { type: 'service_account', '…': '…' } }],
];

function ChannelCredentials() {
  return html`<div>
    <p class="muted">Your workspace's own provider accounts. They are encrypted at rest and never shown
      again: only fingerprints. A channel without its own uses the deployment's.</p>
    ${CHANNELS.map(([ch, label, example]) => html`<${ChannelCard} key=${ch} channel=${ch} label=${label} example=${example} />`)}
  </div>`;
}

function ChannelCard({ channel, label, example }) {
  const [view, setView] = useState(null);
  const [text, setText] = useState(() => JSON.stringify(example, null, 2));
  const [saved, setSaved] = useState(null);
  const [asking, setAsking] = useState(false);
  const load = useAction();
  const act = useAction();
  const refresh = () => load.run(async () => setView(await api(`/v1/channels/${channel}/credentials`)));
  useEffect(() => {
    refresh();
  }, []);
  const save = async (e) => {
    e.preventDefault();
    setSaved(null);
    let body;
    try {
      body = JSON.parse(text);
    } catch (err) {
      act.run(() => Promise.reject(new Error(`Not JSON: ${err.message}`)));
      return;
    }
    const r = await act.run(() => api(`/v1/channels/${channel}/credentials`, { method: 'PUT', body }));
    if (r) {
      setSaved(`Saved. Sends use them within seconds.`);
      setText(JSON.stringify(example, null, 2));
      refresh();
    }
  };
  const remove = async () => {
    setAsking(false);
    const r = await act.run(() => api(`/v1/channels/${channel}/credentials`, { method: 'DELETE' }));
    if (r !== undefined) {
      setSaved('Removed.');
      refresh();
    }
  };
  const shown = view
    ? Object.entries(view).filter(([k]) => !['channel', 'configured', 'source'].includes(k))
    : [];
  return html`<section class="card" aria-labelledby=${`cred-${channel}`} data-testid=${`credentials-${channel}`}>
    <h2 id=${`cred-${channel}`}>${label}</h2>
    ${
      view === null
        ? html`<p class="muted">Loading…</p>`
        : html`<p data-testid=${`credentials-${channel}-state`}>${
            !view.configured
              ? 'Using the deployment’s credentials.'
              : view.readable === false
                ? `Stored but unreadable: ${view.error}. Sends fail until they are replaced or removed.`
                : `The workspace’s own (${view.provider ?? channel}).`
          }</p>
          ${
            shown.length > 0
              ? html`<dl class="kv">${shown.map(
                  ([k, v]) =>
                    html`<dt>${k}</dt><dd><code>${typeof v === 'object' ? JSON.stringify(v) : String(v)}</code></dd>`,
                )}</dl>`
              : null
          }`
    }
    <form onSubmit=${save} aria-label=${`${label} credentials`}>
      <${Field} label=${`New ${label} credentials (JSON)`} wide hint="Replaces what is stored; the server names any field that is wrong.">
        <textarea rows="6" class="code" spellcheck="false" value=${text} onInput=${(e) => setText(e.currentTarget.value)}></textarea>
      <//>
      <${ErrorBox} error=${act.error ?? load.error} />
      ${saved ? html`<p role="status">${saved}</p>` : null}
      <button type="submit" class="primary" disabled=${act.busy}>Save ${label} credentials</button>
      ${
        !view?.configured
          ? null
          : asking
            ? html` <${Confirm} question=${`Remove the workspace's ${label} credentials? Sends fall back to the deployment's.`}
                action=${`Remove ${label} credentials`} busy=${act.busy} onYes=${remove} onNo=${() => setAsking(false)} />`
            : html` <button type="button" onClick=${() => setAsking(true)} disabled=${act.busy}>Remove…</button>`
      }
    </form>
  </section>`;
}
