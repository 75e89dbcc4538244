// The visual rule editor: nested and/or groups (each can be negated) of trait comparisons,
// event counts in a window with property filters, and segment memberships. Every control
// is a native, labelled form element, so the whole editor works from the keyboard.
import { COMPARE_OPS, COUNT_OPS, newNode, VALUE_TYPES, WINDOW_UNITS } from './rule-model.js';
import { Field, html } from './ui.js';

const options = (pairs, value) =>
  pairs.map(([v, label]) => html`<option value=${v} selected=${v === value}>${label}</option>`);

const KIND_LABEL = { trait: 'Trait', event: 'Event count', segment: 'Segment membership', group: 'Group' };

/** The comparison controls shared by trait conditions and event property filters. */
export function CompareFields({ c, onChange, fieldLabel, placeholder }) {
  const set = (patch) => onChange({ ...c, ...patch });
  const noValue = c.op === 'exists' || c.op === 'missing';
  return html`
    <${Field} label=${fieldLabel}>
      <input value=${c.field} placeholder=${placeholder} required
        onInput=${(e) => set({ field: e.currentTarget.value })} />
    <//>
    <${Field} label="Comparison">
      <select onChange=${(e) => set({ op: e.currentTarget.value })}>${options(COMPARE_OPS, c.op)}</select>
    <//>
    ${
      noValue
        ? null
        : html`
      <${Field} label=${c.op === 'in_list' ? 'Values (comma-separated)' : 'Value'}>
        ${
          c.type === 'boolean' && c.op !== 'in_list'
            ? html`<select onChange=${(e) => set({ value: e.currentTarget.value })}>
                ${options(
                  [
                    ['true', 'true'],
                    ['false', 'false'],
                  ],
                  c.value || 'true',
                )}</select>`
            : html`<input value=${c.value} inputmode=${c.type === 'number' ? 'decimal' : 'text'}
                onInput=${(e) => set({ value: e.currentTarget.value })} />`
        }
      <//>
      <${Field} label="Type">
        <select onChange=${(e) => {
          const type = e.currentTarget.value;
          set({ type, value: type === 'boolean' && c.value === '' ? 'true' : c.value });
        }}>${options(
          VALUE_TYPES.map((t) => [t, t]),
          c.type,
        )}</select>
      <//>`
    }`;
}

function Condition({ node, onChange, onRemove, segments, path, excludeId }) {
  const set = (patch) => onChange({ ...node, ...patch });
  let body;
  switch (node.kind) {
    case 'trait':
      body = html`<${CompareFields} c=${node} onChange=${onChange} fieldLabel="Trait" placeholder="plan" />`;
      break;
    case 'event':
      body = html`
        <${Field} label="Event name">
          <input value=${node.event} placeholder="Order Completed" required
            onInput=${(e) => set({ event: e.currentTarget.value })} />
        <//>
        <${Field} label="Count">
          <select onChange=${(e) => set({ cmp: e.currentTarget.value })}>${options(COUNT_OPS, node.cmp)}</select>
        <//>
        <${Field} label="Times">
          <input class="num" type="number" min="0" step="1" value=${node.count}
            onInput=${(e) => set({ count: e.currentTarget.value })} />
        <//>
        <${Field} label="In the last">
          <input class="num" type="number" min="1" step="1" value=${node.window}
            onInput=${(e) => set({ window: e.currentTarget.value })} />
        <//>
        <${Field} label="Unit">
          <select onChange=${(e) => set({ unit: e.currentTarget.value })}>${options(WINDOW_UNITS, node.unit)}</select>
        <//>
        <div class="filters wide">
          ${node.filters.map(
            (f, i) => html`
            <div class="filter" key=${i}>
              <span class="where">${i === 0 ? 'where' : 'and'}</span>
              <${CompareFields} c=${f} fieldLabel="Property" placeholder="currency"
                onChange=${(nf) => set({ filters: node.filters.map((x, j) => (j === i ? nf : x)) })} />
              <button type="button" class="link" aria-label=${`Remove property filter ${i + 1}`}
                onClick=${() => set({ filters: node.filters.filter((_, j) => j !== i) })}>Remove filter</button>
            </div>`,
          )}
          <button type="button" class="small" onClick=${() => set({ filters: [...node.filters, newNode('filter')] })}>
            + Property filter
          </button>
        </div>`;
      break;
    case 'segment': {
      const choices = segments.filter((s) => s.id !== excludeId);
      body = html`
        <${Field} label="Membership">
          <select onChange=${(e) => set({ member: e.currentTarget.value === 'in' })}>
            ${options(
              [
                ['in', 'is in'],
                ['out', 'is not in'],
              ],
              node.member ? 'in' : 'out',
            )}
          </select>
        <//>
        <${Field} label="Segment">
          <select required onChange=${(e) => set({ segmentId: e.currentTarget.value })}>
            <option value="" selected=${node.segmentId === ''}>Choose a segment…</option>
            ${choices.map((s) => html`<option value=${s.id} selected=${s.id === node.segmentId}>${s.name}</option>`)}
          </select>
        <//>
        ${choices.length === 0 ? html`<p class="hint wide">No other segments yet: save one first.</p>` : null}`;
      break;
    }
    case 'group':
      return html`<${Group} node=${node} onChange=${onChange} onRemove=${onRemove} segments=${segments}
        path=${path} excludeId=${excludeId} />`;
    default:
      body = html`<p>Unknown condition</p>`;
  }
  return html`
    <fieldset class=${`condition kind-${node.kind}`}>
      <legend>${KIND_LABEL[node.kind]} <span class="path">${path}</span></legend>
      <div class="row">${body}</div>
      <button type="button" class="link remove" aria-label=${`Remove condition ${path}`} onClick=${onRemove}>Remove</button>
    </fieldset>`;
}

export function Group({ node, onChange, onRemove, segments, path, excludeId }) {
  const set = (patch) => onChange({ ...node, ...patch });
  const add = (kind) => set({ children: [...node.children, newNode(kind)] });
  const label = path === '' ? 'Rule' : `Group ${path}`;
  return html`
    <fieldset class=${`group${node.negate ? ' negated' : ''}`}>
      <legend>${label}</legend>
      <div class="row">
        <${Field} label="Match">
          <select onChange=${(e) => set({ op: e.currentTarget.value })}>
            ${options(
              [
                ['and', 'all of these (and)'],
                ['or', 'any of these (or)'],
              ],
              node.op,
            )}
          </select>
        <//>
        <label class="check">
          <input type="checkbox" checked=${node.negate} onChange=${(e) => set({ negate: e.currentTarget.checked })} />
          <span>Not: the group must not hold</span>
        </label>
        ${onRemove ? html`<button type="button" class="link" onClick=${onRemove}>Remove group</button>` : null}
      </div>
      ${
        node.children.length === 0
          ? html`<p class="hint">No conditions yet: add one below.</p>`
          : node.children.map(
              (
                child,
                i,
              ) => html`<${Condition} key=${i} node=${child} segments=${segments} excludeId=${excludeId}
                path=${path === '' ? `${i + 1}` : `${path}.${i + 1}`}
                onChange=${(n) => set({ children: node.children.map((c, j) => (j === i ? n : c)) })}
                onRemove=${() => set({ children: node.children.filter((_, j) => j !== i) })} />`,
            )
      }
      <div class="adders" role="group" aria-label=${`Add to ${label.toLowerCase()}`}>
        <button type="button" class="small" onClick=${() => add('trait')}>+ Trait</button>
        <button type="button" class="small" onClick=${() => add('event')}>+ Event count</button>
        <button type="button" class="small" onClick=${() => add('segment')}>+ Segment membership</button>
        <button type="button" class="small" onClick=${() => add('group')}>+ Group</button>
      </div>
    </fieldset>`;
}
