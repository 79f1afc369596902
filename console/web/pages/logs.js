// The logs page: the node's logs, a range of one log, and following it
// live over its Server-Sent Events stream.

import { api, h, table, poll, stream, fmtTime, errorText, enc } from '../lib.js';

const KEEP = 500; // entries kept on screen while following

export function mount(root, selected) {
  const list = h('div', { id: 'log-list' });
  const detail = h('section', { 'aria-labelledby': 'log-h', id: 'log-detail' });
  root.append(
    h('h1', {}, 'Logs'),
    h('div', { class: 'split' },
      h('section', { 'aria-labelledby': 'logs-h' }, h('h2', { id: 'logs-h' }, 'All logs'), list),
      detail));

  const stopList = poll('logs', 1000, async () => {
    const { logs = [] } = await api('/v1/logs');
    list.replaceChildren(table('Logs on this node', ['Name', 'First', 'Last', 'Entries'],
      logs.map(l => [h('a', { href: '#/logs/' + encodeURIComponent(l.name) }, l.name), l.first_index, l.last_index, l.entries]),
      'No logs yet.'));
  });

  let stopFollow = null;
  if (selected) showLog(selected);
  else detail.append(h('h2', { id: 'log-h' }, 'Pick a log'), h('p', { class: 'muted' }, 'Choose a log to read a range or follow it live.'));

  function showLog(name) {
    const from = h('input', { id: 'from', type: 'number', min: 1, inputmode: 'numeric' });
    const limit = h('input', { id: 'limit', type: 'number', min: 1, max: 1000, value: 100, inputmode: 'numeric' });
    const follow = h('input', { id: 'follow', type: 'checkbox', checked: true });
    const err = h('p', { class: 'error', role: 'alert' });
    const entries = h('ol', { class: 'log-entries', id: 'entries', 'aria-live': 'polite', 'aria-relevant': 'additions' });
    const read = async (ev) => {
      if (ev) ev.preventDefault();
      err.textContent = '';
      if (stopFollow) { stopFollow(); stopFollow = null; }
      const q = new URLSearchParams();
      if (from.value) q.set('from', from.value);
      q.set('limit', limit.value || '100');
      try {
        const page = await api(`/v1/logs/${enc(name)}?${q}`);
        entries.replaceChildren(...page.entries.map(entryItem));
        if (follow.checked) startFollow(page.next);
      } catch (e) {
        if (e.code === 'log_not_found' && follow.checked) { entries.replaceChildren(); startFollow(1); return; }
        err.textContent = errorText(e);
      }
    };
    const startFollow = (next) => {
      stopFollow = stream('log-stream', `/v1/logs/${enc(name)}/stream?from=${next}`, {
        entry: (e) => {
          entries.append(entryItem(e));
          while (entries.children.length > KEEP) entries.firstElementChild.remove();
          entries.scrollTop = entries.scrollHeight;
        },
        servererror: (e) => { err.textContent = 'Stream ended: ' + (e.message || e); },
      });
    };
    follow.addEventListener('change', () => {
      if (!follow.checked && stopFollow) { stopFollow(); stopFollow = null; }
      else if (follow.checked) read();
    });
    detail.replaceChildren(
      h('h2', { id: 'log-h' }, 'Log ', h('code', {}, name)),
      h('form', { class: 'inline', onsubmit: read },
        h('div', {}, h('label', { for: 'from' }, 'From index'), from),
        h('div', {}, h('label', { for: 'limit' }, 'Limit'), limit),
        h('div', {}, h('label', { for: 'follow' }, 'Follow live'), follow),
        h('button', { type: 'submit' }, 'Read')),
      err, entries);
    read();
  }

  return () => { stopList(); if (stopFollow) stopFollow(); };
}

function entryItem(e) {
  return h('li', { value: e.index, 'data-index': e.index },
    h('code', {}, `#${e.index}`), ' ', h('span', { class: 'muted' }, fmtTime(e.time)), ' ',
    e.id ? h('span', {}, `id ${e.id} `) : null,
    h('pre', {}, JSON.stringify(e.data)));
}
