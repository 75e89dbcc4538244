// Journeys: a list (status, version, entered, people in it now), a journey's view (the graph
// drawn as a flow with live counts on each step, refreshed every 2 s; activate / pause /
// resume / archive; conversion by branch on the edges, a holdout's lift on its split) and a
// form editor (entry, goal, re-entry, steps of every type; branch rules in the segment
// builder's visual rule editor).
import { useEffect, useState } from '/console/vendor/hooks.mjs';
import { CHANNELS, SETTINGS, SecretOnce } from './campaigns.js';
import {
  armLabel,
  arms,
  armText,
  BOX,
  blankForm,
  errorTarget,
  formSuccessors,
  layout,
  liftText,
  NODE_LABEL,
  NODE_TYPES,
  newFormNode,
  percent,
  summary,
  toForm,
  toJourney,
} from './journey-model.js';
import { CompareFields, Group } from './rule-editor.js';
import { newNode } from './rule-model.js';
import { api, Empty, ErrorBox, Field, fmtNum, fmtTime, html, navigate, usePolled } from './ui.js';

const path = (id, rest = '') => `/v1/journeys/${encodeURIComponent(id)}${rest}`;
const live = (stats) => Object.values(stats?.nodes ?? {}).reduce((s, n) => s + n.now, 0);

function useSegments() {
  const [segments, setSegments] = useState([]);
  const [error, setError] = useState(null);
  useEffect(() => {
    api('/v1/segments')
      .then((r) => setSegments(r.segments))
      .catch(setError);
  }, []);
  return [segments, error];
}

export function JourneyList() {
  const [rows, setRows] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let stop = false;
    let timer;
    const poll = async () => {
      try {
        const { journeys } = await api('/v1/journeys');
        const stats = await Promise.all(journeys.map((j) => api(path(j.id, '/stats')).catch(() => null)));
        if (!stop) {
          setRows(journeys.map((j, i) => ({ j, s: stats[i] })));
          setError(null);
        }
      } catch (err) {
        if (!stop) setError(err);
      }
      if (!stop) timer = setTimeout(poll, 5000);
    };
    poll();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, []);
  return html`
    <section aria-labelledby="journeys-title">
      <div class="title-row">
        <h1 id="journeys-title">Journeys</h1>
        <a class="button primary" href="#/journeys/new">New journey</a>
      </div>
      <${ErrorBox} error=${error} />
      ${
        rows === null
          ? error
            ? null
            : html`<p class="muted">Loading…</p>`
          : rows.length === 0
            ? html`<${Empty} title="No journeys yet">
                <p>A journey walks each person through steps (sends, waits, branches, splits) after an entry trigger.</p>
                <a class="button primary" href="#/journeys/new">Create a journey</a>
              <//>`
            : html`<div class="table-wrap"><table>
                <caption class="sr-only">Journeys</caption>
                <thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Version</th>
                  <th scope="col">Entered</th><th scope="col">In it now</th></tr></thead>
                <tbody>${rows.map(
                  ({ j, s }) => html`<tr key=${j.id}>
                    <td><a href=${`#/journeys/${j.id}`}>${j.name}</a></td>
                    <td><span class=${`badge ${j.status}`}>${j.status}</span></td>
                    <td>v${j.version}</td>
                    <td>${s ? fmtNum(s.entered) : '—'}</td>
                    <td>${s ? fmtNum(live(s)) : '—'}</td>
                  </tr>`,
                )}</tbody>
              </table></div>`
      }
    </section>`;
}

/**
 * The graph as a flow: a box per step (by depth from the first), labelled edges (with the
 * conversion of those who went that way), live counts, a split's lift over its holdout.
 */
function Flow({ nodes, stats }) {
  const g = layout(nodes);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  return html`
    <div class="flow-wrap">
      <svg class="flow" width=${g.width} height=${g.height} viewBox=${`0 0 ${g.width} ${g.height}`}
        role="img" aria-labelledby="flow-title">
        <title id="flow-title">The journey's steps as a flow, from the first step down; counts per step are in the table below.</title>
        <defs>
          <marker id="flow-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
            <path d="M0,0 L10,5 L0,10 z" class="flow-arrowhead" />
          </marker>
        </defs>
        ${g.edges.map((e) => {
          const f = e.arm && stats?.branches?.[e.from]?.[e.arm];
          const conv = f ? ` · ${armText(f)}` : '';
          const len = e.label.length + conv.length;
          return html`<g class="flow-edge" key=${`${e.from}-${e.label}`}>
            <path d=${e.path} marker-end="url(#flow-arrow)" />
            <rect x=${e.lx - len * 3.3 - 5} y=${e.ly - 9} width=${len * 6.6 + 10} height="18" rx="9" />
            <text x=${e.lx} y=${e.ly + 4} text-anchor="middle"><tspan data-testid=${`edge-${e.from}-${e.to}`}>${e.label}</tspan><tspan
              class="flow-conv" data-testid=${`conv-${e.from}-${e.to}`}>${conv}</tspan></text>
          </g>`;
        })}
        ${g.boxes.map((b) => {
          const n = byId.get(b.id);
          const c = stats?.nodes?.[b.id];
          const h = stats?.holdouts?.[b.id];
          return html`<g class=${`flow-node type-${n.type}`} key=${b.id} data-node=${b.id}
              transform=${`translate(${b.x},${b.y})`}>
            <rect width=${BOX.w} height=${BOX.h} rx="8" />
            <text x="10" y="19" class="flow-id">${b.id}<tspan class="flow-type" dx="6">${NODE_LABEL[n.type] ?? n.type}</tspan></text>
            <text x="10" y="37" class="flow-summary">${summary(n)}</text>
            ${h ? html`<g><title>${liftText(h)}</title><text x="10" y="95" class="flow-lift" data-testid=${`flow-lift-${b.id}`}>${liftText(h, true)}</text></g>` : null}
            <text x="10" y="57" class="flow-count">now <tspan class="flow-now" data-testid=${`now-${b.id}`}>${c ? c.now : '—'}</tspan>
              <tspan dx="8">passed </tspan><tspan data-testid=${`passed-${b.id}`}>${c ? c.passed : '—'}</tspan></text>
            <text x="10" y="76" class="flow-count">converted <tspan data-testid=${`converted-${b.id}`}>${c ? c.converted : '—'}</tspan>
              <tspan dx="8">exited </tspan><tspan data-testid=${`exited-${b.id}`}>${c ? c.exited : '—'}</tspan></text>
          </g>`;
        })}
      </svg>
    </div>`;
}

const ACTIONS = {
  draft: ['activate', 'archive'],
  active: ['pause', 'archive'],
  paused: ['resume', 'archive'],
  archived: [],
};
const ACTION_LABEL = { activate: 'Activate', pause: 'Pause', resume: 'Resume', archive: 'Archive…' };

/**
 * Webhook signing secrets the server generated in a save's answer ({node id: secret}), kept
 * here (never stored) until the journey's screen takes them: shown there once.
 */
let generated = null;
const takeGenerated = (id) => {
  const g = generated?.id === id ? generated.secrets : null;
  generated = null;
  return g;
};

export function JourneyDetail({ id }) {
  const [j, setJ] = useState(null);
  const [secrets, setSecrets] = useState(() => takeGenerated(id));
  const [stats, statsError] = usePolled(path(id, '/stats'));
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const load = () => api(path(id)).then(setJ).catch(setError);
  useEffect(() => {
    load();
  }, [id]);
  // a status changed elsewhere (another tab, the API) shows with the next stats
  useEffect(() => {
    if (j && stats && (stats.status !== j.status || stats.version !== j.version)) load();
  }, [stats?.status, stats?.version]);
  const act = async (action) => {
    setConfirming(false);
    setBusy(true);
    setError(null);
    try {
      setJ(await api(path(id, `/${action}`), { method: 'POST' }));
    } catch (err) {
      setError(err);
      // the refusal (409) says the journey moved meanwhile: show where it is now
      if (err.status === 409) load();
    } finally {
      setBusy(false);
    }
  };
  if (!j) return html`<${ErrorBox} error=${error} />${error ? null : html`<p class="muted">Loading…</p>`}`;
  const e = j.entry;
  const entry =
    'on' in e
      ? html`when a profile <strong>${e.on === 'enter' ? 'enters' : 'exits'}</strong> <a href=${`#/segments/${e.segment}`}>${e.segment}</a>`
      : 'event' in e
        ? html`on the event <strong>${e.event}</strong>${e.where ? html` where <code>${JSON.stringify(e.where)}</code>` : ''}`
        : 'dateTrait' in e
          ? html`on each person’s <strong>${e.dateTrait}</strong>${e.offset ? ` ${e.offset}` : ''} at ${e.at} local time`
          : 'broadcast' in e
            ? html`once at ${fmtTime(e.broadcast.at)} for the members of <a href=${`#/segments/${e.broadcast.segment}`}>${e.broadcast.segment}</a>`
            : 'schedule' in e
              ? html`at each <code>${e.schedule.cron}</code>${e.schedule.tz ? ` (${e.schedule.tz})` : ''} for the members of <a href=${`#/segments/${e.schedule.segment}`}>${e.schedule.segment}</a>`
              : html`<code>${JSON.stringify(e)}</code>`;
  const ended = Object.entries(stats?.ended ?? {});
  return html`
    <section aria-labelledby="journey-title">
      <div class="title-row">
        <h1 id="journey-title">${j.name}</h1>
        <span class=${`badge ${j.status}`} data-testid="journey-status">${j.status}</span>
        ${ACTIONS[j.status].map(
          (a) =>
            html`<button type="button" key=${a} disabled=${busy}
              onClick=${() => (a === 'archive' ? setConfirming(true) : act(a))}>${ACTION_LABEL[a]}</button>`,
        )}
        ${j.status === 'archived' ? null : html`<a class="button" href=${`#/journeys/${id}/edit`}>Edit</a>`}
      </div>
      ${
        confirming
          ? html`<div class="panel confirm" role="group" aria-label="Archive this journey">
              <p>Archiving is final: people in the journey leave it as they next move.</p>
              <button type="button" class="primary" onClick=${() => act('archive')}>Archive for good</button>
              <button type="button" onClick=${() => setConfirming(false)}>Keep it</button>
            </div>`
          : null
      }
      <${ErrorBox} error=${error ?? statsError} />
      ${Object.entries(secrets ?? {}).map(
        ([node, secret]) =>
          html`<${SecretOnce} key=${node} secret=${secret} what=${`Signing secret of ${node}`}
            onDone=${() => setSecrets((s) => Object.fromEntries(Object.entries(s).filter(([k]) => k !== node)))} />`,
      )}
      <p>Starts ${entry}${j.goal ? html`; converts on ${'event' in j.goal ? html`the event <strong>${j.goal.event}</strong>` : html`entering <a href=${`#/segments/${j.goal.segment}`}>${j.goal.segment}</a>`} within ${j.goal.within ?? 'P30D'} of entering` : ''}.
        <span class="muted"> v${j.version} · updated ${fmtTime(j.updatedAt)}</span></p>
      <p class="links">
        <a href=${`#/ledger?journeyId=${encodeURIComponent(id)}`}>Its sends in the ledger</a>
        <a href=${`#/ledger/steps?journeyId=${encodeURIComponent(id)}`}>Its steps in the ledger</a>
        <a href=${`#/audit?entityType=journey&entityId=${encodeURIComponent(id)}`}>Audit history</a>
      </p>
      <dl class="stats" aria-label="Journey totals">
        <div><dt>Entered</dt><dd data-testid="journey-entered">${fmtNum(stats?.entered)}</dd></div>
        <div><dt>In it now</dt><dd data-testid="journey-live">${stats ? fmtNum(live(stats)) : '—'}</dd></div>
        <div><dt>Refused re-entry</dt><dd>${fmtNum(stats?.refused)}</dd></div>
        <div><dt>Converted after leaving</dt><dd>${fmtNum(stats?.convertedAfterExit)}</dd></div>
        ${ended.map(([k, v]) => html`<div key=${k}><dt>Ended: ${k}</dt><dd>${fmtNum(v)}</dd></div>`)}
      </dl>
      <h2>Flow <span class="muted small">(refreshed every 2 s)</span></h2>
      <${Flow} nodes=${j.nodes} stats=${stats} />
      <div class="table-wrap"><table class="node-counts">
        <caption>Counts per step</caption>
        <thead><tr><th scope="col">Step</th><th scope="col">Type</th><th scope="col">Now</th><th scope="col">Passed</th>
          <th scope="col">Converted</th><th scope="col">Exited</th></tr></thead>
        <tbody>${j.nodes.map((n) => {
          const c = stats?.nodes?.[n.id];
          return html`<tr key=${n.id}><th scope="row">${n.id}</th><td>${NODE_LABEL[n.type] ?? n.type}</td>
            <td>${c ? fmtNum(c.now) : '—'}</td><td>${c ? fmtNum(c.passed) : '—'}</td>
            <td>${c ? fmtNum(c.converted) : '—'}</td><td>${c ? fmtNum(c.exited) : '—'}</td></tr>`;
        })}</tbody>
      </table></div>
      <${Conversion} nodes=${j.nodes} stats=${stats} />
    </section>`;
}

/** Conversion by branch: each arm of a split, branch or wait-until; a split's lift over its holdout. */
function Conversion({ nodes, stats }) {
  const rows = nodes.flatMap((n) => arms(n).map((arm) => [n, arm, stats?.branches?.[n.id]?.[arm]]));
  if (rows.length === 0) return null;
  const td = (f, k) => html`<td>${f ? fmtNum(f[k]) : '—'}</td>`;
  return html`<div class="table-wrap"><table class="node-counts conversion">
      <caption>Conversion by branch <span class="muted small">(reached the goal within its window)</span></caption>
      <thead><tr><th scope="col">Step</th><th scope="col">Way</th><th scope="col">Went that way</th>
        <th scope="col">Converted</th><th scope="col">Rate</th></tr></thead>
      <tbody>${rows.map(
        ([
          n,
          arm,
          f,
        ]) => html`<tr key=${`${n.id}:${arm}`} data-arm=${`${n.id}:${arm}`}><th scope="row">${n.id}</th>
          <td>${armLabel(arm)}</td>${td(f, 'entered')}${td(f, 'converted')}<td>${f ? percent(f.rate) : '—'}</td></tr>`,
      )}</tbody>
    </table></div>
    ${nodes.map((n) => {
      const h = stats?.holdouts?.[n.id];
      return h
        ? html`<p key=${n.id} data-testid=${`lift-${n.id}`}><strong>${n.id}</strong>: ${liftText(h)}; every variant ${armText(h.treatment)}, holdout ${armText(h.holdout)}.</p>`
        : null;
    })}`;
}

const options = (pairs, value) =>
  pairs.map(([v, label]) => html`<option value=${v} selected=${v === value}>${label}</option>`);

/** Property filters of an event (entry, goal, wait until) with the rule editor's comparisons. */
function Filters({ f, onChange, what }) {
  if (f.whereJson !== null)
    return html`<${Field} label=${`${what} filter (JSON Logic on properties)`} wide>
      <textarea rows="4" class="code" value=${f.whereJson} onInput=${(e) => onChange({ whereJson: e.currentTarget.value })} />
    <//>`;
  return html`<div class="filters wide">
    ${f.filters.map(
      (c, i) => html`<div class="filter" key=${i}>
        <span class="where">${i === 0 ? 'where' : 'and'}</span>
        <${CompareFields} c=${c} fieldLabel="Property" placeholder="currency"
          onChange=${(nc) => onChange({ filters: f.filters.map((x, k) => (k === i ? nc : x)) })} />
        <button type="button" class="link" aria-label=${`Remove ${what.toLowerCase()} property filter ${i + 1}`}
          onClick=${() => onChange({ filters: f.filters.filter((_, k) => k !== i) })}>Remove filter</button>
      </div>`,
    )}
    <button type="button" class="small" onClick=${() => onChange({ filters: [...f.filters, newNode('filter')] })}>
      + ${what} property filter
    </button>
  </div>`;
}

const SegmentSelect = ({ label, value, segments, onChange, optional }) => html`
  <${Field} label=${label}>
    <select onChange=${(e) => onChange(e.currentTarget.value)}>
      <option value="" selected=${value === ''}>${optional ? '— none —' : 'Choose a segment…'}</option>
      ${segments.map((s) => html`<option value=${s.id} selected=${s.id === value}>${s.name}</option>`)}
    </select>
  <//>`;

const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

function NodeFields({ n, set, segments }) {
  switch (n.type) {
    case 'send': {
      const setSetting = (k, v) =>
        set({ settings: { ...n.settings, [n.channel]: { ...n.settings[n.channel], [k]: v } } });
      return html`
        <${Field} label="Channel">
          <select onChange=${(e) => set({ channel: e.currentTarget.value })}>${options(
            CHANNELS.map((c) => [c, c]),
            n.channel,
          )}</select>
        <//>
        <${Field} label="Consent purpose" hint="default marketing">
          <input value=${n.purpose} placeholder="marketing" onInput=${(e) => set({ purpose: e.currentTarget.value })} />
        <//>
        ${SETTINGS[n.channel].map(
          ([
            k,
            label,
            kind,
          ]) => html`<${Field} key=${`${n.channel}.${k}`} label=${label} wide=${kind === 'area'}>
            ${
              kind === 'area'
                ? html`<textarea rows="3" class="code" value=${n.settings[n.channel][k] ?? ''}
                    onInput=${(e) => setSetting(k, e.currentTarget.value)} />`
                : html`<input type=${kind === 'url' ? 'url' : 'text'} value=${n.settings[n.channel][k] ?? ''}
                    onInput=${(e) => setSetting(k, e.currentTarget.value)} />`
            }
          <//>`,
        )}`;
    }
    case 'wait':
      return html`
        <${Field} label="Wait">
          <select onChange=${(e) => set({ mode: e.currentTarget.value })}>${options(
            [
              ['duration', 'for a duration'],
              ['event', 'until an event'],
              ['segment', 'until a segment entry'],
              ['local', 'until a local time of day'],
            ],
            n.mode,
          )}</select>
        <//>
        ${n.mode === 'duration' ? html`<${Field} label="Duration" hint="ISO 8601: PT30M, P2D, P1W"><input value=${n.duration} onInput=${(e) => set({ duration: e.currentTarget.value })} /><//>` : null}
        ${n.mode === 'event' ? html`<${Field} label="Event name"><input value=${n.event} placeholder="Activated" onInput=${(e) => set({ event: e.currentTarget.value })} /><//>` : null}
        ${n.mode === 'segment' ? html`<${SegmentSelect} label="Segment" value=${n.segment} segments=${segments} onChange=${(v) => set({ segment: v })} />` : null}
        ${n.mode === 'event' || n.mode === 'segment' ? html`<${Field} label="Timeout" hint="ISO 8601: P3D"><input value=${n.timeout} onInput=${(e) => set({ timeout: e.currentTarget.value })} /><//>` : null}
        ${
          n.mode === 'local'
            ? html`<${Field} label="Local time" hint="the profile's timezone, else the workspace's"><input value=${n.time} placeholder="10:00" onInput=${(e) => set({ time: e.currentTarget.value })} /><//>
              <fieldset class="weekdays"><legend>On (none: any day)</legend>${WEEKDAYS.map(
                (
                  d,
                ) => html`<label class="check" key=${d}><input type="checkbox" checked=${n.weekdays.includes(d)}
                  onChange=${(e) => set({ weekdays: e.currentTarget.checked ? [...n.weekdays, d] : n.weekdays.filter((x) => x !== d) })} /><span>${d}</span></label>`,
              )}</fieldset>`
            : null
        }
        ${n.mode === 'event' ? html`<${Filters} f=${n} what="Event" onChange=${set} />` : null}`;
    case 'branch':
      return n.ruleJson === null
        ? html`<div class="wide"><${Group} node=${n.tree} onChange=${(tree) => set({ tree })} segments=${segments} path="" /></div>`
        : html`<${Field} label="Rule (JSON Logic; the builder cannot show this rule)" wide>
            <textarea rows="6" class="code" value=${n.ruleJson} onInput=${(e) => set({ ruleJson: e.currentTarget.value })} />
          <//>`;
    case 'update':
      return html`<${Field} label="Traits to set (a JSON object)" wide>
        <textarea rows="3" class="code" value=${n.traits} onInput=${(e) => set({ traits: e.currentTarget.value })} />
      <//>`;
    case 'score':
      return html`<${Field} label="Score trait"><input value=${n.trait} placeholder="engagement" onInput=${(e) => set({ trait: e.currentTarget.value })} /><//>
        <${Field} label="Points to add" hint="negative to take away"><input class="num" inputmode="decimal" value=${n.add} onInput=${(e) => set({ add: e.currentTarget.value })} /><//>`;
    case 'list':
      return html`<${Field} label="List action">
          <select onChange=${(e) => set({ action: e.currentTarget.value })}>${options(
            [
              ['add', 'put on the list'],
              ['remove', 'take off the list'],
            ],
            n.action,
          )}</select>
        <//>
        <${Field} label="List id" hint="kept in the lists trait"><input value=${n.list} placeholder="vip" onInput=${(e) => set({ list: e.currentTarget.value })} /><//>`;
    case 'webhook':
      return html`<${Field} label="Webhook URL"><input type="url" value=${n.url} onInput=${(e) => set({ url: e.currentTarget.value })} /><//>
        <${Field} label="Signing secret (write-only; empty keeps the stored one or generates one)"><input value=${n.secret} onInput=${(e) => set({ secret: e.currentTarget.value })} /><//>
        <${Field} label="Data (a JSON object sent as data; optional)" wide>
          <textarea rows="3" class="code" value=${n.data} onInput=${(e) => set({ data: e.currentTarget.value })} />
        <//>`;
    default:
      return null;
  }
}

/** The "go to" selects of a node: every other step, or the end of the run. */
function NextFields({ n, set, ids }) {
  const targets = [['', '— end of the journey —'], ...ids.filter((x) => x !== n.id).map((x) => [x, x])];
  if (n.type === 'split')
    return html`
      ${n.variants.map(
        (v, i) => html`<div class="row variant" key=${i}>
          <${Field} label=${`Variant ${i + 1} weight`}>
            <input class="num" inputmode="decimal" value=${v.weight}
              onInput=${(e) => set({ variants: n.variants.map((x, k) => (k === i ? { ...x, weight: e.currentTarget.value } : x)) })} />
          <//>
          <${Field} label=${`Variant ${i + 1} goes to`}>
            <select onChange=${(e) => set({ variants: n.variants.map((x, k) => (k === i ? { ...x, next: e.currentTarget.value } : x)) })}>
              ${options(targets, v.next)}
            </select>
          <//>
          ${n.variants.length > 1 ? html`<button type="button" class="link" aria-label=${`Remove variant ${i + 1} of ${n.id}`} onClick=${() => set({ variants: n.variants.filter((_, k) => k !== i) })}>Remove variant</button>` : null}
        </div>`,
      )}
      <div class="row">
        <button type="button" class="small" onClick=${() => set({ variants: [...n.variants, { weight: '1', next: '' }] })}>+ Variant</button>
        <${Field} label="Holdout (percent, control group)">
          <input class="num" inputmode="decimal" value=${n.holdout} placeholder="0" onInput=${(e) => set({ holdout: e.currentTarget.value })} />
        <//>
      </div>`;
  return formSuccessors(n).map(
    ([k, label]) => html`<${Field} key=${k} label=${label}>
      <select onChange=${(e) => set({ [k]: e.currentTarget.value })}>${options(targets, n[k])}</select>
    <//>`,
  );
}

function NodeEditor({ n, i, count, ids, segments, error, set, move, remove }) {
  return html`
    <fieldset class=${`journey-node type-${n.type}${error ? ' invalid' : ''}`} data-step=${i}
      aria-describedby=${error ? `node-error-${i}` : undefined}>
      <legend>Step ${i + 1}${i === 0 ? ' (start)' : ''}: ${NODE_LABEL[n.type]}</legend>
      <div class="row">
        <${Field} label="Step id">
          <input value=${n.id} maxlength="64" pattern="[A-Za-z0-9_-]+" onInput=${(e) => set({ id: e.currentTarget.value })} />
        <//>
        <${NodeFields} n=${n} set=${set} segments=${segments} />
      </div>
      <div class="row"><${NextFields} n=${n} set=${set} ids=${ids} /></div>
      ${error ? html`<p class="field-error" id=${`node-error-${i}`}>${error}</p>` : null}
      <div class="row node-tools">
        <button type="button" class="small" disabled=${i === 0} aria-label=${`Move step ${n.id} up`} onClick=${() => move(-1)}>Move up</button>
        <button type="button" class="small" disabled=${i === count - 1} aria-label=${`Move step ${n.id} down`} onClick=${() => move(1)}>Move down</button>
        <button type="button" class="link" aria-label=${`Remove step ${n.id}`} onClick=${remove}>Remove step</button>
      </div>
    </fieldset>`;
}

export function JourneyEditor({ id }) {
  const [form, setForm] = useState(blankForm);
  const [segments, segError] = useSegments();
  const [version, setVersion] = useState(null);
  const [error, setError] = useState(null);
  const [saving, setSaving] = useState(false);
  useEffect(() => {
    if (id)
      api(path(id))
        .then((j) => {
          setForm(toForm(j));
          setVersion(j.version);
        })
        .catch(setError);
  }, [id]);
  const set = (patch) => setForm((f) => ({ ...f, ...patch }));
  const setPart = (part) => (patch) => setForm((f) => ({ ...f, [part]: { ...f[part], ...patch } }));
  const setNode = (i) => (patch) =>
    setForm((f) => ({ ...f, nodes: f.nodes.map((n, k) => (k === i ? { ...n, ...patch } : n)) }));
  const ids = form.nodes.map((n) => n.id);
  // an error naming a step by its index no longer points at it once steps move
  const reshape = (fn) => {
    setError(null);
    setForm(fn);
  };
  const add = (type) =>
    reshape((f) => ({
      ...f,
      nodes: [
        ...f.nodes,
        newFormNode(
          type,
          f.nodes.map((n) => n.id),
        ),
      ],
    }));
  const move = (i) => (d) =>
    reshape((f) => {
      const nodes = [...f.nodes];
      [nodes[i], nodes[i + d]] = [nodes[i + d], nodes[i]];
      return { ...f, nodes };
    });
  const remove = (i) => () => reshape((f) => ({ ...f, nodes: f.nodes.filter((_, k) => k !== i) }));

  const message = error?.message ?? null;
  const target = message ? errorTarget(message) : undefined;
  const partError = (part) => (target?.part === part ? html`<p class="field-error">${message}</p>` : null);

  const save = async (e) => {
    e.preventDefault();
    setError(null);
    const { body, problems } = toJourney(form);
    if (problems.length > 0) return setError(new Error(problems[0]));
    setSaving(true);
    try {
      const saved = id
        ? await api(path(id), { method: 'PUT', body })
        : await api('/v1/journeys', { method: 'POST', body });
      const shown = Object.fromEntries(
        (saved.nodes ?? [])
          .filter((n) => typeof n.webhook?.secret === 'string')
          .map((n) => [n.id, n.webhook.secret]),
      );
      generated = Object.keys(shown).length > 0 ? { id: saved.id, secrets: shown } : null;
      navigate(`#/journeys/${saved.id}`);
    } catch (err) {
      setError(err);
    } finally {
      setSaving(false);
    }
  };
  const { entry, goal } = form;
  return html`
    <section aria-labelledby="journey-editor-title">
      <div class="title-row">
        <h1 id="journey-editor-title">${id ? `Edit journey${version ? ` (v${version})` : ''}` : 'New journey'}</h1>
        <a href=${id ? `#/journeys/${id}` : '#/journeys'}>Cancel</a>
      </div>
      ${id ? html`<p class="muted">Saving makes a new version; people already in the journey continue on theirs.</p>` : null}
      <${ErrorBox} error=${segError} />
      <form class="stack" onSubmit=${save} novalidate>
        <fieldset>
          <legend>Entry</legend>
          <div class="row">
            <${Field} label="Journey name">
              <input value=${form.name} required maxlength="200" onInput=${(e) => set({ name: e.currentTarget.value })} />
            <//>
            <${Field} label="People enter">
              <select onChange=${(e) => setPart('entry')({ kind: e.currentTarget.value })}>${options(
                [
                  ['segment', 'on a segment entry or exit'],
                  ['event', 'on an event'],
                  ['dateTrait', 'on a date trait (each person’s own date)'],
                  ['broadcast', 'once, a segment’s members at a time'],
                  ['schedule', 'on a schedule, a segment’s members'],
                  ...(entry.kind === 'json' ? [['json', 'another trigger (JSON)']] : []),
                ],
                entry.kind,
              )}</select>
            <//>
            ${
              entry.kind === 'segment'
                ? html`<${Field} label="When a profile">
                    <select onChange=${(e) => setPart('entry')({ on: e.currentTarget.value })}>${options(
                      [
                        ['enter', 'enters'],
                        ['exit', 'exits'],
                      ],
                      entry.on,
                    )}</select>
                  <//>
                  <${SegmentSelect} label="Entry segment" value=${entry.segment} segments=${segments} onChange=${(v) => setPart('entry')({ segment: v })} />`
                : entry.kind === 'event'
                  ? html`<${Field} label="Entry event"><input value=${entry.event} placeholder="Signed Up"
                      onInput=${(e) => setPart('entry')({ event: e.currentTarget.value })} /><//>
                    <${Filters} f=${entry} what="Entry" onChange=${setPart('entry')} />`
                  : entry.kind === 'dateTrait'
                    ? html`<${Field} label="Date trait" hint="YYYY-MM-DD or a date-time"><input value=${entry.dateTrait} placeholder="renewal_date"
                        onInput=${(e) => setPart('entry')({ dateTrait: e.currentTarget.value })} /><//>
                      <${Field} label="Offset" hint="whole days or weeks: -P14D; empty: that day"><input value=${entry.offset} placeholder="-P14D"
                        onInput=${(e) => setPart('entry')({ offset: e.currentTarget.value })} /><//>
                      <${Field} label="At local time" hint="the profile’s timezone, else the default"><input value=${entry.at} placeholder="09:00"
                        onInput=${(e) => setPart('entry')({ at: e.currentTarget.value })} /><//>`
                    : entry.kind === 'broadcast' || entry.kind === 'schedule'
                      ? html`<${SegmentSelect} label="Audience segment" value=${entry.segment} segments=${segments} onChange=${(v) => setPart('entry')({ segment: v })} />
                        ${
                          entry.kind === 'broadcast'
                            ? html`<${Field} label="At" hint="ISO 8601 with a zone: 2026-12-24T09:00:00Z"><input value=${entry.broadcastAt}
                                onInput=${(e) => setPart('entry')({ broadcastAt: e.currentTarget.value })} /><//>`
                            : html`<${Field} label="Cron" hint="minute hour day month weekday"><input value=${entry.cron} placeholder="0 9 * * 1"
                                onInput=${(e) => setPart('entry')({ cron: e.currentTarget.value })} /><//>
                              <${Field} label="Time zone" hint="IANA; empty: the default"><input value=${entry.tz} placeholder="Europe/Berlin"
                                onInput=${(e) => setPart('entry')({ tz: e.currentTarget.value })} /><//>`
                        }`
                      : html`<${Field} label="Entry (JSON)" wide><textarea rows="4" class="code" value=${entry.json}
                      onInput=${(e) => setPart('entry')({ json: e.currentTarget.value })} /><//>`
            }
          </div>
          ${partError('name')}${partError('entry')}
        </fieldset>
        <fieldset>
          <legend>Goal and re-entry</legend>
          <div class="row">
            <${Field} label="Goal (converts and ends the run)">
              <select onChange=${(e) => setPart('goal')({ kind: e.currentTarget.value })}>${options(
                [
                  ['none', 'none'],
                  ['event', 'an event'],
                  ['segment', 'entering a segment'],
                ],
                goal.kind,
              )}</select>
            <//>
            ${goal.kind === 'event' ? html`<${Field} label="Goal event"><input value=${goal.event} placeholder="Order Completed" onInput=${(e) => setPart('goal')({ event: e.currentTarget.value })} /><//>` : null}
            ${goal.kind === 'segment' ? html`<${SegmentSelect} label="Goal segment" value=${goal.segment} segments=${segments} onChange=${(v) => setPart('goal')({ segment: v })} />` : null}
            ${goal.kind === 'none' ? null : html`<${Field} label="Conversion window" hint="ISO 8601 after entering; empty: P30D"><input value=${goal.within} placeholder="P30D" onInput=${(e) => setPart('goal')({ within: e.currentTarget.value })} /><//>`}
            ${goal.kind === 'event' ? html`<${Filters} f=${goal} what="Goal" onChange=${setPart('goal')} />` : null}
          </div>
          <div class="row">
            <${Field} label="Re-entry">
              <select onChange=${(e) => set({ reEntry: e.currentTarget.value })}>${options(
                [
                  ['never', 'never: once per person'],
                  ['after_exit', 'again after their run ended'],
                  ['days', 'again after N days'],
                ],
                form.reEntry,
              )}</select>
            <//>
            ${form.reEntry === 'days' ? html`<${Field} label="Days"><input class="num" type="number" min="1" max="3650" value=${form.everyDays} onInput=${(e) => set({ everyDays: e.currentTarget.value })} /><//>` : null}
            <${SegmentSelect} label="Exit when leaving the segment" optional value=${form.exitOnSegmentExit} segments=${segments}
              onChange=${(v) => set({ exitOnSegmentExit: v })} />
          </div>
          ${partError('goal')}${partError('rules')}
        </fieldset>
        <h2>Steps <span class="muted small">(people start at the first)</span></h2>
        ${form.nodes.length === 0 ? html`<p class="hint">No steps yet: add one below.</p>` : null}
        ${form.nodes.map(
          (n, i) => html`<${NodeEditor} key=${n.key} n=${n} i=${i} count=${form.nodes.length} ids=${ids}
            segments=${segments} error=${target?.node === i ? message : null}
            set=${setNode(i)} move=${move(i)} remove=${remove(i)} />`,
        )}
        <div class="adders" role="group" aria-label="Add a step">
          ${NODE_TYPES.map((t) => html`<button type="button" class="small" key=${t} onClick=${() => add(t)}>+ ${NODE_LABEL[t]}</button>`)}
        </div>
        <${ErrorBox} error=${error} />
        <div><button type="submit" class="primary" disabled=${saving}>${saving ? 'Saving…' : id ? 'Save as a new version' : 'Create journey'}</button></div>
      </form>
    </section>`;
}
