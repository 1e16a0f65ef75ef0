// Frameworks, agents and roles: lists and detail pages, refreshed from
// live events (throttled: at most one refetch every two seconds).

import { h, table, num, bar, bytes, cpus, pct, state, fields, link, ago, when } from './dom.js';
import * as live from './live.js';
import { api, go } from './app.js';

const REFRESH_MS = 2000;

// Draws `load()` now and again whenever the cluster changes.
async function refreshing(root, load) {
  root.replaceChildren(await load());
  const again = live.throttle(async () => {
    try { root.replaceChildren(await load()); } catch { /* keep what is shown */ }
  }, REFRESH_MS);
  const offs = [live.on('summary', again), live.on('resync', again)];
  return () => offs.forEach((off) => off());
}

function used(r, t) {
  return [
    `${cpus(r.cpus)} / ${cpus(t.cpus)}`,
    `${bytes(r.mem_bytes)} / ${bytes(t.mem_bytes)}`,
    `${bytes(r.disk_bytes)} / ${bytes(t.disk_bytes)}`,
  ];
}

function res(r) {
  const extra = Object.entries(r.scalars || {}).map(([k, v]) => `, ${k} ${v}`).join('');
  return `cpus ${cpus(r.cpus)}, mem ${bytes(r.mem_bytes)}, disk ${bytes(r.disk_bytes)}${extra}`;
}

export function frameworks(root) {
  return refreshing(root, async () => {
    const { frameworks: list } = await api('frameworks');
    return h('div', { id: 'frameworks' }, h('h1', {}, 'Frameworks'),
      table(['Name', 'Role', ['Weight', 'num'], 'Status', ['Active tasks', 'num'], ['Dominant share', 'num'],
        ['Callbacks', 'num'], ['Failures', 'num'], ['p50 / p99', 'num']],
      list.map((f) => [link(f.name, 'frameworks', f.name), f.role, num(f.weight), f.status,
        num(f.tasks_running), num(pct(f.dominant_share)), num(f.callbacks), num(f.callback_failures),
        num(`${f.callback_p50_us} / ${f.callback_p99_us} µs`)])));
  });
}

export function framework(root, _params, name) {
  return refreshing(root, async () => {
    const { framework: f, log } = await api('frameworks/' + encodeURIComponent(name));
    return h('div', { id: 'framework' }, h('h1', {}, `Framework ${f.name}`),
      fields([
        ['Role', f.role], ['Weight', f.weight], ['Status', h('span', { id: 'fw-status' }, f.status)],
        ['Tenant', f.tenant], ['Active tasks', h('a', { href: `#/tasks?framework=${encodeURIComponent(f.name)}` }, String(f.tasks_running))],
        ['Allocated', res(f.allocated)], ['Dominant share', pct(f.dominant_share)],
        ['Callbacks', `${f.callbacks} (p50 ${f.callback_p50_us} µs, p99 ${f.callback_p99_us} µs)`],
        ['Failures', f.callback_failures], ['Scheduler', f.module_digest],
        ['Registered', when(f.registered_ms)], ['Built in', f.builtin ? 'yes' : 'no'],
        ['Config', Object.entries(f.config).map(([k, v]) => `${k}=${v}`).join(', ') || '—'],
      ]),
      h('h2', {}, 'Log'),
      h('pre', { class: 'log', id: 'fw-log' }, log.length
        ? log.map((l) => `${when(l.timestamp_ms)} ${l.level.toUpperCase()} ${l.message}\n`).join('')
        : '(empty)'));
  });
}

export function agents(root, params) {
  const q = params.get('q') || '', st = params.get('state') || '', after = params.get('after') || '';
  return refreshing(root, async () => {
    const query = new URLSearchParams({ limit: '100' });
    if (q) query.set('q', q);
    if (st) query.set('state', st);
    if (after) query.set('after', after);
    const page = await api('agents?' + query);
    const form = h('form', { class: 'filters', id: 'agent-filters', onsubmit: (e) => {
      e.preventDefault();
      const d = new FormData(e.target);
      go('agents', { q: d.get('q'), state: d.get('state') });
    } },
      h('label', {}, 'id or hostname', h('input', { name: 'q', value: q })),
      h('label', {}, 'state', h('select', { name: 'state' },
        ['', 'active', 'disconnected', 'draining'].map((v) => h('option', { value: v, selected: v === st }, v || 'any')))),
      h('button', { type: 'submit' }, 'Filter'));
    const rows = page.agents.map((a) => {
      const [c, m, d] = used(a.used, a.total);
      return [link(a.id, 'agents', a.id), a.hostname, state(a.draining ? 'DRAINING' : a.state), num(c), num(m), num(d),
        num(a.tasks_running), ago(a.last_heartbeat_ms)];
    });
    return h('div', { id: 'agents' }, h('h1', {}, `Agents (${page.total})`), form,
      table(['ID', 'Hostname', 'State', ['CPUs', 'num'], ['Memory', 'num'], ['Disk', 'num'], ['Tasks', 'num'], 'Heartbeat'], rows, { id: 'agents-table' }),
      h('div', { class: 'pager' },
        h('button', { disabled: !after, onclick: () => go('agents', { q, state: st }) }, 'First page'),
        h('button', { id: 'agents-next', disabled: !page.next, onclick: () => go('agents', { q, state: st, after: page.next }) }, 'Next page')));
  });
}

export function agent(root, _params, id) {
  return refreshing(root, async () => {
    const { agent: a, tasks, tasks_truncated } = await api('agents/' + encodeURIComponent(id));
    const t = a.total, u = a.used;
    return h('div', { id: 'agent' }, h('h1', {}, `Agent ${a.id}`),
      fields([
        ['Hostname', a.hostname], ['Address', a.address], ['State', state(a.state)],
        ['Draining', a.draining ? `yes${a.drain_deadline_ms ? ', tasks killed at ' + when(a.drain_deadline_ms) : ''}` : 'no'],
        ['Version', a.version], ['Registered', when(a.registered_ms)], ['Heartbeat', ago(a.last_heartbeat_ms)],
      ]),
      h('h2', {}, 'Resources'),
      h('div', { class: 'card' },
        bar(u.cpus, t.cpus, `${cpus(u.cpus)} / ${cpus(t.cpus)} cpus`),
        bar(u.mem_bytes, t.mem_bytes, `${bytes(u.mem_bytes)} / ${bytes(t.mem_bytes)} memory`),
        bar(u.disk_bytes, t.disk_bytes, `${bytes(u.disk_bytes)} / ${bytes(t.disk_bytes)} disk`)),
      h('h2', {}, 'Attributes'),
      table(['Name', 'Value'], Object.entries(a.attributes).map(([k, v]) => [k, v])),
      h('h2', {}, 'Reservations'),
      table(['Role', 'Reserved'], Object.entries(a.reserved).map(([k, v]) => [k, res(v)])),
      h('h2', {}, `Active tasks${tasks_truncated ? ' (first ' + tasks.length + ')' : ''}`),
      table(['Task', 'Framework', 'State', 'Started'], tasks.map((x) => [
        link(x.id, 'tasks', x.framework, x.id), x.framework, state(x.state), when(x.started_ms)]), { id: 'agent-tasks' }));
  });
}

export function roles(root) {
  return refreshing(root, async () => {
    const { roles: list } = await api('roles');
    const limit = (l) => (l ? Object.entries(l).filter(([k]) => !k.endsWith('_bytes')).map(([k, v]) => `${k} ${v}`).join(', ') || 'none' : 'none');
    return h('div', { id: 'roles' }, h('h1', {}, 'Roles'),
      table(['Role', ['Weight', 'num'], 'Configured', 'Guarantee', 'Limit', 'Allocated', ['Dominant share', 'num'], 'Frameworks'],
        list.map((r) => [r.name, num(r.weight), r.configured ? 'yes' : 'no (named by frameworks)', res(r.guarantee),
          limit(r.limit), res(r.allocated), num(pct(r.dominant_share)),
          r.frameworks.map((f, i) => [i ? ', ' : '', link(f, 'frameworks', f)])]), { id: 'roles-table' }));
  });
}
