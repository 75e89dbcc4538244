// Landing pages: list, an editor built from blocks (heading, text, image, a form of the
// workspace, button) with optional A/B variants and their weights, a detail page with
// publish / unpublish / archive, the public URL on the ingest host (/p/{workspace}/{slug}),
// and stats per variant (views, submissions, conversion rate) over a date range.
import { useEffect, useState } from '/console/vendor/hooks.mjs';
import { BarChart, GroupedBars } from './charts.js';
import { blank, copyBlocks, moved, pageBody, pageKeys, pageState, refinePageError } from './form-model.js';
import {
  Check,
  CopyBox,
  DateRange,
  F,
  focusOnMount,
  IngestHost,
  ItemTools,
  lastDays,
  pct,
  useGet,
  useIngestHost,
  useSave,
} from './forms.js';
import { api, Empty, ErrorBox, Field, fmtNum, fmtTime, html, navigate } from './ui.js';

const BLOCKS = [
  ['heading', 'Heading'],
  ['text', 'Text'],
  ['image', 'Image'],
  ['form', 'Form'],
  ['button', 'Button'],
];

export function PageList() {
  const [data, error] = useGet('/v1/pages');
  const pages = data?.pages ?? null;
  return html`
    <section aria-labelledby="pages-title">
      <div class="title-row">
        <h1 id="pages-title">Landing pages</h1>
        <a class="button primary" href="#/pages/new">New page</a>
      </div>
      <${ErrorBox} error=${error} />
      ${
        pages === null
          ? error
            ? null
            : html`<p class="muted">Loading…</p>`
          : pages.length === 0
            ? html`<${Empty} title="No landing pages yet">
                <p>A landing page is served by the ingest host from a few blocks, with a form and A/B variants if you like.</p>
                <a class="button primary" href="#/pages/new">Create a page</a>
              <//>`
            : html`<div class="table-wrap"><table>
                <caption class="sr-only">Landing pages</caption>
                <thead><tr><th scope="col">Name</th><th scope="col">Slug</th><th scope="col">Status</th><th scope="col">Variants</th><th scope="col">Version</th><th scope="col">Updated</th></tr></thead>
                <tbody>${pages.map(
                  (p) => html`<tr key=${p.id}>
                    <td><a href=${`#/pages/${encodeURIComponent(p.id)}`}>${p.name}</a></td>
                    <td class="mono">${p.slug}</td>
                    <td><span class=${`badge ${p.status}`}>${p.status}</span></td>
                    <td class="num">${p.variants ? p.variants.length : 1}</td>
                    <td class="num">${p.version}</td>
                    <td>${fmtTime(p.updatedAt)}</td>
                  </tr>`,
                )}</tbody>
              </table></div>`
      }
    </section>`;
}

function BlockEditor({ b, at, i, n, set, onMove, errors, forms, scope }) {
  const k = (x) => `${at}[${i}].${x}`;
  const on = (x) => (e) => set({ ...b, [x]: e.currentTarget.value });
  const what = `${scope}block ${i + 1} (${b.type})`;
  const whole = errors?.key === `${at}[${i}]` ? errors.message : null;
  return html`<fieldset class="group">
    <legend>${scope}Block ${i + 1}: ${b.type}</legend>
    ${whole ? html`<p class="field-error" tabindex="-1" data-key=${`${at}[${i}]`}>${whole}</p>` : null}
    <div class="row">
      ${
        b.type === 'heading'
          ? html`<${F} label="Heading text" k=${k('text')} errors=${errors}><input value=${b.text} required onInput=${on('text')} /><//>
            <${F} label="Level" k=${k('level')} errors=${errors}><select value=${b.level} onChange=${on('level')}>
              <option value="">Automatic</option><option value="1">h1</option><option value="2">h2</option><option value="3">h3</option></select><//>`
          : b.type === 'text'
            ? html`<${F} label="Text" k=${k('text')} errors=${errors} wide hint="Plain text; a blank line starts a paragraph"><textarea rows="3" required value=${b.text} onInput=${on('text')}></textarea><//>`
            : b.type === 'image'
              ? html`<${F} label="Image URL" k=${k('url')} errors=${errors}><input type="url" value=${b.url} required onInput=${on('url')} /><//>
                <${F} label="Alt text" k=${k('alt')} errors=${errors} hint="Empty only for a decorative image"><input value=${b.alt} onInput=${on('alt')} /><//>
                <${F} label="Width (optional)" k=${k('width')} errors=${errors}><input type="number" class="num" min="1" max="4000" value=${b.width ?? ''} onInput=${on('width')} /><//>
                <${F} label="Height (optional)" k=${k('height')} errors=${errors}><input type="number" class="num" min="1" max="4000" value=${b.height ?? ''} onInput=${on('height')} /><//>`
              : b.type === 'form'
                ? html`<${F} label="Form" k=${k('formId')} errors=${errors}><select value=${b.formId} required onChange=${on('formId')}>
                    <option value="">Choose a form…</option>
                    ${(forms ?? []).map((f) => html`<option value=${f.id}>${f.name}${f.status === 'paused' ? ' (paused)' : ''}</option>`)}
                  </select><//>`
                : html`<${F} label="Button label" k=${k('label')} errors=${errors}><input value=${b.label} required onInput=${on('label')} /><//>
                  <${F} label="Button link" k=${k('url')} errors=${errors}><input type="url" value=${b.url} required onInput=${on('url')} /><//>`
      }
    </div>
    <${ItemTools} list=${at} i=${i} n=${n} what=${what} onMove=${onMove} />
  </fieldset>`;
}

function Blocks({ at, blocks, set, errors, forms, scope = '' }) {
  const [adding, setAdding] = useState('heading');
  return html`
    ${errors?.key === at ? html`<p class="field-error" tabindex="-1" data-key=${at}>${errors.message}</p>` : null}
    ${blocks.map(
      (
        b,
        i,
      ) => html`<${BlockEditor} key=${i} b=${b} at=${at} i=${i} n=${blocks.length} errors=${errors} forms=${forms} scope=${scope}
        set=${(nb) => set(blocks.map((x, j) => (j === i ? nb : x)))} onMove=${(j, d) => set(moved(blocks, j, d))} />`,
    )}
    <div class="row">
      <${Field} label=${`${scope}New block`}><select value=${adding} onChange=${(e) => setAdding(e.currentTarget.value)}>
        ${BLOCKS.map(([t, l]) => html`<option value=${t}>${l}</option>`)}</select><//>
      <div class="field"><span class="label" aria-hidden="true"> </span>
        <button type="button" data-add=${at} onClick=${() => set([...blocks, blank[adding]()])}>${`+ Add ${scope}block`}</button></div>
    </div>`;
}

export function PageEditor({ id }) {
  const [def, loadError] = useGet(id ? `/v1/pages/${encodeURIComponent(id)}` : null);
  const [formsList, formsError] = useGet('/v1/forms');
  const [s, setS] = useState(id ? null : pageState(null));
  useEffect(() => {
    if (def) setS(pageState(def));
  }, [def]);
  const [errors, error, busy, run] = useSave(s ? pageKeys(s) : [], (e) => refinePageError(e, s));
  if (!s)
    return html`<${ErrorBox} error=${loadError} />${loadError ? null : html`<p class="muted">Loading…</p>`}`;
  const forms = formsList?.forms;
  const set = (k) => (e) => setS({ ...s, [k]: e.currentTarget.value });
  const toggleAb = (on) =>
    setS(
      on
        ? {
            ...s,
            ab: true,
            variants: s.variants.length
              ? s.variants
              : [
                  { id: 'a', weight: '50', blocks: copyBlocks(s.blocks) },
                  { id: 'b', weight: '50', blocks: copyBlocks(s.blocks) },
                ],
          }
        : { ...s, ab: false, blocks: s.variants[0]?.blocks ?? s.blocks },
    );
  const setVariant = (i, v) => setS({ ...s, variants: s.variants.map((x, j) => (j === i ? v : x)) });
  const submit = (e) => {
    e.preventDefault();
    run(async () => {
      const saved = await api(id ? `/v1/pages/${encodeURIComponent(id)}` : '/v1/pages', {
        method: id ? 'PUT' : 'POST',
        body: pageBody(s),
      });
      navigate(`#/pages/${encodeURIComponent(saved.id)}`);
    });
  };
  const total = s.variants.reduce((t, v) => t + (Number(v.weight) || 0), 0);
  return html`
    <section aria-labelledby="page-edit-title">
      <h1 id="page-edit-title">${id ? `Edit ${def?.name ?? 'page'}` : 'New landing page'}</h1>
      <form class="stack" onSubmit=${submit}>
        <div class="row">
          <${F} label="Page name" k="name" errors=${errors}><input value=${s.name} required onInput=${set('name')} /><//>
          <${F} label="Slug" k="slug" errors=${errors} hint="In the URL: lower-case letters, digits, hyphens">
            <input class="mono" value=${s.slug} required onInput=${set('slug')} /><//>
          <${F} label="Title (optional)" k="title" errors=${errors} hint="Default: the name"><input value=${s.title} onInput=${set('title')} /><//>
        </div>
        <${F} label="Description (optional)" k="description" errors=${errors} wide><input value=${s.description} onInput=${set('description')} /><//>
        <${ErrorBox} error=${formsError} />
        <${Check} label="A/B test: variants with their own blocks" checked=${s.ab} onChange=${toggleAb} />
        ${
          s.ab
            ? html`
              ${errors?.key === 'variants' ? html`<p class="field-error" tabindex="-1" data-key="variants">${errors.message}</p>` : null}
              ${s.variants.map(
                (v, i) => html`<fieldset class="group variant" key=${i}>
                  <legend>Variant ${v.id || i + 1}</legend>
                  <div class="row">
                    <${F} label=${`Variant ${i + 1} id`} k=${`variants[${i}].id`} errors=${errors}><input value=${v.id} required onInput=${(e) => setVariant(i, { ...v, id: e.currentTarget.value })} /><//>
                    <${F} label=${`Variant ${i + 1} weight`} k=${`variants[${i}].weight`} errors=${errors}
                      hint=${total > 0 ? `${Math.round(((Number(v.weight) || 0) / total) * 100)}% of new visitors` : 'share of new visitors'}>
                      <input type="number" class="num" min="0" max="10000" step="1" required value=${v.weight} onInput=${(e) => setVariant(i, { ...v, weight: e.currentTarget.value })} /><//>
                  </div>
                  <${Blocks} at=${`variants[${i}].blocks`} blocks=${v.blocks} errors=${errors} forms=${forms} scope=${`Variant ${v.id || i + 1} `}
                    set=${(bs) => setVariant(i, { ...v, blocks: bs })} />
                  <div class="row">
                    <button type="button" disabled=${s.variants.length <= 2} onClick=${() => setS({ ...s, variants: moved(s.variants, i, 0) })}>${`Remove variant ${v.id || i + 1}`}</button>
                  </div>
                </fieldset>`,
              )}
              <div class="row"><button type="button" disabled=${s.variants.length >= 5} onClick=${() =>
                setS({
                  ...s,
                  variants: [
                    ...s.variants,
                    {
                      id: String.fromCharCode(97 + s.variants.length),
                      weight: '50',
                      blocks: copyBlocks(s.variants.at(-1)?.blocks ?? []),
                    },
                  ],
                })}>+ Variant (a copy of the last)</button></div>`
            : html`<${Blocks} at="blocks" blocks=${s.blocks} errors=${errors} forms=${forms} set=${(bs) => setS({ ...s, blocks: bs })} />`
        }
        ${errors ? html`<div class="error" role="alert">Not saved: ${errors.path}: ${errors.message}</div>` : null}
        <${ErrorBox} error=${error} />
        <div class="row actions">
          <button type="submit" class="primary" disabled=${busy}>${busy ? 'Saving…' : id ? 'Save as a new version' : 'Create page'}</button>
          <a class="button" href=${id ? `#/pages/${encodeURIComponent(id)}` : '#/pages'}>Cancel</a>
        </div>
      </form>
    </section>`;
}

export function PageDetail({ id }) {
  const [p, setP] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [host, setHost] = useIngestHost();
  const path = `/v1/pages/${encodeURIComponent(id)}`;
  useEffect(() => {
    api(path).then(setP).catch(setError);
  }, [path]);
  const act = async (action) => {
    setBusy(true);
    setError(null);
    try {
      if (action === 'delete') {
        await api(path, { method: 'DELETE' });
        navigate('#/pages');
      } else setP(await api(`${path}/${action}`, { method: 'POST' }));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  if (!p) return html`<${ErrorBox} error=${error} />${error ? null : html`<p class="muted">Loading…</p>`}`;
  const url = `${host ?? ''}/p/${encodeURIComponent(p.workspaceId)}/${p.slug}`;
  return html`
    <section aria-labelledby="page-title">
      <div class="title-row">
        <h1 id="page-title">${p.name}</h1>
        <span class=${`badge ${p.status}`} data-testid="page-status">${p.status}</span>
      </div>
      <p class="muted">Version ${p.version} · ${p.variants ? `${p.variants.length} variants (${p.variants.map((v) => `${v.id}: ${v.weight}`).join(', ')})` : 'one variant'} · updated ${fmtTime(p.updatedAt)} · <code>${p.id}</code></p>
      <div class="row actions">
        <a class="button primary" href=${`#/pages/${encodeURIComponent(p.id)}/edit`}>Edit</a>
        ${p.status !== 'published' ? html`<button type="button" disabled=${busy} onClick=${() => act('publish')}>Publish</button>` : null}
        ${p.status === 'published' ? html`<button type="button" disabled=${busy} onClick=${() => act('unpublish')}>Unpublish</button>` : null}
        ${p.status !== 'archived' ? html`<button type="button" disabled=${busy} onClick=${() => act('archive')}>Archive</button>` : null}
        ${
          confirmDelete
            ? html`<span class="confirm"><span>Delete this page? Its address stops working and the slug is freed.</span>
                <button type="button" disabled=${busy} onClick=${() => act('delete')}>Delete page</button>
                <button type="button" ref=${focusOnMount} onClick=${() => setConfirmDelete(false)}>Keep it</button></span>`
            : html`<button type="button" onClick=${() => setConfirmDelete(true)}>Delete…</button>`
        }
      </div>
      <p class="links"><a href=${`#/audit?entityType=page&entityId=${encodeURIComponent(p.id)}`}>Audit history</a></p>
      <${ErrorBox} error=${error} />
      <h2>Address</h2>
      <${IngestHost} host=${host} onChange=${setHost} />
      ${
        p.status === 'published'
          ? html`<p>Live at <a href=${url} target="_blank" rel="noopener noreferrer" data-testid="page-url">${url}</a></p>`
          : html`<p class="muted">Not published: <span class="mono">${url}</span> answers 404 until it is.</p>`
      }
      <${CopyBox} label="Public URL" text=${url} />
      <h2>Results</h2>
      <${PageStats} id=${p.id} />
    </section>`;
}

export function PageStats({ id }) {
  const [range, setRange] = useState(() => lastDays(30));
  const [s, error, reload] = useGet(
    `/v1/pages/${encodeURIComponent(id)}/stats?from=${range.from}&to=${range.to}`,
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
      html`<dl class="stats">
        <div><dt>Views</dt><dd>${fmtNum(s.views)}</dd></div>
        <div><dt>Unique visitors</dt><dd>${fmtNum(s.uniqueVisitors)}</dd></div>
        <div><dt>Submissions</dt><dd>${fmtNum(s.submissions)}</dd></div>
        <div><dt>Conversions</dt><dd>${fmtNum(s.conversions)}</dd></div>
        <div><dt>Conversion rate</dt><dd>${pct(s.conversionRate)}</dd></div>
      </dl>
      <${BarChart} label="Conversion rate per variant" format=${(v) => `${Math.round(v * 10) / 10}%`}
        rows=${s.variants.map((v) => ({ label: v.id, value: (v.conversionRate ?? 0) * 100, note: `${fmtNum(v.views)} views` }))} />
      <div class="table-wrap"><table data-testid="variant-stats"><caption>Per variant</caption>
        <thead><tr><th scope="col">Variant</th><th scope="col">Weight</th><th scope="col">Views</th><th scope="col">Unique visitors</th>
          <th scope="col">Submissions</th><th scope="col">Conversions</th><th scope="col">Conversion rate</th></tr></thead>
        <tbody>${s.variants.map(
          (
            v,
          ) => html`<tr key=${v.id}><th scope="row">${v.id}</th><td class="num">${v.weight ?? 'removed'}</td><td class="num">${fmtNum(v.views)}</td>
            <td class="num">${fmtNum(v.uniqueVisitors)}</td><td class="num">${fmtNum(v.submissions)}</td><td class="num">${fmtNum(v.conversions)}</td><td class="num">${pct(v.conversionRate)}</td></tr>`,
        )}</tbody></table></div>
      ${
        s.byDay.some((d) => d.views + d.submissions > 0)
          ? html`<${GroupedBars} label="Views and submissions per day" series=${['views', 'submissions']}
              groups=${s.byDay.map((d) => ({ label: d.date.slice(5), values: { views: d.views, submissions: d.submissions } }))} />`
          : html`<p class="muted">No views in this range.</p>`
      }`
    }`;
}
