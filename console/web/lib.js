// lib.js: what every console page shares: API calls through /ui/api,
// element building, the connection indicator, and live sources that
// report to it. No dependencies.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// onUnauthorized is set by app.js: called when the API answers 401.
export const hooks = { onUnauthorized: () => {} };

// api calls the node's API through the console (the cookie carries the
// token) and returns the decoded JSON, or the text when raw is set.
export async function api(path, { method = 'GET', body, raw = false, headers = {}, signal } = {}) {
  const init = { method, headers: { Accept: raw ? 'text/plain' : 'application/json', ...headers }, credentials: 'same-origin', signal };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    if (typeof body !== 'string') init.headers['Content-Type'] = 'application/json';
  }
  const resp = await fetch('/ui/api' + path, init);
  const text = await resp.text();
  if (!resp.ok) {
    let code = 'http_' + resp.status, message = text;
    try { const e = JSON.parse(text).error; code = e.code; message = e.message; } catch (_) { /* not JSON */ }
    if (resp.status === 401) hooks.onUnauthorized();
    throw new ApiError(resp.status, code, message);
  }
  return raw ? text : (text ? JSON.parse(text) : null);
}

// enc percent-encodes each segment of a key or path, keeping its slashes.
export function enc(key) {
  return key.split('/').map(encodeURIComponent).join('/');
}

// h builds an element: h('td', {class: 'num'}, 'text', child...).
export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// table builds an accessible table: a caption, column headers, rows.
export function table(caption, cols, rows, emptyText = 'None.') {
  if (!rows.length) return h('p', { class: 'muted' }, emptyText);
  // The wrapper scrolls a wide table on a phone; it is focusable so that
  // keyboard users can scroll it too.
  return h('div', { class: 'table-wrap', role: 'region', 'aria-label': caption, tabindex: 0 },
    h('table', {},
      h('caption', { class: 'muted' }, caption),
      h('thead', {}, h('tr', {}, cols.map(c => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map(r => h('tr', {}, r.map(c => c instanceof Node && c.tagName === 'TD' ? c : h('td', {}, c)))))));
}

export function badge(text, kind) { return h('span', { class: 'badge ' + kind }, text); }

export function fmtTime(s) {
  if (!s) return '';
  const d = new Date(s);
  return isNaN(d) ? String(s) : d.toLocaleString();
}

export function fmtBytes(n) {
  if (n < 1024) return n + ' B';
  const u = ['KiB', 'MiB', 'GiB', 'TiB'];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
  return n.toFixed(1) + ' ' + u[i];
}

// --- the connection indicator ---------------------------------------------

// conn tracks the live sources of the current page: the indicator says
// "Live" while every one is up, "Connection lost" as soon as one is down,
// and "Reconnected" for a few seconds when all are back.
export const conn = {
  sources: new Map(),
  lostOnce: false,
  timer: 0,
  set(name, up) {
    const before = this.state();
    this.sources.set(name, up);
    const after = this.state();
    if (after === 'lost') this.lostOnce = true;
    if (before === after) return;
    this.render(after === 'live' && this.lostOnce ? 'back' : after);
  },
  drop(name) { this.sources.delete(name); if (!this.sources.size) { this.lostOnce = false; this.render('idle'); } },
  // A source is true (up), false (lost) or null (connecting the first
  // time: not a loss).
  state() {
    if (!this.sources.size) return 'idle';
    const v = [...this.sources.values()];
    if (v.includes(false)) return 'lost';
    return v.includes(null) ? 'connecting' : 'live';
  },
  render(state) {
    const el = document.getElementById('conn');
    if (!el) return;
    clearTimeout(this.timer);
    el.dataset.state = state;
    el.textContent = { idle: '', connecting: 'Connecting…', live: 'Live', lost: 'Connection lost: retrying…', back: 'Reconnected' }[state];
    if (state === 'back') this.timer = setTimeout(() => { if (this.state() === 'live') this.render('live'); }, 4000);
  },
};

// poll calls f every ms milliseconds (at once first) until stopped,
// reporting success and failure to the indicator under name.
export function poll(name, ms, f) {
  let stopped = false, timer = 0;
  const tick = async () => {
    try { await f(); if (!stopped) conn.set(name, true); }
    catch (e) { if (!stopped && !(e instanceof ApiError && e.status < 500 && e.status !== 429)) conn.set(name, false); }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); conn.drop(name); };
}

// stream opens an EventSource on an API path and reports its state; on
// maps event names to handlers (data parsed as JSON), with three special
// keys: open (each (re)connection), servererror (an "event: error" the
// server sent before ending the stream) and onclosed. The browser
// reconnects by itself (with Last-Event-ID) after a dropped stream; a
// stream the server refused (401, 429, 503...) is closed for good by the
// browser, so it is opened again here after a pause, and a probe of the
// API shows the login form if the refusal was a lost session.
export function stream(name, path, on) {
  let es = null, stopped = false, timer = 0, pause = 1000;
  const open = () => {
    es = new EventSource('/ui/api' + path);
    es.onopen = () => { pause = 1000; conn.set(name, true); if (on.open) on.open(); };
    // A stream's own failure (a JSON error, then the stream ends) is
    // "event: stream_error" from kv, "event: error" from older streams;
    // the browser's own "error" (a plain Event, no data) is a lost
    // connection.
    const serverError = (m) => {
      if (m.data && on.servererror) { let d = m.data; try { d = JSON.parse(m.data).error; } catch (_) { /* text */ } on.servererror(d); }
    };
    es.addEventListener('stream_error', serverError);
    es.addEventListener('error', (m) => {
      serverError(m);
      if (stopped) return;
      conn.set(name, false);
      if (es.readyState === EventSource.CLOSED) {
        if (on.onclosed) on.onclosed();
        api('/v1/status').catch(() => { /* a 401 shows the login form */ });
        clearTimeout(timer);
        timer = setTimeout(() => { if (!stopped) open(); }, pause);
        pause = Math.min(pause * 2, 10000);
      }
    });
    for (const [ev, f] of Object.entries(on)) {
      if (ev === 'onclosed' || ev === 'servererror' || ev === 'open') continue;
      es.addEventListener(ev, (m) => { let d = m.data; try { d = JSON.parse(m.data); } catch (_) { /* text */ } f(d, m); });
    }
  };
  conn.set(name, null);
  open();
  return () => { stopped = true; clearTimeout(timer); es.close(); conn.drop(name); };
}

// errorText formats an error for a role=alert paragraph.
export function errorText(e) {
  return e instanceof ApiError ? `${e.message} (${e.code})` : String(e && e.message || e);
}
