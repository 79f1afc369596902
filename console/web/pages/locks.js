// The locks page: semaphores and read/write locks with their holders,
// fencing tokens, lease expiry and waiters, refreshed every second.

import { api, h, table, poll, badge, enc } from '../lib.js';

const DETAILS = 50; // semaphores and locks shown with their holders

export function mount(root) {
  const sems = h('div', { id: 'semaphores' });
  const locks = h('div', { id: 'locks' });
  root.append(
    h('h1', {}, 'Locks'),
    h('p', { class: 'muted' }, 'Tokens are fencing tokens: they only grow. TTL is the time left on a lease as this node sees it.'),
    h('section', { 'aria-labelledby': 'sem-h' }, h('h2', { id: 'sem-h' }, 'Semaphores'), sems),
    h('section', { 'aria-labelledby': 'lock-h' }, h('h2', { id: 'lock-h' }, 'Read/write locks'), locks));

  const stop = poll('locks', 500, async () => {
    const [s, l] = await Promise.all([api('/v1/semaphores'), api('/v1/locks')]);
    const sd = await details('/v1/semaphores/', s.semaphores || []);
    const ld = await details('/v1/locks/', l.locks || []);
    sems.replaceChildren(table('Semaphores', ['Name', 'Slots used', 'Waiting', 'Holders'],
      sd.map(x => [h('code', {}, x.name), `${x.active} / ${x.limit}`, waiting(x.waiting), holders(x.holders)]),
      'No semaphores.'));
    locks.replaceChildren(table('Read/write locks', ['Name', 'Mode', 'Waiting', 'Holders'],
      ld.map(x => [h('code', {}, x.name), badge(x.mode, x.mode === 'unlocked' ? 'ok' : x.mode === 'write' ? 'bad' : 'warn'), waiting(x.waiting), holders(x.holders)]),
      'No locks.'));
  });
  return stop;
}

// details reads each listed item's own record (with its holders), at most
// DETAILS of them; an item gone meanwhile is shown from the list.
async function details(base, items) {
  return Promise.all(items.slice(0, DETAILS).map(it =>
    api(base + enc(it.name)).catch(() => ({ ...it, holders: [] }))));
}

function waiting(n) { return n > 0 ? badge(`${n} waiting`, 'warn') : '0'; }

function holders(hs) {
  if (!hs || !hs.length) return h('span', { class: 'muted' }, 'none');
  return h('ul', { class: 'holders' }, hs.map(x => h('li', {},
    h('code', {}, x.holder), x.mode ? ` (${x.mode})` : '', ` token ${x.token}, TTL ${ttl(x.expires_at)}`)));
}

function ttl(expires) {
  const ms = new Date(expires) - Date.now();
  if (isNaN(ms)) return '?';
  if (ms <= 0) return 'expiring';
  return ms >= 10000 ? `${Math.round(ms / 1000)} s` : `${(ms / 1000).toFixed(1)} s`;
}
