// Tasks: the filtered, paged list (filters and paging run on the server)
// and one task in full, with the tail of its stdout or stderr relayed from
// its agent. Both follow the live `tasks` events; the detail page also
// re-reads its log every few seconds while the task runs. Output is put in
// the page as text only: a task printing <script> shows <script>.

import { h, table, num, state, fields, link, when, bytes, millis, cpus } from './dom.js';
import * as live from './live.js';
import { api, go, showError } from './app.js';

const STATES = ['', 'STAGING', 'STARTING', 'RUNNING', 'FINISHED', 'FAILED', 'KILLED', 'LOST', 'ERROR'];
const ACTIVE = new Set(['STAGING', 'STARTING', 'RUNNING']);
const LOG_POLL_MS = 3000;

export async function tasks(root, params) {
  const filters = Object.fromEntries(['state', 'framework', 'agent', 'q'].map((k) => [k, params.get(k) || '']));
  const token = params.get('page_token') || '';
  const prev = params.get('prev') ? params.get('prev').split(',') : [];
  const load = async () => {
    const query = new URLSearchParams({ limit: '50' });
    for (const [k, v] of Object.entries(filters)) if (v) query.set(k, v);
    if (token) query.set('page_token', token);
    const page = await api('tasks?' + query);
    const form = h('form', { class: 'filters', id: 'task-filters', onsubmit: (e) => {
      e.preventDefault();
      go('tasks', Object.fromEntries(new FormData(e.target)));
    } },
      h('label', {}, 'state', h('select', { name: 'state' },
        STATES.map((s) => h('option', { value: s, selected: s === filters.state.toUpperCase() }, s || 'any')))),
      h('label', {}, 'framework', h('input', { name: 'framework', value: filters.framework })),
      h('label', {}, 'agent', h('input', { name: 'agent', value: filters.agent })),
      h('label', {}, 'name contains', h('input', { name: 'q', value: filters.q })),
      h('button', { type: 'submit' }, 'Filter'));
    const rows = page.tasks.map((t) => [link(t.id, 'tasks', t.framework, t.id), t.name, t.framework,
      t.agent_id ? link(t.agent_id, 'agents', t.agent_id) : '—', state(t.state),
      t.exit_code ?? '', when(t.started_ms), t.message]);
    const pager = h('div', { class: 'pager' },
      h('button', { disabled: !token, onclick: () => go('tasks', { ...filters, page_token: prev.at(-1) || '', prev: prev.slice(0, -1).join(',') }) }, 'Previous page'),
      h('button', { id: 'tasks-next', disabled: !page.next_page_token,
        onclick: () => go('tasks', { ...filters, page_token: page.next_page_token, prev: [...prev, token].join(',') }) }, 'Next page'),
      h('span', { class: 'muted' }, `${page.tasks.length} shown, ${page.limit} per page`));
    return h('div', { id: 'tasks' }, h('h1', {}, 'Tasks'), form,
      table(['Task', 'Name', 'Framework', 'Agent', 'State', 'Exit', 'Started', 'Message'], rows, { id: 'tasks-table' }), pager);
  };
  root.replaceChildren(await load());
  // Keep the page the operator is on; reload it when tasks change.
  const again = live.throttle(async () => {
    if (root.contains(document.activeElement) && document.activeElement.tagName === 'INPUT') return;
    try { root.replaceChildren(await load()); } catch { /* keep what is shown */ }
  }, 1000);
  const offs = [live.on('tasks', again), live.on('resync', again)];
  return () => offs.forEach((off) => off());
}

export async function task(root, params, framework, id) {
  let stream = params.get('stream') === 'stderr' ? 'stderr' : 'stdout';
  let current = null;
  const base = `tasks/${encodeURIComponent(framework)}/${encodeURIComponent(id)}`;
  const logBox = h('pre', { class: 'log', id: 'task-log' }, 'loading…');
  const logNote = h('div', { class: 'muted', id: 'task-log-note' });
  const tabs = h('div', { class: 'tabs' });

  const loadLog = async () => {
    try {
      const log = await api(`${base}/logs?stream=${stream}&tail=65536`);
      logBox.textContent = log.text || '(empty)';
      logNote.textContent = `last ${bytes(log.bytes)} of ${log.stream}` + (ACTIVE.has(log.state) ? ', updating while the task runs' : '');
    } catch (err) {
      logBox.textContent = '';
      logNote.textContent = `no log: ${err.message}`;
    }
  };
  const drawTabs = () => tabs.replaceChildren(...['stdout', 'stderr'].map((s) =>
    h('button', { class: s === stream ? 'active' : '', id: `tab-${s}`, onclick: () => { stream = s; drawTabs(); loadLog(); } }, s)));

  const draw = (t) => {
    current = t;
    const u = t.usage, r = t.spec.resources;
    root.replaceChildren(h('div', { id: 'task' },
      h('h1', {}, `Task ${t.id}`),
      fields([
        ['State', h('span', { id: 'task-state' }, state(t.state))],
        ['Message', t.message || '—'], ['Exit code', t.exit_code ?? '—'],
        ['Name', t.name], ['Framework', link(t.framework, 'frameworks', t.framework)],
        ['Job', t.job_id || '—'], ['Agent', t.agent_id ? link(t.agent_id, 'agents', t.agent_id) : '—'],
        ['Created', when(t.created_ms)], ['Started', when(t.started_ms)], ['Finished', when(t.finished_ms)],
      ]),
      h('h2', {}, 'Spec'),
      fields([
        ['Module', t.spec.module_digest],
        ['Arguments', h('span', { id: 'task-args' }, t.spec.args.join(' ') || '—')],
        ['Environment', Object.entries(t.spec.env).map(([k, v]) => `${k}=${v}`).join(' ') || '—'],
        ['Resources', `cpus ${cpus(r.cpus)}, mem ${bytes(r.mem_bytes)}, disk ${bytes(r.disk_bytes)}`],
        ['Fuel limit', t.limits.fuel || 'unmetered'], ['Time limit', t.limits.timeout_ms ? millis(t.limits.timeout_ms) : 'agent default'],
        ['Log cap', t.limits.log_bytes ? bytes(t.limits.log_bytes) : 'agent default'],
      ]),
      h('h2', {}, 'Accounting'),
      fields([
        ['Wall time', h('span', { id: 'usage-wall' }, millis(u.wall_ms))], ['CPU time', millis(u.cpu_ms)],
        ['CPU throttled', millis(u.cpu_throttled_ms)], ['Fuel consumed', h('span', { id: 'usage-fuel' }, String(u.fuel_consumed))],
        ['Peak memory', bytes(u.peak_mem_bytes)], ['stdout / stderr', `${bytes(u.stdout_bytes)} / ${bytes(u.stderr_bytes)}`],
        ['Log bytes dropped', u.log_bytes_dropped], ['Result', bytes(t.result_bytes)],
      ]),
      h('h2', {}, 'Output'), tabs, logNote, logBox));
    drawTabs();
  };

  draw(await api(base));
  await loadLog();
  const reload = live.throttle(async () => {
    try { draw(await api(base)); await loadLog(); } catch (err) { showError(root, err); }
  }, 500);
  const offs = [
    live.on('tasks', (ev) => { if (ev.tasks.some((x) => x.framework === framework && x.id === id)) reload(); }),
    live.on('resync', reload),
  ];
  const poll = setInterval(() => { if (current && ACTIVE.has(current.state)) loadLog(); }, LOG_POLL_MS);
  return () => { offs.forEach((off) => off()); clearInterval(poll); };
}
