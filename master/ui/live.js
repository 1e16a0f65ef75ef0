// The one live channel: server-sent events from /api/v1/events (same
// origin, so it carries the same credentials as the page). Pages subscribe
// to `summary`, `tasks` and `resync`; the server coalesces, so handlers may
// refetch freely.

const handlers = { summary: new Set(), tasks: new Set(), resync: new Set() };
let source = null;

export function on(kind, fn) {
  handlers[kind].add(fn);
  return () => handlers[kind].delete(fn);
}

export function start(indicator) {
  if (source) return;
  source = new EventSource('/api/v1/events');
  source.onopen = () => { indicator.textContent = 'live'; indicator.className = 'live on'; };
  source.onerror = () => { indicator.textContent = 'reconnecting…'; indicator.className = 'live off'; };
  for (const kind of Object.keys(handlers)) {
    source.addEventListener(kind, (e) => {
      let data;
      try { data = JSON.parse(e.data); } catch { return; }
      for (const fn of handlers[kind]) fn(data);
    });
  }
}

// Runs `fn` at most once per `ms`, the last call winning.
export function throttle(fn, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; fn(); }, ms);
  };
}
