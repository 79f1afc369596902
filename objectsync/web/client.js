// ShoalObjects: the browser client of shoal's objectsync module.
// An ES module with no dependencies and no build step, served by every
// node at /v1/objects/client.js (see docs/objectsync.md).
//
//   import { ShoalObjects } from '/v1/objects/client.js';
//   const c = new ShoalObjects(location.origin, { token });
//   const o = c.subscribe('my-object-*');
//   o.onchange((id, version, object) => render(o.states));
//   const m = c.master('my-object-xxx', { object: { cars: [] } });
//   m.object.cars.push('a'); m.bump();
//
// It reconnects with jittered back-off and resumes exact subscriptions
// with have_version, so the server sends only the patches it missed while
// they are in the object's history.

// v2 is v1 where a server frame may carry several messages, one per line
// (a busy connection gets what waited in one write); offered first.
const SUBPROTOCOLS = ['shoal.objects.v2', 'shoal.objects.v1'];
// The most have_versions one subscribe message may carry (the server's limit).
const MAX_HAVE_VERSIONS = 10000;

function wsURL(base, token) {
  let u = base.replace(/^http(s?):\/\//, 'ws$1://').replace(/\/+$/, '');
  if (!/\/v1\/objects\/ws$/.test(u)) u += '/v1/objects/ws';
  if (token) u += (u.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token);
  return u;
}

function clone(v) { return v === undefined ? undefined : JSON.parse(JSON.stringify(v)); }

function isPattern(key) { return key.includes('*'); }

// match reports whether id matches pattern, '*' matching any run of characters.
export function match(pattern, id) {
  const re = new RegExp('^' + pattern.split('*').map(s => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$', 's');
  return re.test(id);
}

// --- RFC 6902 -----------------------------------------------------------

function parsePointer(p) {
  if (p === '') return [];
  if (p[0] !== '/') throw new Error('bad pointer ' + p);
  return p.slice(1).split('/').map(s => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function arrayIndex(arr, tok, forAdd) {
  if (forAdd && tok === '-') return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(tok)) throw new Error('bad array index ' + tok);
  const i = Number(tok);
  if (i > arr.length || (!forAdd && i === arr.length)) throw new Error('index out of range ' + tok);
  return i;
}

function parentOf(doc, toks) {
  let cur = doc;
  for (const t of toks.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, t, false)];
    else if (cur !== null && typeof cur === 'object' && Object.prototype.hasOwnProperty.call(cur, t)) cur = cur[t];
    else throw new Error('path not found');
  }
  return cur;
}

function get(doc, path) {
  const toks = parsePointer(path);
  if (toks.length === 0) return doc;
  const parent = parentOf(doc, toks), last = toks[toks.length - 1];
  if (Array.isArray(parent)) return parent[arrayIndex(parent, last, false)];
  if (parent === null || typeof parent !== 'object' || !Object.prototype.hasOwnProperty.call(parent, last)) throw new Error('path not found');
  return parent[last];
}

function put(doc, path, value, insert) {
  const toks = parsePointer(path);
  if (toks.length === 0) return value;
  const parent = parentOf(doc, toks), last = toks[toks.length - 1];
  if (Array.isArray(parent)) {
    const i = arrayIndex(parent, last, insert);
    if (insert) parent.splice(i, 0, value); else parent[i] = value;
  } else if (parent !== null && typeof parent === 'object') {
    if (!insert && !Object.prototype.hasOwnProperty.call(parent, last)) throw new Error('path not found');
    parent[last] = value;
  } else throw new Error('path not found');
  return doc;
}

function remove(doc, path) {
  const toks = parsePointer(path);
  if (toks.length === 0) throw new Error('cannot remove the whole document');
  const parent = parentOf(doc, toks), last = toks[toks.length - 1];
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, false), 1);
  else if (parent !== null && typeof parent === 'object' && Object.prototype.hasOwnProperty.call(parent, last)) delete parent[last];
  else throw new Error('path not found');
  return doc;
}

function equal(a, b) { return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b)); }

function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys(v[k]);
    return out;
  }
  return v;
}

// applyPatch returns doc with the RFC 6902 patch applied (doc is not
// changed); it throws if an operation does not apply.
export function applyPatch(doc, patch) {
  let out = clone(doc);
  for (const op of patch) {
    switch (op.op) {
      case 'add': out = put(out, op.path, clone(op.value), true); break;
      case 'replace': out = put(out, op.path, clone(op.value), false); break;
      case 'remove': out = remove(out, op.path); break;
      case 'move': { const v = get(out, op.from); out = remove(out, op.from); out = put(out, op.path, v, true); break; }
      case 'copy': out = put(out, op.path, clone(get(out, op.from)), true); break;
      case 'test': if (!equal(get(out, op.path), op.value)) throw new Error('test failed at ' + op.path); break;
      default: throw new Error('unknown op ' + op.op);
    }
  }
  return out;
}

// --- the client -----------------------------------------------------------

// Subscription is what subscribe returns: the states of the objects it
// follows (a Map of id to {version, object}) and change callbacks.
class Subscription {
  constructor(client, key) {
    this.client = client;
    this.key = key;
    this.states = new Map();
    this.callbacks = [];
  }
  onchange(fn) { this.callbacks.push(fn); return this; }
  get(id) { return this.states.get(id); }
  covers(id) { return isPattern(this.key) ? match(this.key, id) : this.key === id; }
  close() { this.client._unsubscribe(this); }
}

// Master is what master returns: keep object up to date and call bump(),
// or call set(object, version).
class Master {
  constructor(client, id, object, version) {
    this.client = client;
    this.id = id;
    this.object = object === undefined ? {} : object;
    this.version = version === undefined ? 0 : version;
    this.errors = [];
  }
  bump() {
    if (typeof this.version !== 'number') throw new Error('bump needs a number version');
    this.version += 1;
    this._send();
  }
  set(object, version) {
    this.object = object;
    this.version = version;
    this._send();
  }
  _send() {
    // Not connected: the next connection sends the latest state.
    this.written = true;
    this.client._send(this._message());
  }
  _message() {
    return { type: 'set', id: this.id, version: this.version, object: this.object, ref: 'set:' + this.id };
  }
}

export class ShoalObjects {
  // url is a node's base URL (http(s)://host:port) or its websocket URL.
  constructor(url, { token = '', minBackoff = 50, maxBackoff = 5000, WebSocketImpl } = {}) {
    this.url = wsURL(url, token);
    this.minBackoff = minBackoff;
    this.maxBackoff = maxBackoff;
    this.WS = WebSocketImpl || globalThis.WebSocket;
    this.subs = new Set();
    this.masters = new Map();
    this.states = new Map(); // id -> {version, object}: what the server sent
    this.onerror = null;     // called with {code, message, ref}
    this.onconnect = null;   // called after each (re)connection
    this.ondisconnect = null; // called when a connection ends
    this.closed = false;
    this.connects = 0;
    this.violations = 0;
    this._backoff = minBackoff;
    this._connect();
  }

  subscribe(key) {
    const s = new Subscription(this, key);
    this.subs.add(s);
    for (const [id, st] of this.states) if (s.covers(id)) s.states.set(id, st);
    this._send(this._subscribeMessage(key));
    return s;
  }

  master(id, { object, version } = {}) {
    const m = new Master(this, id, object, version);
    this.masters.set(id, m);
    this._send({ type: 'master', id, ref: 'master:' + id });
    if (object !== undefined) m._send();
    return m;
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close(1000);
  }

  _unsubscribe(s) {
    this.subs.delete(s);
    if (![...this.subs].some(o => o.key === s.key)) {
      this._send(isPattern(s.key) ? { type: 'unsubscribe', pattern: s.key } : { type: 'unsubscribe', id: s.key });
    }
  }

  _subscribeMessage(key) {
    if (isPattern(key)) return { type: 'subscribe', pattern: key };
    const st = this.states.get(key);
    return st ? { type: 'subscribe', id: key, have_version: st.version } : { type: 'subscribe', id: key };
  }

  // _send sends msg if connected and reports whether it did; the next
  // connection re-sends subscriptions, claims and unsent master states.
  _send(msg) {
    if (!this.ws || this.ws.readyState !== 1) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  _connect() {
    if (this.closed) return;
    const ws = new this.WS(this.url, SUBPROTOCOLS);
    this.ws = ws;
    ws.onopen = () => {
      this.connects++;
      this._backoff = this.minBackoff;
      // Each object held is resumed by a subscription that covers it: an
      // exact one with have_version, else the first pattern that matches
      // it, in its have_versions; one removed meanwhile comes back as a
      // removal. One that no subscription covers any more is forgotten.
      const keys = [...new Set([...this.subs].map(s => s.key))].sort();
      const exact = new Set(keys.filter(k => !isPattern(k)));
      const haves = new Map(keys.filter(isPattern).map(p => [p, {}]));
      const held = new Map(keys.filter(isPattern).map(p => [p, 0]));
      for (const [id, st] of [...this.states]) {
        if (exact.has(id)) continue;
        const p = [...haves.keys()].find(p => match(p, id) && held.get(p) < MAX_HAVE_VERSIONS);
        if (p === undefined) { this._drop(id); continue; }
        haves.get(p)[id] = st.version;
        held.set(p, held.get(p) + 1);
      }
      // Re-claim, and re-send each master's state: a write sent just
      // before a connection broke may not have landed (the same state
      // again is a no-op for the server).
      for (const m of this.masters.values()) {
        ws.send(JSON.stringify({ type: 'master', id: m.id, ref: 'master:' + m.id }));
        if (m.written) ws.send(JSON.stringify(m._message()));
      }
      for (const key of keys) {
        const msg = this._subscribeMessage(key);
        if (held.get(key)) msg.have_versions = haves.get(key);
        ws.send(JSON.stringify(msg));
      }
      if (this.onconnect) this.onconnect();
    };
    ws.onmessage = (ev) => {
      for (const line of ev.data.split('\n')) this._handle(JSON.parse(line));
    };
    // A failed connection fires error and close in browsers, only error
    // in some runtimes (Node's undici): either one ends it, once.
    let ended = false;
    const end = (code, reason) => {
      if (ended) return;
      ended = true;
      if (this.ws !== ws || this.closed) return;
      if (this.ondisconnect) this.ondisconnect(code, reason);
      try { ws.close(); } catch (e) { /* already closed */ }
      const wait = this._backoff / 2 + Math.random() * this._backoff / 2;
      this._backoff = Math.min(this._backoff * 2, this.maxBackoff);
      setTimeout(() => this._connect(), wait);
    };
    ws.onclose = (ev) => end(ev.code, ev.reason);
    ws.onerror = () => end(1006, 'connection failed');
  }

  _drop(id) {
    this.states.delete(id);
    for (const s of this.subs) if (s.states.delete(id)) for (const fn of s.callbacks) fn(id, undefined, undefined);
  }

  _update(id, st) {
    this.states.set(id, st);
    for (const s of this.subs) {
      if (!s.covers(id)) continue;
      s.states.set(id, st);
      for (const fn of s.callbacks) fn(id, st.version, st.object);
    }
  }

  _handle(m) {
    switch (m.type) {
      case 'object':
        this._update(m.id, { version: m.version, object: m.object });
        break;
      case 'patch': {
        const st = this.states.get(m.id);
        if (!st || JSON.stringify(st.version) !== JSON.stringify(m.from)) {
          this.violations++;
          this._drop(m.id);
          break;
        }
        try {
          this._update(m.id, { version: m.to, object: applyPatch(st.object, m.patch) });
        } catch (e) {
          this.violations++;
          this._drop(m.id);
        }
        break;
      }
      case 'removed':
        this._drop(m.id);
        break;
      case 'error': {
        // After a reconnect a master's claim may still be its own, held
        // for the old connection until that node releases it: claim
        // again shortly, then re-send the state.
        const id = typeof m.ref === 'string' && m.ref.startsWith('master:') ? m.ref.slice(7) : null;
        const mm = id !== null ? this.masters.get(id) : undefined;
        if (m.code === 'conflict' && mm && this.connects > 1) {
          setTimeout(() => {
            if (this.closed || this.masters.get(id) !== mm) return;
            if (this._send({ type: 'master', id, ref: 'master:' + id }) && mm.written) this._send(mm._message());
          }, 500);
        }
        if (this.onerror) this.onerror(m);
        break;
      }
    }
  }
}
