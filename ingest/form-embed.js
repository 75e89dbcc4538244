// The embeddable form snippet, served by the ingest host as /v1/forms/embed.js (see
// ingest/form-embed.ts). Plain browser JavaScript, no framework, no build step. Placement:
//
//   <script src="https://INGEST/v1/forms/embed.js" data-workspace="WS" data-form="ID" async></script>
//     renders the form right after the script element;
//   <div data-cdp-form="WS/ID"></div> + the script (without data-form) once per page
//     renders into every such container (data-host="https://INGEST" on a container overrides
//     the host taken from the script's URL; window.cdpForms.scan() renders containers added later).
//
// It fetches the form's public definition and a fresh time-to-fill token as JSON, renders
// labelled fields (definition text only ever through textContent, never as markup), and
// posts JSON to the submit endpoint with the page URL (UTM parameters included), the
// referrer and the analytics.js anonymousId of this browser, so the lead is the visitor the
// page already tracks. Field errors from the server are shown next to their fields.
// Requests are cross-origin without credentials (the ingest host answers CORS for them).
(() => {
  const w = window;
  const d = document;
  if (w.cdpForms?.version) {
    // a second copy of the script on the page: its own placement, and containers added since
    w.cdpForms.fromScript(d.currentScript);
    w.cdpForms.scan();
    return;
  }
  const EMBED_PATH = /\/v1\/forms\/embed(?:\.[0-9a-f]+)?\.js(?:[?#].*)?$/;
  const ID = /^[A-Za-z0-9_-]{1,64}$/;
  const ANON = /^[A-Za-z0-9_.:-]{1,128}$/;
  let counter = 0;

  const scriptEl = d.currentScript;
  const defaultHost = hostOf(scriptEl);

  function hostOf(script) {
    if (!script?.src) return '';
    const src = String(script.src);
    return EMBED_PATH.test(src) ? src.replace(EMBED_PATH, '') : new URL(src).origin;
  }

  function el(tag, attrs, text) {
    const e = d.createElement(tag);
    if (attrs)
      for (const k in attrs) if (attrs[k] !== undefined && attrs[k] !== false) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function httpUrl(v) {
    return typeof v === 'string' && /^https?:\/\//i.test(v) && v.length <= 2048;
  }

  /** The analytics.js anonymousId: its API when loaded, else what it stored (localStorage, cookie). */
  function anonymousId() {
    let id;
    try {
      const a = w.analytics;
      if (a && typeof a.user === 'function') id = a.user().anonymousId();
    } catch (_e) {
      id = undefined;
    }
    if (!id) {
      try {
        id = unquote(w.localStorage.getItem('ajs_anonymous_id'));
      } catch (_e) {
        id = undefined;
      }
    }
    if (!id) {
      const m = /(?:^|;\s*)ajs_anonymous_id=([^;]*)/.exec(d.cookie || '');
      if (m) {
        try {
          id = unquote(decodeURIComponent(m[1]));
        } catch (_e) {
          id = undefined;
        }
      }
    }
    return typeof id === 'string' && ANON.test(id) ? id : undefined;
  }

  function unquote(v) {
    if (typeof v !== 'string') return undefined;
    return v.length > 1 && v.charAt(0) === '"' && v.charAt(v.length - 1) === '"' ? v.slice(1, -1) : v;
  }

  /**
   * The id once analytics.js has one: at once when it is loaded or stored; when only its
   * snippet is on the page, after it is ready, waiting at most `ms` (an ad blocker may stop it).
   */
  function waitAnonymousId(ms) {
    const now = anonymousId();
    const a = w.analytics;
    if (now || !a || typeof a.ready !== 'function') return Promise.resolve(now);
    return new Promise((resolve) => {
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        resolve(anonymousId());
      };
      setTimeout(finish, ms);
      try {
        a.ready(finish);
      } catch (_e) {
        finish();
      }
    });
  }

  function getJson(url) {
    return fetch(url, {
      method: 'GET',
      mode: 'cors',
      credentials: 'omit',
      headers: { Accept: 'application/json' },
    }).then((res) =>
      res
        .json()
        .catch(() => ({}))
        .then((body) => ({ status: res.status, body: body })),
    );
  }

  function render(container, opts) {
    if (!container || container.getAttribute('data-cdp-form-state')) return;
    const host = String(opts.host || '').replace(/\/+$/, '');
    if (!ID.test(opts.workspace || '') || !ID.test(opts.form || '') || !/^https?:\/\//.test(host)) {
      if (w.console) w.console.warn('cdp forms: give data-workspace, data-form and a host');
      return;
    }
    container.setAttribute('data-cdp-form-state', 'loading');
    const base = `${host}/v1/forms/${opts.workspace}/${opts.form}`;
    const n = ++counter;
    const load = () => getJson(base);
    load()
      .then((r) => {
        if (r.status !== 200 || !r.body || !Array.isArray(r.body.fields)) {
          container.setAttribute('data-cdp-form-state', 'unavailable');
          container.appendChild(
            el(
              'p',
              { class: 'cdp-form__unavailable' },
              r.status === 409
                ? 'This form is not taking submissions at the moment.'
                : 'This form is not available.',
            ),
          );
          return;
        }
        build(container, r.body, base, n, load, opts);
      })
      .catch(() => {
        container.setAttribute('data-cdp-form-state', 'unavailable');
        container.appendChild(el('p', { class: 'cdp-form__unavailable' }, 'The form could not be loaded.'));
      });
  }

  function build(container, def, base, n, load, opts) {
    const meta = def.meta || {};
    // the token proves time spent on the form: posted no sooner than minFillMs after it was
    // issued (the snippet waits out the rest: a quick person or a browser's autofill is no
    // bot) and renewed once older than maxAgeMs allows (a page left open for hours)
    let token = def.token;
    let tokenAt = Date.now();
    const minFill = typeof def.minFillMs === 'number' ? def.minFillMs : 0;
    const maxAge = typeof def.maxAgeMs === 'number' ? def.maxAgeMs : 864e5;
    const renew = (force) =>
      !force && Date.now() - tokenAt < maxAge - 6e4
        ? Promise.resolve()
        : load().then((r) => {
            if (r.status === 200 && r.body.token) {
              token = r.body.token;
              tokenAt = Date.now();
            }
          });
    const delay = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
    const prefix = `cdpf${n}-`;
    const form = el('form', {
      class: 'cdp-form',
      novalidate: opts.novalidate ? '' : undefined,
      'aria-label': def.name,
      'data-cdp-form-id': def.id,
    });
    // name → { input, error element, box }; no prototype, so no name (or error key) finds one
    const controls = Object.create(null);
    const hidden = Object.create(null);

    function errorSlot(name, input) {
      const id = `${prefix}${name}-error`;
      const p = el('p', { id: id, class: 'cdp-form__error', hidden: '' });
      input.setAttribute('aria-describedby', id);
      return p;
    }

    function row(name, input, labelText, isBox) {
      const wrap = el('div', {
        class: `cdp-form__field cdp-form__field--${isBox ? 'checkbox' : input.tagName === 'SELECT' ? 'select' : input.type}`,
      });
      const label = el('label', { for: input.id, class: 'cdp-form__label' });
      if (isBox) {
        label.appendChild(input);
        label.appendChild(d.createTextNode(' '));
        label.appendChild(el('span', undefined, labelText));
        wrap.appendChild(label);
      } else {
        label.textContent = labelText;
        wrap.appendChild(label);
        wrap.appendChild(input);
      }
      const err = errorSlot(name, input);
      wrap.appendChild(err);
      controls[name] = { input: input, error: err, box: isBox };
      return wrap;
    }

    (def.fields || []).forEach((f) => {
      if (typeof f.name !== 'string') return;
      if (f.type === 'hidden') {
        hidden[f.name] = f.value || '';
        return;
      }
      const id = prefix + f.name;
      const req = f.required ? '' : undefined;
      let input;
      if (f.type === 'select') {
        input = el('select', {
          id: id,
          name: f.name,
          required: req,
          'aria-required': f.required ? 'true' : undefined,
        });
        input.appendChild(el('option', { value: '' }, ''));
        (f.options || []).forEach((o) => {
          input.appendChild(el('option', { value: o }, o));
        });
      } else if (f.type === 'checkbox') {
        input = el('input', { type: 'checkbox', id: id, name: f.name, required: req });
      } else {
        input = el('input', {
          type: f.type === 'email' || f.type === 'tel' || f.type === 'number' ? f.type : 'text',
          id: id,
          name: f.name,
          required: req,
          'aria-required': f.required ? 'true' : undefined,
          maxlength: f.maxLength,
          pattern: f.pattern,
          min: f.min,
          max: f.max,
          step: f.type === 'number' ? 'any' : undefined,
          autocomplete: f.type === 'email' ? 'email' : f.type === 'tel' ? 'tel' : undefined,
        });
      }
      form.appendChild(row(f.name, input, f.label, f.type === 'checkbox'));
    });
    (def.consents || []).forEach((c) => {
      if (typeof c.name !== 'string') return;
      const input = el('input', {
        type: 'checkbox',
        id: prefix + c.name,
        name: c.name,
        required: c.required ? '' : undefined,
      });
      // the exact text the consent is recorded with
      const wrapper = row(c.name, input, c.text, true);
      wrapper.className += ' cdp-form__consent';
      form.appendChild(wrapper);
    });

    // the honeypot: off screen, out of the tab order and of the accessibility tree
    const trap = el('div', { 'aria-hidden': 'true' });
    trap.style.position = 'absolute';
    trap.style.left = '-10000px';
    trap.style.width = '1px';
    trap.style.height = '1px';
    trap.style.overflow = 'hidden';
    const trapInput = el('input', {
      type: 'text',
      name: meta.honeypot || '_website',
      tabindex: '-1',
      autocomplete: 'off',
    });
    const trapLabel = el('label', undefined, 'Website ');
    trapLabel.appendChild(trapInput);
    trap.appendChild(trapLabel);
    form.appendChild(trap);

    const status = el('p', { class: 'cdp-form__status', role: 'status', 'aria-live': 'polite' });
    const button = el('button', { type: 'submit', class: 'cdp-form__submit' }, opts.submitLabel || 'Send');
    const actions = el('div', { class: 'cdp-form__actions' });
    actions.appendChild(button);
    form.appendChild(actions);
    form.appendChild(status);

    function clearErrors() {
      for (const k in controls) {
        controls[k].error.hidden = true;
        controls[k].error.textContent = '';
        controls[k].input.removeAttribute('aria-invalid');
      }
      status.textContent = '';
      status.className = 'cdp-form__status';
    }

    function showErrors(errors, message) {
      let first;
      const other = [];
      for (const k of Object.keys(errors)) {
        const c = controls[k];
        if (c) {
          c.error.textContent = String(errors[k]);
          c.error.hidden = false;
          c.input.setAttribute('aria-invalid', 'true');
          if (!first) first = c.input;
        } else other.push(String(errors[k]));
      }
      if (other.length > 0 || !first) {
        status.className = 'cdp-form__status cdp-form__status--error';
        status.textContent = other.length > 0 ? other.join(' ') : message || 'The form could not be sent.';
      }
      if (first) first.focus();
    }

    function values() {
      const body = {};
      for (const h in hidden) body[h] = hidden[h];
      for (const k in controls) {
        const input = controls[k].input;
        if (controls[k].box) body[k] = input.checked;
        else if (input.value !== '') body[k] = input.value;
      }
      body[meta.token || '_token'] = token;
      const page = String(w.location.href).split('#')[0];
      if (httpUrl(page)) body[meta.page || '_page'] = page;
      if (httpUrl(d.referrer)) body[meta.referrer || '_referrer'] = d.referrer;
      if (trapInput.value) body[meta.honeypot || '_website'] = trapInput.value;
      return body;
    }

    function post(body) {
      return fetch(`${base}/submit`, {
        method: 'POST',
        mode: 'cors',
        credentials: 'omit',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body),
      }).then((res) =>
        res
          .json()
          .catch(() => ({}))
          .then((answer) => ({ status: res.status, body: answer || {} })),
      );
    }

    let busy = false;
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (busy) return;
      busy = true;
      button.disabled = true;
      form.setAttribute('aria-busy', 'true');
      clearErrors();
      const tokenName = meta.token || '_token';
      let retried = false;
      const attempt = (force) =>
        renew(force)
          .then(() => delay(tokenAt + minFill + 50 - Date.now()))
          .then(() => waitAnonymousId(1500))
          .then((anon) => {
            const body = values();
            if (anon) body[meta.anonymousId || 'anonymousId'] = anon;
            return post(body).then((r) => {
              const why = r.status === 400 && r.body.errors ? r.body.errors[tokenName] : undefined;
              if (!why || retried) return r;
              // the server still found it too quick (another clock), or the token expired
              // or unreadable: once more, after a second or with a fresh token
              retried = true;
              return /too fast/.test(why) ? delay(1000).then(() => attempt(false)) : attempt(true);
            });
          });
      attempt(false)
        .then((r) => {
          const b = r.body || {};
          if (r.status === 200 && b.success) {
            if (httpUrl(b.redirect)) {
              w.location.assign(b.redirect);
              return;
            }
            const done = el(
              'p',
              { class: 'cdp-form__success', role: 'status', tabindex: '-1' },
              b.message || 'Thank you.',
            );
            container.replaceChild(done, form);
            container.setAttribute('data-cdp-form-state', 'submitted');
            done.focus();
            return;
          }
          const errs = b.errors || {};
          if (errs[tokenName] && /too fast/.test(errs[tokenName]))
            showErrors({}, 'That was quicker than a person types: wait a moment and send it again.');
          else showErrors(errs, b.error);
        })
        .catch(() => {
          showErrors({}, 'The form could not be sent: check your connection and try again.');
        })
        .then(() => {
          busy = false;
          button.disabled = false;
          form.removeAttribute('aria-busy');
        });
    });

    container.appendChild(form);
    container.setAttribute('data-cdp-form-state', 'ready');
  }

  function fromScript(script) {
    if (!script?.getAttribute('data-form')) return;
    const box = el('div', { class: 'cdp-form-container' });
    script.parentNode.insertBefore(box, script.nextSibling);
    render(box, {
      host: hostOf(script),
      workspace: script.getAttribute('data-workspace'),
      form: script.getAttribute('data-form'),
      submitLabel: script.getAttribute('data-submit-label'),
    });
  }

  function scan(root) {
    const list = (root || d).querySelectorAll('[data-cdp-form]');
    for (let i = 0; i < list.length; i++) {
      const c = list[i];
      const ref = String(c.getAttribute('data-cdp-form')).split('/');
      render(c, {
        host: c.getAttribute('data-host') || defaultHost,
        workspace: ref[0],
        form: ref[1],
        submitLabel: c.getAttribute('data-submit-label'),
      });
    }
  }

  w.cdpForms = {
    version: 1,
    render: (container, o) => render(container, { ...o, host: o?.host || defaultHost }),
    scan: scan,
    fromScript: fromScript,
  };
  fromScript(scriptEl);
  if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', () => scan());
  else scan();
})();
