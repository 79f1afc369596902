// The kv page: browse keys by prefix, watch them change live, edit and
// delete them.

import { api, h, stream, fmtTime, errorText, enc, conn } from '../lib.js';

const PAGE = 1000; // keys listed at most

export function mount(root, initialPrefix) {
  const prefix = h('input', { id: 'prefix', type: 'search', value: initialPrefix || '', placeholder: 'config/', autocomplete: 'off' });
  const err = h('p', { class: 'error', role: 'alert' });
  const info = h('p', { class: 'muted', id: 'kv-info' });
  const body = h('tbody', { id: 'kv-rows' });
  const key = h('input', { id: 'edit-key', required: true, autocomplete: 'off' });
  const value = h('textarea', { id: 'edit-value' });
  const editErr = h('p', { class: 'error', role: 'alert' });
  const entries = new Map(); // key -> entry
  let stopWatch = null;

  root.append(
    h('h1', {}, 'KV'),
    h('form', { class: 'inline', role: 'search', onsubmit: (ev) => { ev.preventDefault(); location.hash = '#/kv/' + encodeURIComponent(prefix.value); } },
      h('div', {}, h('label', { for: 'prefix' }, 'Key prefix'), prefix),
      h('button', { type: 'submit' }, 'Browse and watch')),
    err, info,
    h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Keys', tabindex: 0 }, h('table', {},
      h('caption', { class: 'muted' }, 'Keys under the prefix, updated live'),
      h('thead', {}, h('tr', {}, ['Key', 'Value', 'Updated', 'Written on', 'Actions'].map(c => h('th', { scope: 'col' }, c)))),
      body)),
    h('section', { 'aria-labelledby': 'edit-h' },
      h('h2', { id: 'edit-h' }, 'Put a key'),
      h('form', { onsubmit: save },
        h('div', {}, h('label', { for: 'edit-key' }, 'Key')), h('div', {}, key),
        h('div', {}, h('label', { for: 'edit-value' }, 'Value')), h('div', {}, value),
        h('p', {}, h('button', { type: 'submit', id: 'save' }, 'Save')),
        editErr)));

  function newer(a, b) { // is version a newer than b?
    if (!b) return true;
    if (a.time !== b.time) return a.time > b.time;
    if (a.counter !== b.counter) return a.counter > b.counter;
    return a.node > b.node;
  }

  function upsert(e, removed) {
    const cur = entries.get(e.key);
    if (cur && !newer(e.version, cur.version)) return;
    if (removed) entries.set(e.key, { ...e, removed: true }); else entries.set(e.key, e);
    render();
  }

  function render() {
    const keys = [...entries.keys()].filter(k => !entries.get(k).removed).sort();
    info.textContent = `${keys.length} key${keys.length === 1 ? '' : 's'}` + (keys.length >= PAGE ? ` (first ${PAGE})` : '');
    body.replaceChildren(...keys.map(k => {
      const e = entries.get(k);
      const v = e.value ?? '';
      return h('tr', { 'data-key': k },
        h('th', { scope: 'row' }, h('code', {}, k)),
        h('td', {}, h('code', { class: 'kv-value' }, v.length > 200 ? v.slice(0, 200) + '…' : v)),
        h('td', {}, fmtTime(e.updated_at)),
        h('td', {}, e.version && e.version.node),
        h('td', {},
          h('button', { type: 'button', class: 'secondary', 'aria-label': `Edit ${k}`, onclick: () => edit(k) }, 'Edit'), ' ',
          h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${k}`, onclick: () => del(k) }, 'Delete')));
    }));
  }

  async function list() {
    const got = await api(`/v1/kv?prefix=${encodeURIComponent(prefix.value)}&limit=${PAGE}`);
    for (const e of got.items || []) upsert(e, false);
  }

  function edit(k) {
    key.value = k;
    value.value = (entries.get(k) || {}).value ?? '';
    value.focus();
  }

  async function save(ev) {
    ev.preventDefault();
    editErr.textContent = '';
    if (!key.value) { editErr.textContent = 'Enter a key.'; key.focus(); return; }
    try {
      await api('/v1/kv/' + enc(key.value), { method: 'PUT', body: value.value, headers: { 'Content-Type': 'text/plain' } });
    } catch (e) { editErr.textContent = errorText(e); }
  }

  async function del(k) {
    err.textContent = '';
    try { await api('/v1/kv/' + enc(k), { method: 'DELETE' }); }
    catch (e) { err.textContent = errorText(e); }
  }

  // Watch first, then list on every (re)connection: no change between
  // the two is missed, and versions settle which of both is newer.
  stopWatch = stream('kv-watch', `/v1/kv?prefix=${encodeURIComponent(prefix.value)}&watch=true`, {
    open: () => list().catch(e => { err.textContent = errorText(e); conn.set('kv-watch', false); }),
    new_key: (e) => upsert(e, false),
    key_changed: (e) => upsert(e, false),
    key_removed: (e) => upsert(e, true),
    // A node that cannot replay what a reconnecting watch missed says
    // resync, then sends every live key as new_key.
    resync: () => { entries.clear(); render(); },
    servererror: (e) => { err.textContent = 'Watch ended: ' + (e.message || e) + '; reconnecting.'; },
  });
  render();
  return () => { if (stopWatch) stopWatch(); };
}
