// The UI's router: hash routes (#/tasks?state=RUNNING) to page modules.
// Each page renders into <main> and returns a cleanup function that drops
// its live subscriptions when another page opens.

import { h } from './dom.js';
import * as live from './live.js';
import { overview } from './overview.js';
import { frameworks, framework, agents, agent, roles } from './cluster.js';
import { tasks, task } from './tasks.js';

/** An error answered by the API, with its HTTP status. */
export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export async function api(path) {
  const res = await fetch('/api/v1/' + path, { headers: { accept: 'application/json' } });
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  // Signed out (the session's token expired or was revoked): sign in again.
  if (res.status === 401) location.assign('/login');
  if (!res.ok) throw new ApiError(res.status, body?.error?.message || res.statusText);
  return body;
}

const routes = [
  [/^$/, overview],
  [/^frameworks$/, frameworks],
  [/^frameworks\/([^/]+)$/, framework],
  [/^tasks$/, tasks],
  [/^tasks\/([^/]+)\/([^/]+)$/, task],
  [/^agents$/, agents],
  [/^agents\/([^/]+)$/, agent],
  [/^roles$/, roles],
];

let cleanup = null;
let generation = 0;

/** Shows an error, or the 404 page for an unknown object or route. */
export function showError(root, err) {
  root.replaceChildren(err instanceof ApiError && err.status === 404
    ? notFound(err.message)
    : h('div', { class: 'error', id: 'error' }, String(err.message || err)));
}

function notFound(message) {
  return h('div', { class: 'notfound', id: 'not-found' },
    h('h1', {}, '404'), h('p', {}, message), h('p', {}, h('a', { href: '#/' }, 'Back to the overview')));
}

async function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = hash.split('?');
  const params = new URLSearchParams(query);
  const root = document.getElementById('page');
  if (cleanup) { cleanup(); cleanup = null; }
  const mine = ++generation;
  for (const a of document.querySelectorAll('header nav a')) {
    a.classList.toggle('active', path.split('/')[0] === (a.dataset.nav === 'overview' ? '' : a.dataset.nav));
  }
  const found = routes.find(([re]) => re.test(path));
  if (!found) {
    root.replaceChildren(notFound(`No page #/${path}`));
    return;
  }
  const args = path.match(found[0]).slice(1).map(decodeURIComponent);
  try {
    const done = await found[1](root, params, ...args);
    if (mine === generation) cleanup = done || null;
    else if (done) done();
  } catch (err) {
    if (mine === generation) showError(root, err);
  }
}

/** Moves to a route with the given query parameters (empty ones dropped). */
export function go(path, params = {}) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== '' && v != null));
  const s = q.toString();
  location.hash = '#/' + path + (s ? '?' + s : '');
}

window.addEventListener('hashchange', route);
live.start(document.getElementById('live'));
route();
api('whoami').then((w) => {
  document.getElementById('whoami').textContent = w.tenant === 'default' ? w.name : `${w.name} · ${w.tenant}`;
}).catch(() => { /* shown by the page itself */ });
