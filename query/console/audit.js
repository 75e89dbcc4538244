// The audit log (GET /v1/audit): who changed what and when, filtered, newest first, paged by
// the API's cursor, and each change's before/after as a list of the fields that changed
// (json-diff.js). Secrets arrive masked (`[redacted]`), so a new secret does not show as a
// change. Filters live in the address (#/audit?entityType=campaign&entityId=…).
import { useEffect, useId, useRef, useState } from '/console/vendor/hooks.mjs';
import { counts, diff } from './json-diff.js';
import { ListFooter, qsOf, queryOf, RangeFields, useCsv, usePages } from './ledger.js';
import { api, Empty, Field, fmtTime, html, navigate, session } from './ui.js';

const TYPES = [
  'segment',
  'campaign',
  'journey',
  'form',
  'page',
  'computed_trait',
  'score',
  'profile',
  'consent',
  'suppression',
  'write_key',
  'workspace_settings',
  'tracking_plan',
  'export',
  'bi_credential',
  'workspace',
  'person',
  'person_token',
];
const ACTIONS = ['create', 'update', 'delete', 'erase'];
const SCREEN = {
  segment: '#/segments/',
  campaign: '#/campaigns/',
  journey: '#/journeys/',
  profile: '#/profiles/',
  form: '#/forms/',
  page: '#/pages/',
  computed_trait: '#/traits/computed/',
  score: '#/traits/score/',
};

/**
 * This browser's caller as the audit log names it: a person as `person:<id> <email>`, the
 * admin key as `key:` + 12 hex of its SHA-256 (if the page may hash).
 */
function useMyActor() {
  const [me, setMe] = useState(null);
  useEffect(() => {
    const key = session.key();
    if (!key) return;
    if (key.startsWith('cdp_pt_')) {
      api('/v1/me')
        .then((m) => m.person && setMe(`person:${m.person.id} ${m.person.email}`))
        .catch(() => {});
      return;
    }
    if (!globalThis.crypto?.subtle) return;
    crypto.subtle
      .digest('SHA-256', new TextEncoder().encode(key))
      .then((d) =>
        setMe(
          `key:${[...new Uint8Array(d)]
            .slice(0, 6)
            .map((b) => b.toString(16).padStart(2, '0'))
            .join('')}`,
        ),
      )
      .catch(() => {});
  }, []);
  return me;
}

export function AuditScreen({ query }) {
  const given = queryOf(query);
  const [f, setF] = useState(given);
  useEffect(() => setF(queryOf(query)), [query]);
  const set = (patch) => setF((x) => ({ ...x, ...patch }));
  const me = useMyActor();
  const { limit, ...filters } = given;
  const path = `/v1/audit${qsOf(filters) ? `?${qsOf(filters)}` : ''}`;
  const list = usePages(path, Number(limit) || 50);
  const csv = useCsv(path, 'audit');
  const [open, setOpen] = useState(() => new Set());
  useEffect(() => setOpen(new Set()), [path]);
  const table = useRef(null);
  useEffect(() => {
    if (list.fresh >= 0) table.current?.querySelectorAll('tbody tr.entry')[list.fresh]?.focus();
  }, [list.items]);
  const toggle = (i) =>
    setOpen((s) => {
      const n = new Set(s);
      if (n.has(i)) n.delete(i);
      else n.add(i);
      return n;
    });
  const submit = (e) => {
    e.preventDefault();
    const { limit: l, ...rest } = f;
    const qs = qsOf({ ...rest, limit: l && String(l) !== '50' ? l : undefined });
    const hash = qs ? `#/audit?${qs}` : '#/audit';
    if (location.hash === hash) list.reload();
    else navigate(hash);
  };
  return html`
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit log</h1>
      <p class="muted">Every change to the workspace's configuration, and every erasure: who (the person, or the admin
        key's fingerprint${me ? html`; you are <code>${me}</code>` : ''}), what, and when.</p>
      <form class="panel filters-form" aria-label="Filter the audit log" onSubmit=${submit}>
        <div class="row">
          <${Field} label="Entity type">
            <select onChange=${(e) => set({ entityType: e.currentTarget.value })}>
              <option value="" selected=${!f.entityType}>any</option>
              ${[...new Set([...TYPES, ...(f.entityType ? [f.entityType] : [])])].map(
                (t) =>
                  html`<option value=${t} selected=${t === f.entityType}>${t.replaceAll('_', ' ')}</option>`,
              )}
            </select>
          <//>
          <${Field} label="Entity id"><input value=${f.entityId ?? ''} onInput=${(e) => set({ entityId: e.currentTarget.value })} /><//>
          <${Field} label="Actor" hint="person:… (a person) or key:… (the admin key's fingerprint)">
            <input value=${f.actor ?? ''} onInput=${(e) => set({ actor: e.currentTarget.value })} />
          <//>
          <${Field} label="Action">
            <select onChange=${(e) => set({ action: e.currentTarget.value })}>
              <option value="" selected=${!f.action}>any</option>
              ${ACTIONS.map((a) => html`<option value=${a} selected=${a === f.action}>${a}</option>`)}
            </select>
          <//>
          <${RangeFields} f=${f} set=${set} />
        </div>
        <div class="row actions">
          <button type="submit" class="primary">Apply filters</button>
          <button type="button" onClick=${() => {
            setF({});
            if (location.hash === '#/audit') list.reload();
            else navigate('#/audit');
          }}>Clear</button>
        </div>
      </form>
      ${
        list.items?.length === 0
          ? html`<${Empty} title="No changes match"><p>Try a wider time range or fewer filters.</p><//>`
          : list.items
            ? html`<div class="table-wrap" ref=${table}><table class="audit">
                <caption class="sr-only">Audit log, newest first</caption>
                <thead><tr><th scope="col">Time</th><th scope="col">Who</th><th scope="col">Action</th>
                  <th scope="col">Entity</th><th scope="col">Changes</th></tr></thead>
                <tbody>${list.items.map((r, i) => html`<${AuditRow} key=${i} r=${r} me=${me} open=${open.has(i)} onToggle=${() => toggle(i)} />`)}</tbody>
              </table></div>`
            : null
      }
      <${ListFooter} list=${list} noun="changes" csv=${list.items?.length ? csv : null} />
    </section>`;
}

function AuditRow({ r, me, open, onToggle }) {
  const id = useId();
  const screen = SCREEN[r.entityType];
  const rows = open ? diff(r.before, r.after) : null;
  return html`
    <tr class="entry" tabindex="-1">
      <td><time datetime=${r.at}>${fmtTime(r.at)}</time></td>
      <td><code>${r.actor}</code>${r.actor === me ? html` <span class="muted small">(you)</span>` : null}</td>
      <td><span class=${`badge action ${r.action}`}>${r.action}</span></td>
      <td>${r.entityType.replaceAll('_', ' ')}${' '}
        ${screen ? html`<a class="mono" href=${`${screen}${encodeURIComponent(r.entityId)}`}>${r.entityId}</a>` : html`<code>${r.entityId}</code>`}
        ${' '}<a class="small" href=${`#/audit?${qsOf({ entityType: r.entityType, entityId: r.entityId })}`}
          aria-label=${`History of ${r.entityType} ${r.entityId}`}>history</a></td>
      <td><button type="button" class="small" aria-expanded=${open ? 'true' : 'false'} aria-controls=${id}
        onClick=${onToggle}>${open ? 'Hide changes' : 'Show changes'}</button></td>
    </tr>
    ${
      open
        ? html`<tr class="diff-row" id=${id}><td colspan="5"><${Diff} rows=${rows} r=${r} /></td></tr>`
        : null
    }`;
}

const KIND = { changed: 'changed', added: 'added', removed: 'removed', same: 'unchanged' };

function Diff({ rows, r }) {
  const [all, setAll] = useState(false);
  const c = counts(rows);
  const shown = all ? rows : rows.filter((x) => x.kind !== 'same');
  return html`
    <div class="diff" data-testid="audit-diff">
      <div class="row">
        <p class="small" data-testid="diff-counts">${c.changed} changed · ${c.added} added · ${c.removed} removed · ${c.same} unchanged</p>
        ${c.same > 0 ? html`<label class="check small"><input type="checkbox" checked=${all} onChange=${(e) => setAll(e.currentTarget.checked)} /><span>Show unchanged fields</span></label>` : null}
      </div>
      ${
        shown.length === 0
          ? html`<p class="muted small">No field changed${r.before === null && r.after === null ? ' (nothing was recorded)' : ''}.</p>`
          : html`<div class="table-wrap"><table class="diff-table">
              <caption class="sr-only">Fields of ${r.entityType} ${r.entityId} before and after</caption>
              <thead><tr><th scope="col">Field</th><th scope="col">Change</th><th scope="col">Before</th><th scope="col">After</th></tr></thead>
              <tbody>${shown.map(
                (x) => html`<tr class=${`d-${x.kind}`}>
                  <th scope="row"><code>${x.path}</code></th>
                  <td>${KIND[x.kind]}</td>
                  <td>${x.before ? html`<code class="before">${x.before}</code>` : html`<span class="muted">—</span>`}</td>
                  <td>${x.after ? html`<code class="after">${x.after}</code>` : html`<span class="muted">—</span>`}</td>
                </tr>`,
              )}</tbody>
            </table></div>`
      }
      <details>
        <summary>Raw JSON</summary>
        <div class="grid2">
          <div><h3 class="small">Before</h3><pre class="code">${r.before === null ? '—' : JSON.stringify(r.before, null, 2)}</pre></div>
          <div><h3 class="small">After</h3><pre class="code">${r.after === null ? '—' : JSON.stringify(r.after, null, 2)}</pre></div>
        </div>
      </details>
    </div>`;
}
