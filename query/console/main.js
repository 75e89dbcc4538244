// The console shell: sign-in with an admin key (kept in sessionStorage, so only for this
// browser session), navigation, and a hash router (#/segments, #/campaigns/…, …).
import { useEffect, useRef, useState } from '/console/vendor/hooks.mjs';
import { render } from '/console/vendor/preact.mjs';
import { AnalyticsScreen } from './analytics.js';
import { AuditScreen } from './audit.js';
import { CampaignDetail, CampaignEditor, CampaignList } from './campaigns.js';
import { DestinationDetail, DestinationEditor, DestinationList } from './destinations.js';
import { ExportsScreen } from './exports.js';
import { FormDetail, FormEditor, FormList } from './forms.js';
import { JourneyDetail, JourneyEditor, JourneyList } from './journeys.js';
import { LedgerScreen } from './ledger.js';
import { LiveView } from './live.js';
import { PageDetail, PageEditor, PageList } from './pages.js';
import { ProfilePage, ProfileSearch } from './profiles.js';
import { SegmentBuilder, SegmentList } from './segments.js';
import { SettingsScreen } from './settings.js';
import { TrackingPlanScreen } from './tracking-plan.js';
import { TraitsScreen } from './traits.js';
import { ApiError, api, ErrorBox, Field, html, session } from './ui.js';
import { mayOpen, useMe, WhoAmI } from './whoami.js';

function SignIn({ onSignedIn }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    session.signIn(key.trim());
    try {
      // who the key is: any valid key or token may ask (a person in several workspaces too)
      await api('/v1/me');
      onSignedIn();
    } catch (err) {
      session.signOut();
      setError(
        err instanceof ApiError && err.status === 401 ? new Error('That admin key is not valid.') : err,
      );
    } finally {
      setBusy(false);
    }
  };
  return html`
    <main class="signin">
      <form onSubmit=${submit} aria-labelledby="signin-title">
        <h1 id="signin-title">cdp console</h1>
        <p class="muted">Sign in with an admin key or your API token. It is kept for this browser session only.</p>
        <${Field} label="Admin key">
          <input type="password" autocomplete="current-password" required value=${key}
            onInput=${(e) => setKey(e.currentTarget.value)} />
        <//>
        <${ErrorBox} error=${error} />
        <button type="submit" class="primary" disabled=${busy || key.trim() === ''}>${busy ? 'Signing in…' : 'Sign in'}</button>
      </form>
    </main>`;
}

const NAV = [
  ['#/segments', 'Segments'],
  ['#/campaigns', 'Campaigns'],
  ['#/journeys', 'Journeys'],
  ['#/forms', 'Forms'],
  ['#/pages', 'Pages'],
  ['#/profiles', 'Profiles'],
  ['#/traits', 'Traits & scores'],
  ['#/analytics', 'Analytics'],
  ['#/ledger', 'Ledger'],
  ['#/audit', 'Audit log'],
  ['#/exports', 'Exports'],
  ['#/destinations', 'Destinations'],
  ['#/tracking-plan', 'Tracking plan'],
  ['#/live', 'Live'],
  ['#/settings', 'Settings'],
];

/** `#/ledger/steps?journeyId=j1` → ['ledger/steps', 'journeyId=j1']: the screen, and its filters. */
function splitHash(hash) {
  const h = hash.replace(/^#\/?/, '');
  const q = h.indexOf('?');
  return q < 0 ? [h, ''] : [h.slice(0, q), h.slice(q + 1)];
}

function route(hash) {
  const [path, query] = splitHash(hash);
  const parts = path.split('/').map(decodeURIComponent);
  const [top, id, sub] = parts;
  switch (top) {
    case 'campaigns':
      if (id === 'new') return html`<${CampaignEditor} />`;
      if (id && sub === 'edit') return html`<${CampaignEditor} id=${id} />`;
      if (id) return html`<${CampaignDetail} id=${id} />`;
      return html`<${CampaignList} />`;
    case 'journeys':
      if (id === 'new') return html`<${JourneyEditor} />`;
      if (id && sub === 'edit') return html`<${JourneyEditor} id=${id} key=${id} />`;
      if (id) return html`<${JourneyDetail} id=${id} key=${id} />`;
      return html`<${JourneyList} />`;
    case 'forms':
      if (id === 'new') return html`<${FormEditor} />`;
      if (id && sub === 'edit') return html`<${FormEditor} id=${id} key=${id} />`;
      if (id) return html`<${FormDetail} id=${id} key=${id} />`;
      return html`<${FormList} />`;
    case 'pages':
      if (id === 'new') return html`<${PageEditor} />`;
      if (id && sub === 'edit') return html`<${PageEditor} id=${id} key=${id} />`;
      if (id) return html`<${PageDetail} id=${id} key=${id} />`;
      return html`<${PageList} />`;
    case 'exports':
      return html`<${ExportsScreen} />`;
    case 'destinations':
      if (id === 'new') return html`<${DestinationEditor} />`;
      if (id && sub === 'edit') return html`<${DestinationEditor} id=${id} key=${id} />`;
      if (id) return html`<${DestinationDetail} id=${id} key=${id} />`;
      return html`<${DestinationList} />`;
    case 'tracking-plan':
      return html`<${TrackingPlanScreen} />`;
    case 'profiles':
      return id ? html`<${ProfilePage} id=${id} />` : html`<${ProfileSearch} />`;
    case 'traits':
      return html`<${TraitsScreen} kind=${id} id=${sub} key=${path} />`;
    case 'live':
      return html`<${LiveView} />`;
    case 'ledger':
      return html`<${LedgerScreen} tab=${id} query=${query} />`;
    case 'audit':
      return html`<${AuditScreen} query=${query} />`;
    case 'settings':
      return html`<${SettingsScreen} tab=${id ?? 'keys'} />`;
    case 'analytics':
      return html`<${AnalyticsScreen} tab=${id ?? 'funnel'} />`;
    default:
      if (id === 'new') return html`<${SegmentBuilder} />`;
      if (id) return html`<${SegmentBuilder} id=${id} key=${id} />`;
      return html`<${SegmentList} />`;
  }
}

function App() {
  const [signedIn, setSignedIn] = useState(() => session.key() !== null);
  const [hash, setHash] = useState(location.hash || '#/segments');
  const me = useMe(signedIn);
  useEffect(() => {
    const onHash = () => setHash(location.hash || '#/segments');
    const onOut = () => setSignedIn(false);
    window.addEventListener('hashchange', onHash);
    window.addEventListener('cdp-signed-out', onOut);
    return () => {
      window.removeEventListener('hashchange', onHash);
      window.removeEventListener('cdp-signed-out', onOut);
    };
  }, []);
  const first = useRef(true);
  const [path] = splitHash(hash);
  useEffect(() => {
    // after navigating, focus moves to the new screen (keyboard and screen reader users
    // start there, not at the link they followed); new filters on the same screen keep it
    if (first.current) first.current = false;
    else document.getElementById('main')?.focus();
  }, [path]);
  if (!signedIn) return html`<${SignIn} onSignedIn=${() => setSignedIn(true)} />`;
  const top = `#/${path.split('/')[0] || 'segments'}`;
  return html`
    <a class="skip" href="#main" onClick=${(e) => {
      e.preventDefault();
      document.getElementById('main')?.focus();
    }}>Skip to content</a>
    <header class="top">
      <span class="brand">cdp</span>
      <nav aria-label="Main">
        <ul>
          ${NAV.filter(([href]) => mayOpen(me, href)).map(
            ([href, label]) =>
              html`<li><a href=${href} aria-current=${top === href ? 'page' : undefined}>${label}</a></li>`,
          )}
        </ul>
      </nav>
      <${WhoAmI} me=${me} />
      <button type="button" class="link signout" onClick=${() => {
        session.signOut();
        setSignedIn(false);
      }}>Sign out</button>
    </header>
    <main id="main" tabindex="-1">${route(hash)}</main>`;
}

const root = document.getElementById('root');
root.textContent = ''; // the loading note goes; Preact renders into an empty element
render(html`<${App} />`, root);
