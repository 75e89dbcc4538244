// The workspace's tracking plan: its mode and events, edited as JSON (the API names the path
// of anything wrong); the violations counted per event and property path over a range; the
// quarantined events (Load more by cursor) and a replay of them against the plan as it is now.
import { useEffect, useState } from '/console/vendor/hooks.mjs';
import { ApiError, api, Empty, ErrorBox, Field, fmtNum, fmtTime, html } from './ui.js';

const EXAMPLE = {
  mode: 'flag',
  unplannedEvents: 'allow',
  events: {
    'Order Completed': {
      properties: {
        type: 'object',
        required: ['order_id', 'total'],
        properties: { order_id: { type: 'string' }, total: { type: 'number', minimum: 0 } },
      },
    },
  },
};

const day = 86_400_000;
const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);

function PlanEditor({ plan, onSaved }) {
  const [text, setText] = useState(() => JSON.stringify(plan ? strip(plan) : EXAMPLE, null, 2));
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState(null);
  const save = async (e) => {
    e.preventDefault();
    setError(null);
    setSaved(null);
    let body;
    try {
      body = JSON.parse(text);
    } catch (err) {
      setError(new Error(`The plan is not JSON: ${err.message}`));
      return;
    }
    setBusy(true);
    try {
      const after = await api('/v1/tracking-plan', { method: 'PUT', body });
      setSaved(after.version);
      onSaved(after);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<form onSubmit=${save} aria-label="Tracking plan">
    <${Field} label="Plan (JSON)" wide hint="mode allow | flag | quarantine; events by name with JSON Schemas (draft 2020-12) for properties and traits; identify and group traits">
      <textarea rows="18" class="code" spellcheck="false" value=${text} onInput=${(e) => setText(e.currentTarget.value)}></textarea>
    <//>
    <${ErrorBox} error=${error} />
    ${saved ? html`<p role="status" data-testid="plan-saved">Saved as version ${saved}. Ingest applies it within a second.</p>` : null}
    <button type="submit" class="primary" disabled=${busy}>${busy ? 'Saving…' : 'Save plan'}</button>
  </form>`;
}

/** The plan as it is edited: the input fields only. */
function strip(plan) {
  const { mode, unplannedEvents, events, identify, group } = plan;
  return Object.fromEntries(
    Object.entries({ mode, unplannedEvents, events, identify, group }).filter(([, v]) => v !== undefined),
  );
}

function Violations() {
  const [range, setRange] = useState(() => ({
    from: isoDay(Date.now() - 7 * day),
    to: isoDay(Date.now() + day),
  }));
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const load = async () => {
    setError(null);
    try {
      setData(await api(`/v1/tracking-plan/violations?from=${range.from}&to=${range.to}`));
    } catch (err) {
      setError(err);
    }
  };
  useEffect(() => {
    load();
  }, []);
  return html`<section aria-labelledby="violations-title">
    <h2 id="violations-title">Violations</h2>
    <form class="row" onSubmit=${(e) => {
      e.preventDefault();
      load();
    }} aria-label="Violations range">
      <${Field} label="From"><input type="date" value=${range.from} onInput=${(e) => setRange({ ...range, from: e.currentTarget.value })} /><//>
      <${Field} label="To"><input type="date" value=${range.to} onInput=${(e) => setRange({ ...range, to: e.currentTarget.value })} /><//>
      <button type="submit">Show</button>
    </form>
    <${ErrorBox} error=${error} />
    ${
      data && data.violations.length === 0
        ? html`<${Empty} title="No violations in this range" />`
        : data
          ? html`<table data-testid="violations">
              <caption>Events that broke the plan, by property and rule (distinct events)</caption>
              <thead><tr><th scope="col">Event</th><th scope="col">Property</th><th scope="col">Rule</th><th scope="col">Events</th><th scope="col">Allowed</th><th scope="col">Flagged</th><th scope="col">Quarantined</th><th scope="col">Last seen</th></tr></thead>
              <tbody>${data.violations.map(
                (v) => html`<tr>
                  <td>${v.event}</td><td><code>${v.path}</code></td><td>${v.keyword}</td>
                  <td class="num">${fmtNum(v.count)}</td><td class="num">${fmtNum(v.byMode.allow)}</td>
                  <td class="num">${fmtNum(v.byMode.flag)}</td><td class="num">${fmtNum(v.byMode.quarantine)}</td>
                  <td>${fmtTime(v.lastSeen)}</td>
                </tr>`,
              )}</tbody>
            </table>`
          : html`<p class="muted">Loading…</p>`
    }
  </section>`;
}

function Quarantine() {
  const [items, setItems] = useState([]);
  const [next, setNext] = useState(null);
  const [error, setError] = useState(null);
  const [replay, setReplay] = useState(null);
  const [busy, setBusy] = useState(false);
  const range = `from=${isoDay(Date.now() - 30 * day)}&to=${isoDay(Date.now() + day)}`;
  const load = async (cursor) => {
    setError(null);
    try {
      const page = await api(
        `/v1/tracking-plan/quarantine?${range}&limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      setItems((prev) => (cursor ? [...prev, ...page.items] : page.items));
      setNext(page.nextCursor);
    } catch (err) {
      setError(err);
    }
  };
  useEffect(() => {
    load(null);
  }, []);
  const run = async () => {
    setBusy(true);
    setError(null);
    try {
      setReplay(await api('/v1/tracking-plan/replay', { method: 'POST', body: {} }));
      await load(null);
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 409
          ? new Error('A replay is already running; try again shortly.')
          : err,
      );
    } finally {
      setBusy(false);
    }
  };
  return html`<section aria-labelledby="quarantine-title">
    <h2 id="quarantine-title">Quarantine</h2>
    <p class="muted">Events a plan in quarantine mode kept out of the pipeline (the last 30 days). After fixing the plan, replay them: those that pass now go on with their own message id; the others stay.</p>
    <button type="button" onClick=${run} disabled=${busy}>${busy ? 'Replaying…' : 'Replay against the current plan'}</button>
    ${replay ? html`<p role="status" data-testid="replay-result">Replayed ${fmtNum(replay.replayed)}; ${fmtNum(replay.stillInvalid)} still break the plan${replay.more ? '; more remain: replay again' : ''}.</p>` : null}
    <${ErrorBox} error=${error} />
    ${
      items.length === 0
        ? html`<${Empty} title="Nothing in quarantine" />`
        : html`<table data-testid="quarantine">
            <thead><tr><th scope="col">Received</th><th scope="col">Event</th><th scope="col">Why</th><th scope="col">Message id</th></tr></thead>
            <tbody>${items.map(
              (q) => html`<tr>
                <td>${fmtTime(q.receivedAt)}</td><td>${q.event || q.type}</td>
                <td>${q.reason}</td><td><code>${q.messageId}</code></td>
              </tr>`,
            )}</tbody>
          </table>`
    }
    ${next ? html`<button type="button" onClick=${() => load(next)}>Load more</button>` : null}
  </section>`;
}

export function TrackingPlanScreen() {
  const [plan, setPlan] = useState(undefined);
  const [error, setError] = useState(null);
  useEffect(() => {
    api('/v1/tracking-plan')
      .then(setPlan)
      .catch((err) => (err instanceof ApiError && err.status === 404 ? setPlan(null) : setError(err)));
  }, []);
  return html`<div class="screen">
    <h1>Tracking plan</h1>
    <${ErrorBox} error=${error} />
    ${
      plan === undefined
        ? html`<p class="muted">Loading…</p>`
        : html`<p data-testid="plan-summary">${
            plan
              ? `Version ${plan.version}, mode ${plan.mode}, ${Object.keys(plan.events ?? {}).length} events planned.`
              : 'No plan yet: every event passes unchecked. Start from the example below.'
          }</p>
          <${PlanEditor} plan=${plan} onSaved=${setPlan} />`
    }
    <${Violations} />
    <${Quarantine} />
  </div>`;
}
