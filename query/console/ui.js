// Shared bits: Preact + htm, the API client (admin key kept in sessionStorage only), small
// components for errors, empty states and labelled fields.
import { useEffect, useId, useState } from '/console/vendor/hooks.mjs';
import htm from '/console/vendor/htm.mjs';
import { cloneElement, h } from '/console/vendor/preact.mjs';

export const html = htm.bind(h);

const KEY = 'cdp.adminKey';
const WORKSPACE = 'cdp.workspace';
export const session = {
  key: () => sessionStorage.getItem(KEY),
  signIn: (k) => sessionStorage.setItem(KEY, k),
  signOut: () => {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(WORKSPACE);
  },
  /** The workspace a person in several acts in (X-Workspace); none: their only one. */
  workspace: () => sessionStorage.getItem(WORKSPACE),
  setWorkspace: (w) => sessionStorage.setItem(WORKSPACE, w),
};

/** The headers every API call carries: the key, and the chosen workspace if any. */
export function authHeaders() {
  const h = { authorization: `Bearer ${session.key() ?? ''}` };
  const ws = session.workspace();
  if (ws) h['x-workspace'] = ws;
  return h;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * Calls the query API with the admin key; throws ApiError with the server's message. CSV
 * comes back as text; any answer as a Blob with `blob` (a large download is not copied into a string).
 */
export async function api(path, { method = 'GET', body, accept, blob = false } = {}) {
  const headers = authHeaders();
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (accept) headers.accept = accept;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'the query service cannot be reached');
  }
  if (res.status === 401) {
    session.signOut();
    window.dispatchEvent(new Event('cdp-signed-out'));
  }
  if (!res.ok) {
    let msg = `${res.status} ${res.statusText}`;
    try {
      msg = (await res.json()).error ?? msg;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(res.status, msg);
  }
  if (blob) return res.blob();
  if (accept === 'text/csv') return res.text();
  if (res.status === 204) return null;
  return res.json();
}

/**
 * Reads a server-sent event stream with fetch (EventSource cannot send the admin key) and
 * reconnects after a drop. Returns a function that stops it.
 */
export function subscribe(path, onEvent, onState) {
  const ctrl = new AbortController();
  let stopped = false;
  const run = async () => {
    while (!stopped) {
      try {
        const res = await fetch(path, {
          headers: { ...authHeaders(), accept: 'text/event-stream' },
          signal: ctrl.signal,
        });
        if (!res.ok) throw new ApiError(res.status, `${res.status}`);
        onState?.('live');
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += decoder.decode(value, { stream: true });
          let end = buf.indexOf('\n\n');
          while (end >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            end = buf.indexOf('\n\n');
            if (block.startsWith(':')) continue;
            const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
            const data = [...block.matchAll(/^data: (.*)$/gm)].map((m) => m[1]).join('\n');
            try {
              onEvent(event, JSON.parse(data));
            } catch {
              // a malformed event is skipped
            }
          }
        }
      } catch (err) {
        if (stopped) return;
        if (err instanceof ApiError && err.status === 401) {
          onState?.('error');
          return;
        }
      }
      if (stopped) return;
      onState?.('reconnecting');
      await new Promise((r) => setTimeout(r, 2000));
    }
  };
  run();
  return () => {
    stopped = true;
    ctrl.abort();
  };
}

/**
 * GETs `path` now and every `ms` while mounted: [latest answer, latest error]. A success
 * clears the error; nothing is set once unmounted.
 */
export function usePolled(path, ms = 2000) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let stop = false;
    let timer;
    const poll = async () => {
      try {
        const v = await api(path);
        if (!stop) {
          setData(v);
          setError(null);
        }
      } catch (err) {
        if (!stop) setError(err);
      }
      if (!stop) timer = setTimeout(poll, ms);
    };
    poll();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [path, ms]);
  return [data, error];
}

export const ErrorBox = ({ error }) =>
  error ? html`<div class="error" role="alert">${error.message ?? String(error)}</div>` : null;

export const Empty = ({ title, children }) =>
  html`<div class="empty"><p class="empty-title">${title}</p>${children}</div>`;

/**
 * A labelled form control: the label names the control by `for`/`id` (its accessible name is
 * the label text alone, not the selected option too), and a hint is tied by aria-describedby.
 */
export function Field({ label, hint, children, wide }) {
  const id = useId();
  const control = Array.isArray(children) ? children.find((c) => c && typeof c === 'object') : children;
  return html`<div class=${wide ? 'field wide' : 'field'}>
    <label class="label" for=${id}>${label}</label>
    ${control ? cloneElement(control, { id, 'aria-describedby': hint ? `${id}-hint` : undefined }) : null}
    ${hint ? html`<span class="hint" id=${`${id}-hint`}>${hint}</span>` : null}
  </div>`;
}

export const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : '—');
export const fmtNum = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString());

/** Triggers a download of text (or a Blob) as a file. */
export function download(name, text, type = 'text/csv') {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function navigate(hash) {
  location.hash = hash;
}
