// Who is signed in (GET /v1/me): the person and their role, or the deployment's admin key;
// a person in several workspaces picks one (sent as X-Workspace). The console hides what the
// role may not do; the server refuses it anyway (query/roles.ts).
import { useEffect, useId, useState } from '/console/vendor/hooks.mjs';
import { api, html, session } from './ui.js';

/** Screens a role needs a permission for; the rest every role may read. */
const NEEDS = { '#/destinations': 'develop', '#/exports': 'erase' };

/** The caller as GET /v1/me says, once signed in; null until known. */
export function useMe(signedIn) {
  const [me, setMe] = useState(null);
  useEffect(() => {
    setMe(null);
    if (!signedIn) return;
    let live = true;
    api('/v1/me')
      .then((m) => live && setMe(m))
      .catch(() => {});
    return () => {
      live = false;
    };
  }, [signedIn]);
  return me;
}

/** Whether the caller may see a screen (unknown caller: yes; the server decides). */
export function mayOpen(me, href) {
  const need = NEEDS[href];
  return !need || !me || me.permissions.includes(need);
}

export function WhoAmI({ me }) {
  const id = useId();
  if (!me) return null;
  if (me.kind === 'root') return html`<span class="whoami" data-testid="whoami">Admin key</span>`;
  const many = me.workspaces.length > 1;
  return html`<span class="whoami" data-testid="whoami">
    ${me.person.email}${me.role ? html` · <strong>${me.role}</strong>` : ''}
    ${
      many
        ? html` <label for=${id} class="sr-only">Workspace</label>
          <select id=${id} value=${me.workspaceId ?? ''} onChange=${(e) => {
            session.setWorkspace(e.currentTarget.value);
            location.reload();
          }}>
            ${me.workspaceId ? '' : html`<option value="">Choose a workspace</option>`}
            ${me.workspaces.map((w) => html`<option value=${w.id}>${w.name} (${w.role})</option>`)}
          </select>`
        : ''
    }
  </span>`;
}
