// The ledger: every send decision (GET /v1/ledger) and every journey step
// (GET /v1/ledger/journey-steps), filtered, newest first, paged by the API's cursor ("Load
// more" asks for the rows after the last one shown, so none repeats and none is skipped),
// and downloaded as CSV with the same filters. The filters live in the address
// (#/ledger?campaignId=…&outcome=…), so other screens link to a filtered ledger and a
// filtered view can be shared or reloaded.
import { useEffect, useRef, useState } from '/console/vendor/hooks.mjs';
import { CHANNELS } from './campaigns.js';
import { api, download, Empty, ErrorBox, Field, fmtTime, html, navigate } from './ui.js';

export const PAGE_SIZES = [25, 50, 100, 250];
const OUTCOMES = ['sent', 'suppressed', 'failed', 'retried', 'delayed', 'skipped_duplicate'];
const STEPS = [
  'entered',
  'refused',
  'waiting',
  'resumed',
  'met',
  'timeout',
  'branched',
  'split',
  'holdout',
  'queued_send',
  'updated',
  'exited',
  'completed',
  'converted',
];

/** An ISO time as the value of a datetime-local input (the browser's local time), and back. */
export const toLocalInput = (iso) => {
  const d = new Date(iso ?? '');
  if (Number.isNaN(d.getTime())) return '';
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
};
export const fromLocalInput = (v) => (v ? new Date(v).toISOString() : '');

/** The address's query as an object of the filters given (empty ones left out). */
export const queryOf = (qs) => Object.fromEntries(new URLSearchParams(qs));
export const qsOf = (o) =>
  new URLSearchParams(
    Object.entries(o).filter(([, v]) => v !== undefined && v !== null && v !== ''),
  ).toString();

/** Applies filters by changing the address; the same address again reloads the list. */
export function applyFilters(base, filters, reload) {
  const qs = qsOf(filters);
  const hash = qs ? `${base}?${qs}` : base;
  if (location.hash === hash) reload();
  else navigate(hash);
}

/**
 * Pages of `path` (a listing route with its filters): the first page when `path` changes,
 * `more()` appends the next one by its cursor. An answer for filters no longer shown is
 * dropped. `fresh` is the index of the first row of the latest page (focus goes there).
 */
export function usePages(path, limit) {
  // the rows are those of `state.path`: for filters just changed, none until their first page
  const [state, setState] = useState({ path, items: null, next: null, fresh: -1 });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  // a page answers for its filters and its page size: a changed size alone loads again too
  const key = `${path}#${limit}`;
  const current = useRef(key);
  const load = async (cursor) => {
    const p = path;
    const k = key;
    setBusy(true);
    setError(null);
    try {
      const sep = p.includes('?') ? '&' : '?';
      const r = await api(`${p}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      if (current.current !== k) return;
      setState((s) => {
        const before = cursor ? (s.items ?? []) : [];
        return {
          path: p,
          items: [...before, ...r.items],
          next: r.nextCursor,
          fresh: cursor ? before.length : -1,
        };
      });
    } catch (err) {
      if (current.current === k) setError(err);
    } finally {
      if (current.current === k) setBusy(false);
    }
  };
  useEffect(() => {
    current.current = key;
    setState({ path, items: null, next: null, fresh: -1 });
    load(null);
  }, [key]);
  const mine = state.path === path;
  return {
    items: mine ? state.items : null,
    next: mine ? state.next : null,
    fresh: mine ? state.fresh : -1,
    error,
    busy,
    more: () => load(state.next),
    reload: () => load(null),
  };
}

/** Moves focus to the first row "Load more" added, so keyboard users read on from there. */
function useFocusFresh(ref, fresh, items) {
  useEffect(() => {
    if (fresh >= 0) ref.current?.querySelector(`tbody tr:nth-child(${fresh + 1})`)?.focus();
  }, [items]);
}

/** Downloads `path` as CSV with the admin key (a plain link cannot send it): fetch, then a Blob. */
export function useCsv(path, name) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = async () => {
    setBusy(true);
    setError(null);
    try {
      const sep = path.includes('?') ? '&' : '?';
      const blob = await api(`${path}${sep}format=csv`, { accept: 'text/csv', blob: true });
      download(`${name}-${new Date().toISOString().slice(0, 19).replace(/:/g, '')}.csv`, blob);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run };
}

/** The lists campaigns and journeys are chosen from, and named by in the tables. */
function useNames() {
  const [campaigns, setCampaigns] = useState([]);
  const [journeys, setJourneys] = useState([]);
  useEffect(() => {
    api('/v1/campaigns')
      .then((r) => setCampaigns(r.campaigns))
      .catch(() => {});
    api('/v1/journeys')
      .then((r) => setJourneys(r.journeys))
      .catch(() => {});
  }, []);
  return { campaigns, journeys };
}

/** From, to (exclusive) and page size: shared by the ledger and the audit log. */
export const RangeFields = ({ f, set }) => html`
  <${Field} label="From" hint="empty: 30 days before To">
    <input type="datetime-local" value=${toLocalInput(f.from)} onInput=${(e) => set({ from: fromLocalInput(e.currentTarget.value) })} />
  <//>
  <${Field} label="To (exclusive)" hint="empty: now">
    <input type="datetime-local" value=${toLocalInput(f.to)} onInput=${(e) => set({ to: fromLocalInput(e.currentTarget.value) })} />
  <//>
  <${Field} label="Rows per page">
    <select onChange=${(e) => set({ limit: e.currentTarget.value })}>
      ${[...new Set([...PAGE_SIZES, Number(f.limit) || 50])].map((n) => html`<option value=${n} selected=${String(n) === String(f.limit || 50)}>${n}</option>`)}
    </select>
  <//>`;

/** Profile id or userId: one choice and one value. */
const PersonFields = ({ f, set }) => {
  const by = f.userId !== undefined ? 'userId' : 'profileId';
  return html`
    <${Field} label="Person by">
      <select onChange=${(e) => set({ [by]: undefined, [e.currentTarget.value]: f[by] ?? '' })}>
        <option value="profileId" selected=${by === 'profileId'}>profile id</option>
        <option value="userId" selected=${by === 'userId'}>userId</option>
      </select>
    <//>
    <${Field} label="Person" hint="their current profile and the ones merged into it">
      <input value=${f[by] ?? ''} onInput=${(e) => set({ [by]: e.currentTarget.value })} />
    <//>`;
};

/** A select of known values; a value from the address that is not among them is kept. */
const Pick = ({ label, value, options, onChange, any = 'any' }) => html`
  <${Field} label=${label}>
    <select onChange=${(e) => onChange(e.currentTarget.value)}>
      <option value="" selected=${!value}>${any}</option>
      ${[...new Set([...options.map((o) => (Array.isArray(o) ? o[0] : o)), ...(value ? [value] : [])])].map(
        (v) => {
          const o = options.find((x) => (Array.isArray(x) ? x[0] : x) === v);
          return html`<option value=${v} selected=${v === value}>${Array.isArray(o) ? o[1] : v}</option>`;
        },
      )}
    </select>
  <//>`;

/** The filter form: edited locally, applied to the address on submit. */
function FilterForm({ label, query, base, reload, clear, children }) {
  return html`<form class="panel filters-form" aria-label=${label} onSubmit=${(e) => {
    e.preventDefault();
    const { limit, ...rest } = query;
    applyFilters(base, { ...rest, limit: limit && String(limit) !== '50' ? limit : undefined }, reload);
  }}>
    <div class="row">${children}</div>
    <div class="row actions">
      <button type="submit" class="primary">Apply filters</button>
      <button type="button" onClick=${() => {
        clear();
        applyFilters(base, {}, reload);
      }}>Clear</button>
    </div>
  </form>`;
}

/** "Showing N", Load more, and the download; the status is announced as it changes. */
export function ListFooter({ list, noun, csv }) {
  const n = list.items?.length ?? 0;
  const what = n === 1 ? noun.replace(/s$/, '') : noun;
  return html`
    <div class="row list-footer">
      <p class="muted" role="status" data-testid="list-status">${
        list.items === null
          ? list.busy
            ? 'Loading…'
            : ''
          : n === 0
            ? ''
            : list.next
              ? `Showing the newest ${n} ${what}; more are older.`
              : `Showing all ${n} ${what}.`
      }</p>
      ${list.next ? html`<button type="button" onClick=${list.more} disabled=${list.busy}>${list.busy ? 'Loading…' : 'Load more'}</button>` : null}
      ${csv ? html`<button type="button" onClick=${csv.run} disabled=${csv.busy}>${csv.busy ? 'Preparing CSV…' : 'Download CSV'}</button>` : null}
    </div>
    <${ErrorBox} error=${list.error ?? csv?.error} />`;
}

const TABS = [
  ['sends', 'Send decisions', '#/ledger'],
  ['steps', 'Journey steps', '#/ledger/steps'],
];

export function LedgerScreen({ tab, query }) {
  const current = tab === 'steps' ? 'steps' : 'sends';
  return html`
    <section aria-labelledby="ledger-title">
      <h1 id="ledger-title">Ledger</h1>
      <nav class="tabs" aria-label="Ledger">
        ${TABS.map(([t, label, href]) => html`<a href=${href} aria-current=${t === current ? 'page' : undefined}>${label}</a>`)}
      </nav>
      ${current === 'steps' ? html`<${StepList} query=${query} />` : html`<${SendList} query=${query} />`}
    </section>`;
}

/** A journey's sends are recorded as `<journeyId>@<version>.<nodeId>`. */
const JOURNEY_SEND = /^(.+)@(\d+)\.(.+)$/;

function SendList({ query }) {
  const names = useNames();
  const given = queryOf(query);
  const [f, setF] = useState(given);
  useEffect(() => setF(queryOf(query)), [query]);
  const set = (patch) => setF((x) => ({ ...x, ...patch }));
  const { limit, ...filters } = given;
  const path = `/v1/ledger${qsOf(filters) ? `?${qsOf(filters)}` : ''}`;
  const list = usePages(path, Number(limit) || 50);
  const csv = useCsv(path, 'ledger');
  const table = useRef(null);
  useFocusFresh(table, list.fresh, list.items);
  const target = f.journeyId ? `j:${f.journeyId}` : f.campaignId ? `c:${f.campaignId}` : '';
  const setTarget = (v) =>
    set({
      campaignId: v.startsWith('c:') ? v.slice(2) : undefined,
      journeyId: v.startsWith('j:') ? v.slice(2) : undefined,
    });
  const campaignName = (id) => names.campaigns.find((c) => c.id === id)?.name;
  const journeyName = (id) => names.journeys.find((j) => j.id === id)?.name;
  const who = (id) => {
    const m = JOURNEY_SEND.exec(id);
    if (m && (journeyName(m[1]) || !campaignName(id)))
      return html`<a href=${`#/journeys/${encodeURIComponent(m[1])}`}>${journeyName(m[1]) ?? m[1]}</a>
        <span class="muted small"> step <code>${m[3]}</code> v${m[2]}</span>`;
    return html`<a href=${`#/campaigns/${encodeURIComponent(id)}`}>${campaignName(id) ?? id}</a>`;
  };
  return html`
    <${FilterForm} label="Filter send decisions" query=${f} base="#/ledger" reload=${list.reload} clear=${() => setF({})}>
      <${Field} label="Campaign or journey">
        <select onChange=${(e) => setTarget(e.currentTarget.value)}>
          <option value="" selected=${target === ''}>all</option>
          <optgroup label="Campaigns">
            ${names.campaigns.map((c) => html`<option value=${`c:${c.id}`} selected=${target === `c:${c.id}`}>${c.name}</option>`)}
            ${f.campaignId && !campaignName(f.campaignId) ? html`<option value=${target} selected>${f.campaignId}</option>` : null}
          </optgroup>
          <optgroup label="Journeys">
            ${names.journeys.map((j) => html`<option value=${`j:${j.id}`} selected=${target === `j:${j.id}`}>${j.name}</option>`)}
            ${f.journeyId && !journeyName(f.journeyId) ? html`<option value=${target} selected>${f.journeyId}</option>` : null}
          </optgroup>
        </select>
      <//>
      <${Pick} label="Outcome" value=${f.outcome} options=${OUTCOMES} onChange=${(v) => set({ outcome: v })} />
      <${Field} label="Reason" hint="e.g. quiet_hours, no_address">
        <input value=${f.reason ?? ''} onInput=${(e) => set({ reason: e.currentTarget.value })} />
      <//>
      <${Pick} label="Channel" value=${f.channel} options=${CHANNELS} onChange=${(v) => set({ channel: v })} />
      <${PersonFields} f=${f} set=${set} />
      <${RangeFields} f=${f} set=${set} />
    <//>
    ${
      list.items?.length === 0
        ? html`<${Empty} title="No send decisions match"><p>Try a wider time range or fewer filters.</p><//>`
        : list.items
          ? html`<div class="table-wrap" ref=${table}><table class="ledger">
              <caption class="sr-only">Send decisions, newest first</caption>
              <thead><tr><th scope="col">Time</th><th scope="col">Campaign or journey</th><th scope="col">Profile</th>
                <th scope="col">Channel</th><th scope="col">Outcome</th><th scope="col">Reason</th><th scope="col">Attempt</th>
                <th scope="col">Status</th><th scope="col">Latency</th></tr></thead>
              <tbody>${list.items.map(
                (r, i) => html`<tr key=${i} tabindex="-1">
                  <td><time datetime=${r.at}>${fmtTime(r.at)}</time></td>
                  <td>${who(r.campaignId)}</td>
                  <td><a class="mono" href=${`#/profiles/${encodeURIComponent(r.profileId)}`}>${r.profileId}</a></td>
                  <td>${r.channel}</td>
                  <td><span class=${`badge outcome ${r.outcome}`}>${r.outcome}</span></td>
                  <td>${r.reason ?? ''}${r.notBefore ? html` <span class="muted small">until ${fmtTime(r.notBefore)}</span>` : null}</td>
                  <td class="num">${r.attempt}</td>
                  <td class="num">${r.statusCode ?? '—'}</td>
                  <td class="num">${r.latencyMs} ms</td>
                </tr>`,
              )}</tbody>
            </table></div>`
          : null
    }
    <${ListFooter} list=${list} noun="decisions" csv=${list.items?.length ? csv : null} />`;
}

function StepList({ query }) {
  const names = useNames();
  const given = queryOf(query);
  const [f, setF] = useState(given);
  useEffect(() => setF(queryOf(query)), [query]);
  const set = (patch) => setF((x) => ({ ...x, ...patch }));
  const { limit, ...filters } = given;
  const path = `/v1/ledger/journey-steps${qsOf(filters) ? `?${qsOf(filters)}` : ''}`;
  const list = usePages(path, Number(limit) || 50);
  const csv = useCsv(path, 'journey-steps');
  const table = useRef(null);
  useFocusFresh(table, list.fresh, list.items);
  const journeyName = (id) => names.journeys.find((j) => j.id === id)?.name ?? id;
  return html`
    <${FilterForm} label="Filter journey steps" query=${f} base="#/ledger/steps" reload=${list.reload}
      clear=${() => setF({})}>
      <${Pick} label="Journey" value=${f.journeyId} any="all" options=${names.journeys.map((j) => [j.id, j.name])}
        onChange=${(v) => set({ journeyId: v })} />
      <${Pick} label="Step" value=${f.step} options=${STEPS} onChange=${(v) => set({ step: v })} />
      <${Field} label="Node id"><input value=${f.nodeId ?? ''} onInput=${(e) => set({ nodeId: e.currentTarget.value })} /><//>
      <${PersonFields} f=${f} set=${set} />
      <${RangeFields} f=${f} set=${set} />
    <//>
    ${
      list.items?.length === 0
        ? html`<${Empty} title="No journey steps match"><p>Try a wider time range or fewer filters.</p><//>`
        : list.items
          ? html`<div class="table-wrap" ref=${table}><table class="ledger">
              <caption class="sr-only">Journey steps, newest first</caption>
              <thead><tr><th scope="col">Time</th><th scope="col">Journey</th><th scope="col">Node</th><th scope="col">Step</th>
                <th scope="col">Detail</th><th scope="col">Profile</th><th scope="col">Run</th></tr></thead>
              <tbody>${list.items.map(
                (r, i) => html`<tr key=${i} tabindex="-1">
                  <td><time datetime=${r.at}>${fmtTime(r.at)}</time></td>
                  <td><a href=${`#/journeys/${encodeURIComponent(r.journeyId)}`}>${journeyName(r.journeyId)}</a> <span class="muted small">v${r.version}</span></td>
                  <td><code>${r.nodeId}</code></td>
                  <td>${r.step}</td>
                  <td>${r.detail}</td>
                  <td><a class="mono" href=${`#/profiles/${encodeURIComponent(r.profileId)}`}>${r.profileId}</a></td>
                  <td class="num">${r.run}</td>
                </tr>`,
              )}</tbody>
            </table></div>`
          : null
    }
    <${ListFooter} list=${list} noun="steps" csv=${list.items?.length ? csv : null} />`;
}
