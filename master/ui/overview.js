// The overview: agents up and unreachable, resources used against total,
// tasks by state, frameworks by dominant share, the leader and its store.
// It is redrawn from every `summary` event.

import { h, table, num, bar, bytes, cpus, pct, state, fields, link } from './dom.js';
import * as live from './live.js';
import { api } from './app.js';

export async function overview(root) {
  const draw = (s) => root.replaceChildren(render(s));
  draw(await api('summary'));
  return live.on('summary', draw);
}

function card(label, value, id, note) {
  return h('div', { class: 'card' }, h('div', { class: 'label' }, label),
    h('div', { class: 'value', id }, value), note ? h('div', { class: 'muted' }, note) : null);
}

function render(s) {
  const t = s.resources.total, u = s.resources.used;
  // In life-cycle order (a JSON object's keys come sorted by name).
  const order = ['STAGING', 'STARTING', 'RUNNING', 'FINISHED', 'FAILED', 'KILLED', 'LOST', 'ERROR'];
  const byState = order.filter((k) => k in s.tasks.by_state).map((k) => [k, s.tasks.by_state[k]]);
  return h('div', { id: 'overview' },
    h('h1', {}, 'Cluster overview'),
    h('div', { class: 'cards' },
      card('Agents active', s.agents.active, 'agents-active', `of ${s.agents.total} known`),
      card('Agents unreachable', s.agents.disconnected, 'agents-disconnected', `${s.agents.draining} draining`),
      card('Active tasks', s.tasks.active, 'tasks-active', `${s.tasks.total} in all`),
      card('Frameworks', s.frameworks.length, 'frameworks-count', `${s.roles} roles`),
    ),
    h('h2', {}, 'Resources'),
    h('div', { class: 'card' },
      h('div', { class: 'label' }, 'cpus'),
      bar(u.cpus, t.cpus, `${cpus(u.cpus)} / ${cpus(t.cpus)} cpus`, { id: 'bar-cpus' }),
      h('div', { class: 'label' }, 'memory'),
      bar(u.mem_bytes, t.mem_bytes, `${bytes(u.mem_bytes)} / ${bytes(t.mem_bytes)}`, { id: 'bar-mem' }),
      h('div', { class: 'label' }, 'disk'),
      bar(u.disk_bytes, t.disk_bytes, `${bytes(u.disk_bytes)} / ${bytes(t.disk_bytes)}`, { id: 'bar-disk' }),
    ),
    h('h2', {}, 'Tasks by state'),
    table(['State', ['Tasks', 'num']], byState.map(([name, n]) => [
      h('a', { href: `#/tasks?state=${name}` }, state(name)), num(n, { id: `tasks-${name}` }),
    ]), { id: 'tasks-by-state' }),
    h('h2', {}, 'Frameworks by dominant share'),
    table(['Framework', 'Role', 'Status', ['Active tasks', 'num'], ['Dominant share', 'num']],
      s.frameworks.map((f) => [link(f.name, 'frameworks', f.name), f.role, f.status,
        num(f.tasks_running), num(pct(f.dominant_share))]), { id: 'frameworks-by-share' }),
    h('h2', {}, 'Masters'),
    fields([
      ['Leader', h('span', { id: 'leader' }, s.leader)],
      ['Epoch', s.leader_epoch],
      ['Store', h('span', { id: 'store' }, s.store)],
      ['Masters', s.masters.length ? s.masters.join(', ') : 'this one only (embedded store)'],
      ['Version', s.version],
      ['Memory', bytes(s.rss_bytes)],
      ['Offers outstanding', s.offers_outstanding],
    ]),
  );
}
