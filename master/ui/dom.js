// Building the page without ever parsing data as HTML: every string given
// to h() becomes a text node (task output, names, messages are shown as
// typed), and attributes are set one by one: nothing is parsed as markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'href') el.setAttribute('href', safeHref(v));
    else el.setAttribute(k, String(v));
  }
  add(el, children);
  return el;
}

function add(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) add(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// Only our own pages and API: a link built from data cannot become javascript:.
function safeHref(v) {
  const s = String(v);
  return s.startsWith('#/') || s.startsWith('/') ? s : '#/';
}

// A hash link to a page, with path segments escaped.
export function link(text, ...segments) {
  return h('a', { href: '#/' + segments.map(encodeURIComponent).join('/') }, text);
}

export function table(headers, rows, attrs = {}) {
  const head = h('tr', {}, headers.map((x) => {
    const [label, cls] = Array.isArray(x) ? x : [x, undefined];
    return h('th', { class: cls }, label);
  }));
  const body = rows.length
    ? rows.map((r) => h('tr', {}, r.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : h('td', {}, c)))))
    : [h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, 'none'))];
  return h('table', attrs, h('thead', {}, head), h('tbody', {}, body));
}

export const num = (v, attrs = {}) => h('td', { class: 'num', ...attrs }, v);

export function fields(pairs) {
  return h('dl', { class: 'fields' }, pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export function state(name) {
  return h('span', { class: 'state ' + String(name).replace(/[^A-Z_]/g, '') }, name);
}

// A used/total bar; `text` says it in words.
export function bar(used, total, text, attrs = {}) {
  const frac = total > 0 ? Math.min(1, used / total) : 0;
  const fill = h('span');
  // Through the CSSOM: the Content-Security-Policy refuses style attributes.
  fill.style.width = `${(frac * 100).toFixed(1)}%`;
  return h('div', { class: 'bar', title: text, ...attrs }, fill, h('em', {}, text));
}

export function bytes(n) {
  const units = [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]];
  for (const [u, size] of units) if (n >= size) return `${+(n / size).toFixed(1)} ${u}`;
  return `${n} B`;
}

export const pct = (x) => `${(x * 100).toFixed(1)}%`;
export const cpus = (x) => `${+x.toFixed(3)}`;

export function when(ms) {
  return ms > 0 ? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—';
}

export function ago(ms) {
  if (!ms) return '—';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  return `${Math.floor(s / 3600)}h ago`;
}

export function millis(ms) {
  if (!ms) return '0';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`;
}
