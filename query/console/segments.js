// Segments: the live list (member counts, backfill status, latest entries over server-sent
// events) and the builder (visual rule editor, the JSON Logic it makes, a live size
// estimate from the preview API, save).
import { useEffect, useRef, useState } from '/console/vendor/hooks.mjs';
import { Group } from './rule-editor.js';
import { fromLogic, NotBuildable, newNode, problems, toLogic } from './rule-model.js';
import { api, Empty, ErrorBox, Field, fmtNum, fmtTime, html, navigate, subscribe } from './ui.js';

export function SegmentList() {
  const [segments, setSegments] = useState(null);
  const [state, setState] = useState('connecting');
  const [error, setError] = useState(null);
  useEffect(
    () =>
      subscribe(
        '/v1/live/segments',
        (event, data) => {
          if (event === 'segments') {
            setSegments(data.segments);
            setError(null);
          } else if (event === 'error') setError(new Error(data.error));
        },
        setState,
      ),
    [],
  );
  return html`
    <section aria-labelledby="segments-title">
      <div class="title-row">
        <h1 id="segments-title">Segments</h1>
        <span class=${`live ${state}`} aria-live="polite">${state === 'live' ? '● live' : state}</span>
        <a class="button primary" href="#/segments/new">New segment</a>
      </div>
      <${ErrorBox} error=${error} />
      ${
        segments === null
          ? html`<p class="muted">Loading…</p>`
          : segments.length === 0
            ? html`<${Empty} title="No segments yet">
                <p>A segment is a rule over traits, events and other segments. Profiles enter it as events arrive.</p>
                <a class="button primary" href="#/segments/new">Build your first segment</a>
              <//>`
            : html`<ul class="cards" aria-label="Segments">
                ${segments.map((s) => html`<${SegmentCard} key=${s.id} s=${s} />`)}
              </ul>`
      }
    </section>`;
}

function SegmentCard({ s }) {
  return html`
    <li class="card segment-card" data-segment-id=${s.id}>
      <div class="card-head">
        <h2><a href=${`#/segments/${s.id}`}>${s.name}</a></h2>
        <span class=${`badge ${s.status}`}>${s.status === 'ready' ? 'ready' : `backfilling (${fmtNum(s.scanned)} scanned)`}</span>
      </div>
      <p class="count"><span class="member-count">${fmtNum(s.count)}</span> members <span class="muted">· v${s.version}</span></p>
      ${
        s.recentEntries.length === 0
          ? html`<p class="muted small">No members right now.</p>`
          : html`<details><summary>Latest entries</summary><${People} list=${s.recentEntries} /></details>`
      }
      ${
        s.recentExits.length === 0
          ? null
          : html`<details><summary>Latest exits</summary><${People} list=${s.recentExits} /></details>`
      }
    </li>`;
}

const People = ({ list }) => html`<ul class="entries">
  ${list.map(
    (
      e,
    ) => html`<li key=${`${e.profileId}-${e.at}`}><a href=${`#/profiles/${encodeURIComponent(e.profileId)}`}>${e.userId ?? e.profileId}</a>
      <span class="muted">${fmtTime(e.at)}</span></li>`,
  )}
</ul>`;

/** New (id undefined) or existing segment. */
export function SegmentBuilder({ id }) {
  const [name, setName] = useState('');
  const [tree, setTree] = useState(() => ({ ...newNode('group'), children: [] }));
  const [rawMode, setRawMode] = useState(null); // JSON text when the rule cannot be shown in the builder
  const [segments, setSegments] = useState([]);
  const [estimate, setEstimate] = useState(null);
  const [estimateError, setEstimateError] = useState(null);
  const [estimating, setEstimating] = useState(false);
  const [saveError, setSaveError] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const [saving, setSaving] = useState(false);
  const [version, setVersion] = useState(null);
  const seq = useRef(0);

  useEffect(() => {
    api('/v1/segments')
      .then((r) => setSegments(r.segments))
      .catch(setLoadError);
    if (!id) return;
    api(`/v1/segments/${encodeURIComponent(id)}`)
      .then((s) => {
        setName(s.name);
        setVersion(s.version);
        try {
          setTree(fromLogic(s.rule));
        } catch (err) {
          if (!(err instanceof NotBuildable)) throw err;
          setRawMode(JSON.stringify(s.rule, null, 2));
        }
      })
      .catch(setLoadError);
  }, [id]);

  let rule;
  let issues = [];
  if (rawMode !== null) {
    try {
      rule = JSON.parse(rawMode);
    } catch (err) {
      issues = [`JSON: ${err.message}`];
    }
  } else {
    issues = problems(tree);
    if (issues.length === 0) rule = toLogic(tree);
  }
  const ruleText = rule === undefined ? '' : JSON.stringify(rule, null, 2);

  // a live size estimate, debounced; only the answer to the latest rule is shown
  useEffect(() => {
    if (rule === undefined) {
      setEstimate(null);
      setEstimateError(null);
      return;
    }
    const mine = ++seq.current;
    setEstimating(true);
    const t = setTimeout(() => {
      api('/v1/segments/preview', { method: 'POST', body: { rule } })
        .then((r) => {
          if (mine !== seq.current) return;
          setEstimate(r);
          setEstimateError(null);
        })
        .catch((err) => {
          if (mine !== seq.current) return;
          setEstimate(null);
          setEstimateError(err);
        })
        .finally(() => mine === seq.current && setEstimating(false));
    }, 400);
    return () => clearTimeout(t);
  }, [ruleText]);

  const save = async (e) => {
    e.preventDefault();
    setSaveError(null);
    if (!name.trim()) return setSaveError(new Error('name: give the segment a name'));
    if (rule === undefined) return setSaveError(new Error(issues[0] ?? 'the rule is incomplete'));
    setSaving(true);
    try {
      const body = { name: name.trim(), rule };
      if (id) await api(`/v1/segments/${encodeURIComponent(id)}`, { method: 'PUT', body });
      else await api('/v1/segments', { method: 'POST', body });
      navigate('#/segments');
    } catch (err) {
      setSaveError(err);
    } finally {
      setSaving(false);
    }
  };

  if (loadError) return html`<${ErrorBox} error=${loadError} />`;
  return html`
    <section aria-labelledby="builder-title">
      <div class="title-row">
        <h1 id="builder-title">${id ? `Edit segment${version ? ` (v${version})` : ''}` : 'New segment'}</h1>
        ${id ? html`<a href=${`#/audit?entityType=segment&entityId=${encodeURIComponent(id)}`}>Audit history</a>` : null}
        <a href="#/segments">Back to segments</a>
      </div>
      <form class="builder" onSubmit=${save} novalidate>
        <div class="builder-main">
          <${Field} label="Segment name" wide>
            <input value=${name} required maxlength="200" placeholder="Pro users who ordered this week"
              onInput=${(e) => setName(e.currentTarget.value)} />
          <//>
          ${
            rawMode === null
              ? html`<${Group} node=${tree} onChange=${setTree} segments=${segments} path="" excludeId=${id} />`
              : html`<${Field} label="Rule (JSON Logic; this rule uses operators the builder does not show)" wide>
                  <textarea rows="14" class="code" value=${rawMode} onInput=${(e) => setRawMode(e.currentTarget.value)} />
                <//>`
          }
        </div>
        <aside class="builder-side">
          <div class="panel" aria-live="polite">
            <h2>Estimated size</h2>
            ${
              rule === undefined
                ? html`<p class="muted">Complete the rule to see an estimate.</p>`
                : estimateError
                  ? html`<${ErrorBox} error=${estimateError} />`
                  : estimate
                    ? html`<p class="estimate"><span class="estimate-size">${fmtNum(estimate.estimatedSize)}</span> profiles
                        ${estimate.exact ? '' : html`<span class="muted">(≈, ${fmtNum(estimate.matched)} of ${fmtNum(estimate.sampled)} sampled)</span>`}</p>
                        ${estimating ? html`<p class="muted small">updating…</p>` : null}`
                    : html`<p class="muted">Estimating…</p>`
            }
          </div>
          <div class="panel">
            <h2 id="json-title">JSON Logic</h2>
            ${
              issues.length > 0
                ? html`<ul class="issues">${issues.map((i) => html`<li>${i}</li>`)}</ul>`
                : null
            }
            <pre class="code" aria-labelledby="json-title" data-testid="rule-json">${ruleText}</pre>
          </div>
          <${ErrorBox} error=${saveError} />
          <button type="submit" class="primary" disabled=${saving}>${saving ? 'Saving…' : id ? 'Save changes' : 'Save segment'}</button>
        </aside>
      </form>
    </section>`;
}
