// Computed traits and lead scores (/v1/computed-traits, /v1/scores): both lists, an editor
// per kind (the common fields as a form, the JSON Logic filter and a score's rules as JSON),
// a 400 shown at the control it names, delete asked inline, each one's audit history.
import { useEffect, useState } from '/console/vendor/hooks.mjs';
import { F, focusOnMount, useGet, useSave } from './forms.js';
import { ApiError, api, Empty, ErrorBox, fmtTime, html, navigate } from './ui.js';

const KINDS = {
  computed: {
    path: '/v1/computed-traits',
    list: 'computedTraits',
    noun: 'computed trait',
    audit: 'computed_trait',
  },
  score: { path: '/v1/scores', list: 'scores', noun: 'lead score', audit: 'score' },
};
const AGGREGATES = ['count', 'sum', 'min', 'max', 'last'];
const RULES_EXAMPLE = [
  { event: 'Demo Requested', points: 50 },
  { trait: { '==': [{ var: 'traits.role' }, 'cto'] }, points: 20 },
];

/** `#/traits`, `#/traits/computed/new`, `#/traits/score/{id}`. */
export function TraitsScreen({ kind, id }) {
  if (KINDS[kind] && id) return html`<${DefinitionEditor} kind=${kind} id=${id === 'new' ? null : id} />`;
  return html`<section aria-labelledby="traits-title">
    <h1 id="traits-title">Traits & scores</h1>
    <p class="muted">Values kept on every profile in real time: read in segments as <code>computed.name</code>${' '}
      and <code>scores.name</code>, shown on the profile page.</p>
    <${DefinitionList} kind="computed" title="Computed traits" />
    <${DefinitionList} kind="score" title="Lead scores" />
  </section>`;
}

const summary = (kind, d) =>
  kind === 'computed'
    ? `${d.kind}${d.property ? ` of ${d.property}` : ''} on ${d.event}${d.window ? `, last ${d.window}` : ', all time'}${d.where ? ', filtered' : ''}`
    : `${d.rules.length} ${d.rules.length === 1 ? 'rule' : 'rules'}${d.halfLifeDays ? `, half-life ${d.halfLifeDays} d` : ', no decay'}`;

function DefinitionList({ kind, title }) {
  const k = KINDS[kind];
  const [data, loadError, reload] = useGet(k.path);
  const [asking, setAsking] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState(null);
  const items = data?.[k.list] ?? null;
  const remove = async (d) => {
    setBusy(true);
    setError(null);
    try {
      await api(`${k.path}/${encodeURIComponent(d.id)}`, { method: 'DELETE' });
      setDone(`Deleted ${d.name}.`);
      setAsking(null);
      reload();
      // the row and its buttons are gone: focus goes to the list's heading, not the page
      document.getElementById(`${kind}-title`)?.focus();
    } catch (err) {
      setError(err);
      setAsking(null);
      // refused (a segment reads it): focus goes back to the row's Delete… it came from
      setTimeout(() => document.querySelector(`[data-delete="${CSS.escape(d.id)}"]`)?.focus());
    } finally {
      setBusy(false);
    }
  };
  return html`<section aria-labelledby=${`${kind}-title`} data-testid=${`${kind}-list`}>
    <div class="title-row">
      <h2 id=${`${kind}-title`} tabindex="-1">${title}</h2>
      <a class="button primary" href=${`#/traits/${kind}/new`}>New ${k.noun}</a>
    </div>
    <${ErrorBox} error=${error ?? loadError} />
    ${done ? html`<p role="status">${done}</p>` : null}
    ${
      items === null
        ? loadError
          ? null
          : html`<p class="muted">Loading…</p>`
        : items.length === 0
          ? html`<${Empty} title=${`No ${k.noun}s yet`} />`
          : html`<div class="table-wrap"><table>
              <thead><tr><th scope="col">Name</th><th scope="col">Definition</th><th scope="col">Version</th>
                <th scope="col">Updated</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
              <tbody>${items.map(
                (d) => html`<tr key=${d.id}>
                  <td><a href=${`#/traits/${kind}/${encodeURIComponent(d.id)}`}>${d.name}</a></td>
                  <td>${summary(kind, d)}</td><td>${d.version}</td><td>${fmtTime(d.updatedAt)}</td>
                  <td>
                    <a href=${`#/audit?entityType=${k.audit}&entityId=${encodeURIComponent(d.id)}`} aria-label=${`Audit history of ${d.name}`}>History</a>
                    ${' '}${
                      asking === d.id
                        ? html`<span class="confirm"><span>Delete ${d.name}? Profiles stop showing it; a segment that reads it must change first.</span>
                            <button type="button" disabled=${busy} onClick=${() => remove(d)}>Delete ${k.noun}</button>
                            <button type="button" ref=${focusOnMount} onClick=${() => setAsking(null)}>Keep it</button></span>`
                        : html`<button type="button" class="link" data-delete=${d.id} aria-label=${`Delete ${d.name}`} onClick=${() => setAsking(d.id)}>Delete…</button>`
                    }
                  </td>
                </tr>`,
              )}</tbody></table></div>`
    }
  </section>`;
}

/** Editor state from a stored definition (or a blank one). */
function stateOf(kind, d) {
  if (kind === 'computed')
    return {
      name: d?.name ?? '',
      description: d?.description ?? '',
      kind: d?.kind ?? 'count',
      event: d?.event ?? '',
      property: d?.property ?? '',
      window: d?.window ?? '',
      where: d?.where === undefined ? '' : JSON.stringify(d.where, null, 2),
    };
  return {
    name: d?.name ?? '',
    description: d?.description ?? '',
    halfLifeDays: d?.halfLifeDays === undefined ? '' : String(d.halfLifeDays),
    rules: JSON.stringify(d?.rules ?? RULES_EXAMPLE, null, 2),
  };
}

/** JSON typed in a box, or a 400 naming that box (shown at it, like the server's). */
function parsed(key, text) {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, `${key}: not JSON (${err.message})`);
  }
}

/** The request body: empty optional fields left out (a PUT replaces the whole definition). */
function bodyOf(kind, s) {
  const opt = (k, v) => (v.trim() === '' ? {} : { [k]: v.trim() });
  if (kind === 'computed')
    return {
      name: s.name.trim(),
      ...opt('description', s.description),
      kind: s.kind,
      event: s.event.trim(),
      ...opt('property', s.property),
      ...opt('window', s.window),
      ...(s.where.trim() === '' ? {} : { where: parsed('where', s.where) }),
    };
  return {
    name: s.name.trim(),
    ...opt('description', s.description),
    rules: parsed('rules', s.rules),
    ...(s.halfLifeDays.trim() === '' ? {} : { halfLifeDays: Number(s.halfLifeDays) }),
  };
}

const KEYS = {
  computed: ['name', 'description', 'kind', 'event', 'property', 'window', 'where'],
  score: ['name', 'description', 'halfLifeDays', 'rules'],
};

function DefinitionEditor({ kind, id }) {
  const k = KINDS[kind];
  const [def, loadError] = useGet(id ? `${k.path}/${encodeURIComponent(id)}` : null);
  const [s, setS] = useState(id ? null : stateOf(kind, null));
  useEffect(() => {
    if (def) setS(stateOf(kind, def));
  }, [def]);
  const [errors, error, busy, run] = useSave(KEYS[kind]);
  if (!s)
    return html`<${ErrorBox} error=${loadError} />${loadError ? null : html`<p class="muted">Loading…</p>`}`;
  const set = (key) => (e) => setS({ ...s, [key]: e.currentTarget.value });
  const submit = (e) => {
    e.preventDefault();
    run(async () => {
      const body = bodyOf(kind, s);
      try {
        await api(id ? `${k.path}/${encodeURIComponent(id)}` : k.path, { method: id ? 'PUT' : 'POST', body });
      } catch (err) {
        // a name taken (409 "name: …") is shown at the name, like a 400
        throw err?.status === 409 && err.message.startsWith('name: ') ? new ApiError(400, err.message) : err;
      }
      navigate('#/traits');
    });
  };
  return html`<section aria-labelledby="def-title">
    <h1 id="def-title">${id ? `Edit ${def?.name ?? k.noun}` : `New ${k.noun}`}</h1>
    ${
      def
        ? html`<p class="muted">Version ${def.version} · updated ${fmtTime(def.updatedAt)} · <code>${def.id}</code> ·
      <a href=${`#/audit?entityType=${k.audit}&entityId=${encodeURIComponent(def.id)}`}>Audit history</a></p>`
        : null
    }
    <form class="stack" onSubmit=${submit}>
      <div class="row">
        <${F} label="Name" k="name" errors=${errors} hint=${`Read in segments as ${kind === 'computed' ? 'computed' : 'scores'}.${s.name || 'name'}`}>
          <input required value=${s.name} onInput=${set('name')} /><//>
        <${F} label="Description (optional)" k="description" errors=${errors}><input value=${s.description} onInput=${set('description')} /><//>
      </div>
      ${
        kind === 'computed'
          ? html`<div class="row">
              <${F} label="Aggregate" k="kind" errors=${errors}>
                <select value=${s.kind} onChange=${set('kind')}>${AGGREGATES.map((a) => html`<option value=${a}>${a}</option>`)}</select><//>
              <${F} label="Event" k="event" errors=${errors}><input required value=${s.event} onInput=${set('event')} /><//>
              <${F} label="Property" k="property" errors=${errors} hint="A dotted path into the event's properties; optional for count">
                <input value=${s.property} onInput=${set('property')} /><//>
              <${F} label="Window" k="window" errors=${errors} hint="e.g. 30d, 12h; empty: all time"><input value=${s.window} onInput=${set('window')} /><//>
            </div>
            <${F} label="Filter on the event's properties (JSON Logic, optional)" k="where" errors=${errors} wide>
              <textarea rows="4" class="code" spellcheck="false" value=${s.where} onInput=${set('where')}></textarea><//>`
          : html`<${F} label="Half-life in days (optional)" k="halfLifeDays" errors=${errors} hint="Event points halve every this many days; empty: no decay">
                <input class="num" type="number" min="0" step="any" value=${s.halfLifeDays} onInput=${set('halfLifeDays')} /><//>
              <${F} label="Rules (JSON)" k="rules" errors=${errors} wide
                hint='A list of {"event", "where"?, "points"} (points per matching event) or {"trait", "points"} (points while the JSON Logic on traits holds)'>
                <textarea rows="10" class="code" spellcheck="false" value=${s.rules} onInput=${set('rules')}></textarea><//>`
      }
      ${errors ? html`<div class="error" role="alert">Not saved: ${errors.path}: ${errors.message}</div>` : null}
      <${ErrorBox} error=${error} />
      <div class="row actions">
        <button type="submit" class="primary" disabled=${busy}>${busy ? 'Saving…' : id ? 'Save as a new version' : `Create ${k.noun}`}</button>
        <a class="button" href="#/traits">Cancel</a>
      </div>
    </form>
  </section>`;
}
