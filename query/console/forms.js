// Forms: list (status, version, submissions and conversion over the last 30 days), an editor
// with a field builder (type-specific validation, trait mapping), consent boxes with their
// exact text and a success message or redirect; a detail page with pause/activate, the embed
// code and hosted URL on the ingest host, and reporting (GET /v1/forms/{id}/stats).
// A server 400 names its field (`fields[1].pattern: …`); it is shown next to that control.
import { useEffect, useId, useState } from '/console/vendor/hooks.mjs';
import { cloneElement } from '/console/vendor/preact.mjs';
import { GroupedBars } from './charts.js';
import {
  blankConsent,
  blankField,
  errorTarget,
  FIELD_TYPES,
  formBody,
  formKeys,
  formState,
  moved,
  parseApiError,
} from './form-model.js';
import { api, Empty, ErrorBox, Field, fmtNum, fmtTime, html, navigate } from './ui.js';

const DAY = 86_400_000;
const isoDate = (ms) => new Date(ms).toISOString().slice(0, 10);
export const lastDays = (n) => ({ from: isoDate(Date.now() - n * DAY), to: isoDate(Date.now() + DAY) });
export const pct = (r) => (r === null || r === undefined ? '—' : `${Math.round(r * 1000) / 10}%`);

/**
 * A labelled control that can carry the server's error for it: aria-invalid, and the error
 * (then the hint) as its description. `errors` is {key, message} of the last failed save.
 */
export function F({ label, hint, k, errors, children, wide }) {
  const id = useId();
  const err = errors && k && errors.key === k ? errors.message : null;
  const control = Array.isArray(children) ? children.find((c) => c && typeof c === 'object') : children;
  const desc = [err ? `${id}-err` : '', hint ? `${id}-hint` : ''].filter(Boolean).join(' ') || undefined;
  const props = { id, 'aria-describedby': desc, 'aria-invalid': err ? 'true' : undefined, 'data-key': k };
  return html`<div class=${wide ? 'field wide' : 'field'}>
    <label class="label" for=${id}>${label}</label>
    ${control ? cloneElement(control, props) : null}
    ${err ? html`<span class="field-error" id=${`${id}-err`}>${err}</span>` : null}
    ${hint ? html`<span class="hint" id=${`${id}-hint`}>${hint}</span>` : null}
  </div>`;
}

/** A checkbox with its label around it, and the server's error for it. */
export function Check({ label, k, errors, checked, onChange }) {
  const err = errors && k && errors.key === k ? errors.message : null;
  return html`<label class="check"><input type="checkbox" checked=${checked} data-key=${k} aria-invalid=${err ? 'true' : undefined}
    onChange=${(e) => onChange(e.currentTarget.checked)} /><span>${label}</span>${err ? html` <span class="field-error">${err}</span>` : null}</label>`;
}

/**
 * Saves through `save()`; a 400 naming a known key is kept as {key, message} and the control
 * is focused, anything else is a general error. Returns [errors, general error, busy, run].
 */
export function useSave(keys, refine) {
  const [errors, setErrors] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (errors) document.querySelector(`[data-key="${CSS.escape(errors.key)}"]`)?.focus();
  }, [errors]);
  const run = async (save) => {
    setBusy(true);
    setErrors(null);
    setError(null);
    try {
      await save();
    } catch (err) {
      const raw = parseApiError(err);
      const p = raw && refine ? refine(raw) : raw;
      const key = p && errorTarget(p.path, keys);
      if (key) setErrors({ key, message: p.message, path: p.path });
      else setError(err);
    } finally {
      setBusy(false);
    }
  };
  return [errors, error, busy, run];
}

/** A ref that focuses its element once, when it appears (a confirmation's safe choice). */
export const focusOnMount = (el) => el?.focus();

/**
 * Up / Down / Remove buttons for the `i`th of `n` items called `what`, in the list `list`.
 * Focus follows a moved item (its button of the same direction, or the other one at an
 * end); after a removal it goes to the next item's Remove, else to the list's add button.
 */
export function ItemTools({ list, i, n, what, onMove }) {
  const move = (d) => {
    onMove(i, d);
    const to = d === 0 ? Math.min(i, n - 2) : i + d;
    setTimeout(() => {
      const q = (x) => document.querySelector(`[data-move="${CSS.escape(`${list}:${to}:${x}`)}"]`);
      const el = d === 0 ? q(0) : [q(d), q(-d)].find((b) => b && !b.disabled);
      (el ?? document.querySelector(`[data-add="${CSS.escape(list)}"]`))?.focus();
    });
  };
  const btn = (d, label, text, disabled) =>
    html`<button type="button" class="small" data-move=${`${list}:${i}:${d}`} disabled=${disabled} aria-label=${label} onClick=${() => move(d)}>${text}</button>`;
  return html`<div class="row item-tools">
    ${btn(-1, `Move ${what} up`, '↑', i === 0)}
    ${btn(1, `Move ${what} down`, '↓', i === n - 1)}
    ${btn(0, `Remove ${what}`, 'Remove', false)}
  </div>`;
}

// ---- the ingest host: where the embed code and public pages point --------------------------

const HOST_KEY = 'cdp.ingestHost';
let deployed;
/** The ingest host the query service was configured with (CDP_INGEST_PUBLIC_URL), asked once. */
const deployedHost = () => {
  deployed ??= fetch('/console/config.json')
    .then((r) => (r.ok ? r.json() : {}))
    .then((c) => (typeof c.ingestUrl === 'string' ? c.ingestUrl.replace(/\/+$/, '') : null))
    .catch(() => null);
  return deployed;
};

/**
 * The ingest host for embed codes and page links: the one set in this browser, else the
 * service's configured public URL, else this host on the ingest's default port.
 * [host (null until known), set (empty: back to the default)].
 */
export function useIngestHost() {
  const [host, setHost] = useState(() => localStorage.getItem(HOST_KEY));
  useEffect(() => {
    if (host) return;
    let live = true;
    deployedHost().then((h) => live && setHost(h || `${location.protocol}//${location.hostname}:8080`));
    return () => {
      live = false;
    };
  }, [host]);
  const set = (v) => {
    if (v) localStorage.setItem(HOST_KEY, v);
    else localStorage.removeItem(HOST_KEY);
    setHost(v || null);
  };
  return [host, set];
}

/** Edits the ingest host; saved in this browser, an empty value goes back to the configured one. */
export function IngestHost({ host, onChange }) {
  const [v, setV] = useState(host ?? '');
  useEffect(() => setV(host ?? ''), [host]);
  return html`<form class="row" onSubmit=${(e) => {
    e.preventDefault();
    onChange(v.trim().replace(/\/+$/, ''));
  }}>
    <${Field} label="Ingest host (public URL)" hint="Where visitors reach the ingest service. A change is kept in this browser; empty: the configured one.">
      <input type="url" value=${v} onInput=${(e) => setV(e.currentTarget.value)} />
    <//>
    <div class="field"><span class="label" aria-hidden="true"> </span><button type="submit">Use this host</button></div>
  </form>`;
}

/** A read-only code box with a Copy button (the clipboard, else the text is selected). */
export function CopyBox({ label, text }) {
  const id = useId();
  const [note, setNote] = useState('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setNote('Copied.');
    } catch {
      const ta = document.getElementById(id);
      ta?.focus();
      ta?.select();
      setNote('Selected: press Ctrl+C (⌘C) to copy.');
    }
  };
  return html`<div class="field wide">
    <label class="label" for=${id}>${label}</label>
    <textarea id=${id} class="mono" readonly rows=${Math.min(6, Math.max(2, Math.ceil(text.length / 64)))} value=${text}></textarea>
    <div class="row"><button type="button" onClick=${copy} aria-label=${`Copy ${label}`}>Copy</button><span class="muted" role="status">${note}</span></div>
  </div>`;
}

/** A from/to date pair (to exclusive) with an Apply button. */
export function DateRange({ range, onApply }) {
  const [r, setR] = useState(range);
  return html`<form class="row" onSubmit=${(e) => {
    e.preventDefault();
    onApply(r);
  }}>
    <${Field} label="From"><input type="date" value=${r.from} required onInput=${(e) => setR({ ...r, from: e.currentTarget.value })} /><//>
    <${Field} label="To (exclusive)"><input type="date" value=${r.to} required onInput=${(e) => setR({ ...r, to: e.currentTarget.value })} /><//>
    <div class="field"><span class="label" aria-hidden="true"> </span><button type="submit">Show</button></div>
  </form>`;
}

/** GETs `path` whenever it changes: [data, error, reload]. */
export function useGet(path) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [n, setN] = useState(0);
  useEffect(() => {
    if (!path) return;
    let live = true;
    setError(null);
    api(path)
      .then((d) => live && setData(d))
      .catch((e) => live && setError(e));
    return () => {
      live = false;
    };
  }, [path, n]);
  return [data, error, () => setN((x) => x + 1)];
}

// ---- list ----------------------------------------------------------------------------------

export function FormList() {
  const [list, error] = useGet('/v1/forms');
  const [stats, setStats] = useState({});
  const forms = list?.forms ?? null;
  useEffect(() => {
    if (!forms) return;
    let live = true;
    const r = lastDays(30);
    // the stats route is per form: the first 50 are asked, one at a time (each is a
    // ClickHouse query; a long list shows — for the rest)
    (async () => {
      for (const f of forms.slice(0, 50)) {
        if (!live) return;
        try {
          const st = await api(`/v1/forms/${encodeURIComponent(f.id)}/stats?from=${r.from}&to=${r.to}`);
          if (live) setStats((o) => ({ ...o, [f.id]: st }));
        } catch {
          // a form's numbers that cannot be read show as —
        }
      }
    })();
    return () => {
      live = false;
    };
  }, [forms]);
  return html`
    <section aria-labelledby="forms-title">
      <div class="title-row">
        <h1 id="forms-title">Forms</h1>
        <a class="button primary" href="#/forms/new">New form</a>
      </div>
      <${ErrorBox} error=${error} />
      ${
        forms === null
          ? error
            ? null
            : html`<p class="muted">Loading…</p>`
          : forms.length === 0
            ? html`<${Empty} title="No forms yet">
                <p>A form captures leads on your site or a landing page: its fields set traits, its boxes record consent.</p>
                <a class="button primary" href="#/forms/new">Create a form</a>
              <//>`
            : html`<div class="table-wrap"><table>
                <caption class="sr-only">Forms, with submissions in the last 30 days</caption>
                <thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Version</th>
                  <th scope="col">Submissions (30 days)</th><th scope="col">Conversion</th><th scope="col">Updated</th></tr></thead>
                <tbody>${forms.map(
                  (f) => html`<tr key=${f.id}>
                    <td><a href=${`#/forms/${encodeURIComponent(f.id)}`}>${f.name}</a></td>
                    <td><span class=${`badge ${f.status}`}>${f.status}</span></td>
                    <td class="num">${f.version}</td>
                    <td class="num">${fmtNum(stats[f.id]?.submissions)}</td>
                    <td class="num">${stats[f.id] ? pct(stats[f.id].conversionRate) : '—'}</td>
                    <td>${fmtTime(f.updatedAt)}</td>
                  </tr>`,
                )}</tbody>
              </table></div>`
      }
    </section>`;
}

// ---- editor --------------------------------------------------------------------------------

function FieldEditor({ f, i, n, set, onMove, errors }) {
  const k = (x) => `fields[${i}].${x}`;
  const on = (x) => (e) => set({ ...f, [x]: e.currentTarget.value });
  const what = `field ${i + 1}${f.name ? ` (${f.name})` : ''}`;
  const wholeErr = errors?.key === `fields[${i}]` ? errors.message : null;
  return html`<fieldset class="group form-field" aria-invalid=${wholeErr ? 'true' : undefined}>
    <legend>Field ${i + 1}</legend>
    ${wholeErr ? html`<p class="field-error" tabindex="-1" data-key=${`fields[${i}]`}>${wholeErr}</p>` : null}
    <div class="row">
      <${F} label="Name" k=${k('name')} errors=${errors} hint="Posted as; a letter first"><input value=${f.name} required onInput=${on('name')} /><//>
      <${F} label="Label" k=${k('label')} errors=${errors}><input value=${f.label} required onInput=${on('label')} /><//>
      <${F} label="Type" k=${k('type')} errors=${errors}>
        <select value=${f.type} onChange=${on('type')}>${FIELD_TYPES.map((t) => html`<option value=${t}>${t}</option>`)}</select>
      <//>
      <${F} label="Trait" k=${k('trait')} errors=${errors} hint="Default: the name; email identifies">
        <input value=${f.trait} placeholder=${f.name} onInput=${on('trait')} />
      <//>
      <${Check} label="Required" k=${k('required')} errors=${errors} checked=${f.required} onChange=${(v) => set({ ...f, required: v })} />
    </div>
    <div class="row">
      ${
        ['text', 'email', 'tel', 'hidden'].includes(f.type)
          ? html`<${F} label="Max length" k=${k('maxLength')} errors=${errors}><input type="number" class="num" min="1" value=${f.maxLength ?? ''} onInput=${on('maxLength')} /><//>`
          : null
      }
      ${
        ['text', 'tel', 'hidden'].includes(f.type)
          ? html`<${F} label="Pattern" k=${k('pattern')} errors=${errors} hint="A regular expression the whole value matches">
              <input class="mono" value=${f.pattern ?? ''} onInput=${on('pattern')} /><//>`
          : null
      }
      ${
        f.type === 'number'
          ? html`<${F} label="Min" k=${k('min')} errors=${errors}><input type="number" class="num" step="any" value=${f.min ?? ''} onInput=${on('min')} /><//>
            <${F} label="Max" k=${k('max')} errors=${errors}><input type="number" class="num" step="any" value=${f.max ?? ''} onInput=${on('max')} /><//>`
          : null
      }
      ${
        f.type === 'select'
          ? html`<${F} label="Options" k=${k('options')} errors=${errors} hint="One per line"><textarea rows="3" required value=${f.options ?? ''} onInput=${on('options')}></textarea><//>`
          : null
      }
      ${f.type === 'hidden' ? html`<${F} label="Value" k=${k('value')} errors=${errors}><input value=${f.value ?? ''} onInput=${on('value')} /><//>` : null}
    </div>
    <${ItemTools} list="fields" i=${i} n=${n} what=${what} onMove=${onMove} />
  </fieldset>`;
}

function ConsentEditor({ c, i, n, set, onMove, errors }) {
  const k = (x) => `consents[${i}].${x}`;
  const on = (x) => (e) => set({ ...c, [x]: e.currentTarget.value });
  return html`<fieldset class="group">
    <legend>Consent box ${i + 1}</legend>
    <div class="row">
      <${F} label="Name" k=${k('name')} errors=${errors}><input value=${c.name} required onInput=${on('name')} /><//>
      <${F} label="Purpose" k=${k('purpose')} errors=${errors} hint="e.g. marketing"><input value=${c.purpose} required onInput=${on('purpose')} /><//>
      <${F} label="Channel" k=${k('channel')} errors=${errors} hint="e.g. email, sms"><input value=${c.channel} required onInput=${on('channel')} /><//>
      <${Check} label="Required" k=${k('required')} errors=${errors} checked=${c.required} onChange=${(v) => set({ ...c, required: v })} />
    </div>
    <${F} label="Exact text shown" k=${k('text')} errors=${errors} wide hint="Kept with each consent record">
      <textarea rows="2" required value=${c.text} onInput=${on('text')}></textarea>
    <//>
    <${ItemTools} list="consents" i=${i} n=${n} what=${`consent box ${i + 1}`} onMove=${onMove} />
  </fieldset>`;
}

/**
 * How the visitor sees the form (labels, controls, consent text), drawn from the editor's
 * state. Visual only: inert and hidden from screen readers, whose users have the fields
 * above with the same text.
 */
function FormPreview({ s }) {
  const control = (f) => {
    if (f.type === 'select')
      return html`<select disabled tabindex="-1"><option>${
        String(f.options ?? '')
          .split('\n')
          .find((o) => o.trim()) ?? ''
      }</option></select>`;
    const type =
      f.type === 'email' ? 'email' : f.type === 'number' ? 'number' : f.type === 'tel' ? 'tel' : 'text';
    return html`<input type=${type} disabled tabindex="-1" />`;
  };
  const star = (r) => (r ? ' *' : '');
  return html`<div class="panel form-preview" inert aria-hidden="true">
    ${s.fields
      .filter((f) => f.type !== 'hidden')
      .map((f, i) =>
        f.type === 'checkbox'
          ? html`<div class="check" key=${i}><input type="checkbox" disabled tabindex="-1" /><span>${f.label || f.name}${star(f.required)}</span></div>`
          : html`<div class="field" key=${i}><span class="label">${f.label || f.name}${star(f.required)}</span>${control(f)}</div>`,
      )}
    ${s.consents.map(
      (c, i) =>
        html`<div class="check" key=${`c${i}`}><input type="checkbox" disabled tabindex="-1" /><span>${c.text || '(consent text)'}${star(c.required)}</span></div>`,
    )}
    <div><span class="button primary">Submit</span></div>
  </div>`;
}

export function FormEditor({ id }) {
  const [def, loadError] = useGet(id ? `/v1/forms/${encodeURIComponent(id)}` : null);
  const [s, setS] = useState(id ? null : formState(null));
  useEffect(() => {
    if (def) setS(formState(def));
  }, [def]);
  const [errors, error, busy, run] = useSave(s ? formKeys(s) : []);
  if (!s)
    return html`<${ErrorBox} error=${loadError} />${loadError ? null : html`<p class="muted">Loading…</p>`}`;
  const setField = (i) => (f) => setS({ ...s, fields: s.fields.map((x, j) => (j === i ? f : x)) });
  const setConsent = (i) => (c) => setS({ ...s, consents: s.consents.map((x, j) => (j === i ? c : x)) });
  const submit = (e) => {
    e.preventDefault();
    run(async () => {
      const saved = await api(id ? `/v1/forms/${encodeURIComponent(id)}` : '/v1/forms', {
        method: id ? 'PUT' : 'POST',
        body: formBody(s),
      });
      navigate(`#/forms/${encodeURIComponent(saved.id)}`);
    });
  };
  const title = id ? `Edit ${def?.name ?? 'form'}` : 'New form';
  return html`
    <section aria-labelledby="form-edit-title">
      <h1 id="form-edit-title">${title}</h1>
      <form class="stack" onSubmit=${submit}>
        <${F} label="Form name" k="name" errors=${errors}><input value=${s.name} required onInput=${(e) => setS({ ...s, name: e.currentTarget.value })} /><//>
        <h2>Fields</h2>
        ${errors?.key === 'fields' ? html`<p class="field-error" tabindex="-1" data-key="fields">${errors.message}</p>` : null}
        ${s.fields.map(
          (
            f,
            i,
          ) => html`<${FieldEditor} key=${i} f=${f} i=${i} n=${s.fields.length} set=${setField(i)} errors=${errors}
            onMove=${(j, d) => setS({ ...s, fields: moved(s.fields, j, d) })} />`,
        )}
        <div class="row"><button type="button" data-add="fields" onClick=${() => setS({ ...s, fields: [...s.fields, blankField(s.fields.length)] })}>+ Field</button></div>
        <h2>Consent boxes</h2>
        <p class="muted">A ticked box records consent for its purpose and channel, with the text shown. Unticked records nothing.</p>
        ${errors?.key === 'consents' ? html`<p class="field-error" tabindex="-1" data-key="consents">${errors.message}</p>` : null}
        ${s.consents.map(
          (
            c,
            i,
          ) => html`<${ConsentEditor} key=${i} c=${c} i=${i} n=${s.consents.length} set=${setConsent(i)} errors=${errors}
            onMove=${(j, d) => setS({ ...s, consents: moved(s.consents, j, d) })} />`,
        )}
        <div class="row"><button type="button" data-add="consents" onClick=${() => setS({ ...s, consents: [...s.consents, blankConsent(s.consents.length)] })}>+ Consent box</button></div>
        <h2>After submitting</h2>
        <fieldset class="row"><legend>Show</legend>
          <label class="check"><input type="radio" name="success" checked=${s.successKind === 'message'} onChange=${() => setS({ ...s, successKind: 'message' })} /><span>A message</span></label>
          <label class="check"><input type="radio" name="success" checked=${s.successKind === 'redirect'} onChange=${() => setS({ ...s, successKind: 'redirect' })} /><span>Go to a page</span></label>
        </fieldset>
        ${errors?.key === 'success' ? html`<p class="field-error" tabindex="-1" data-key="success">${errors.message}</p>` : null}
        ${
          s.successKind === 'message'
            ? html`<${F} label="Success message" k="success.message" errors=${errors} wide><textarea rows="2" required value=${s.message} onInput=${(e) => setS({ ...s, message: e.currentTarget.value })}></textarea><//>`
            : html`<${F} label="Redirect URL" k="success.redirect" errors=${errors} wide hint="An absolute http(s) URL"><input type="url" required value=${s.redirect} onInput=${(e) => setS({ ...s, redirect: e.currentTarget.value })} /><//>`
        }
        <h2>Preview</h2>
        <${FormPreview} s=${s} />
        ${errors ? html`<div class="error" role="alert">Not saved: ${errors.path}: ${errors.message}</div>` : null}
        <${ErrorBox} error=${error} />
        <div class="row actions">
          <button type="submit" class="primary" disabled=${busy}>${busy ? 'Saving…' : id ? 'Save as a new version' : 'Create form'}</button>
          <a class="button" href=${id ? `#/forms/${encodeURIComponent(id)}` : '#/forms'}>Cancel</a>
        </div>
      </form>
    </section>`;
}

// ---- detail: status, embed code, reporting ---------------------------------------------------

export function FormDetail({ id }) {
  const [form, setForm] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [host, setHost] = useIngestHost();
  const path = `/v1/forms/${encodeURIComponent(id)}`;
  useEffect(() => {
    api(path).then(setForm).catch(setError);
  }, [path]);
  const act = async (action) => {
    setBusy(true);
    setError(null);
    try {
      if (action === 'delete') {
        await api(path, { method: 'DELETE' });
        navigate('#/forms');
      } else setForm(await api(`${path}/${action}`, { method: 'POST' }));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  if (!form) return html`<${ErrorBox} error=${error} />${error ? null : html`<p class="muted">Loading…</p>`}`;
  const ws = encodeURIComponent(form.workspaceId);
  const fid = encodeURIComponent(form.id);
  const snippet = `<script src="${host}/v1/forms/embed.js" data-workspace="${form.workspaceId}" data-form="${form.id}" async></script>`;
  return html`
    <section aria-labelledby="form-title">
      <div class="title-row">
        <h1 id="form-title">${form.name}</h1>
        <span class=${`badge ${form.status}`} data-testid="form-status">${form.status}</span>
      </div>
      <p class="muted">Version ${form.version} · ${form.fields.length} fields · ${(form.consents ?? []).length === 1 ? '1 consent box' : `${(form.consents ?? []).length} consent boxes`} · updated ${fmtTime(form.updatedAt)} · <code>${form.id}</code></p>
      <div class="row actions">
        <a class="button primary" href=${`#/forms/${fid}/edit`}>Edit</a>
        ${
          form.status === 'active'
            ? html`<button type="button" disabled=${busy} onClick=${() => act('pause')}>Pause</button>`
            : html`<button type="button" disabled=${busy} onClick=${() => act('activate')}>Activate</button>`
        }
        ${
          confirmDelete
            ? html`<span class="confirm"><span>Delete this form? Pages that embed it stop showing it.</span>
                <button type="button" disabled=${busy} onClick=${() => act('delete')}>Delete form</button>
                <button type="button" ref=${focusOnMount} onClick=${() => setConfirmDelete(false)}>Keep it</button></span>`
            : html`<button type="button" onClick=${() => setConfirmDelete(true)}>Delete…</button>`
        }
      </div>
      <p class="links"><a href=${`#/audit?entityType=form&entityId=${fid}`}>Audit history</a></p>
      ${form.status === 'paused' ? html`<p class="muted" role="status">Paused: submissions are refused (409) until it is activated.</p>` : null}
      <${ErrorBox} error=${error} />
      <h2>Put it on a page</h2>
      <${IngestHost} host=${host} onChange=${setHost} />
      ${
        host
          ? html`<${CopyBox} label="Embed code" text=${snippet} />
            <${CopyBox} label="Hosted form URL" text=${`${host}/v1/forms/${ws}/${fid}`} />`
          : null
      }
      <h2>Submissions</h2>
      <${FormStats} id=${form.id} />
    </section>`;
}

export function FormStats({ id }) {
  const [range, setRange] = useState(() => lastDays(30));
  const [s, error, reload] = useGet(
    `/v1/forms/${encodeURIComponent(id)}/stats?from=${range.from}&to=${range.to}`,
  );
  // Show asks again even for the same range (new views and submissions arrive all the time)
  const apply = (r) => {
    setRange(r);
    reload();
  };
  return html`
    <${DateRange} range=${range} onApply=${apply} />
    <${ErrorBox} error=${error} />
    ${
      s &&
      html`<dl class="stats" data-testid="form-stats">
        <div><dt>Submissions</dt><dd>${fmtNum(s.submissions)}</dd></div>
        <div><dt>Unique submitters</dt><dd>${fmtNum(s.uniqueSubmitters)}</dd></div>
        <div><dt>Views on landing pages</dt><dd>${fmtNum(s.views)}</dd></div>
        <div><dt>From landing pages</dt><dd>${fmtNum(s.pageSubmissions)}</dd></div>
        <div><dt>Conversion rate</dt><dd>${pct(s.conversionRate)}</dd></div>
      </dl>
      ${
        s.byDay.some((d) => d.views + d.submissions > 0)
          ? html`<${GroupedBars} label="Landing-page views and submissions per day" series=${['views', 'submissions']}
              groups=${s.byDay.map((d) => ({ label: d.date.slice(5), values: { views: d.views, submissions: d.submissions } }))} />`
          : html`<p class="muted">No submissions or views in this range.</p>`
      }
      ${
        s.byPage.length
          ? html`<div class="table-wrap"><table><caption>By landing page</caption>
              <thead><tr><th scope="col">Page</th><th scope="col">Views</th><th scope="col">Submissions</th></tr></thead>
              <tbody>${s.byPage.map((p) => html`<tr key=${p.pageId}><td><a href=${`#/pages/${encodeURIComponent(p.pageId)}`}>${p.pageId}</a></td><td class="num">${fmtNum(p.views)}</td><td class="num">${fmtNum(p.submissions)}</td></tr>`)}</tbody>
            </table></div>`
          : null
      }`
    }`;
}
