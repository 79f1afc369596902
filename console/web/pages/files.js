// The files page: the replication module's status on this node (role,
// in-sync set, each follower's lag as the leader sees it, charted) and
// the files this node holds.

import { api, h, table, poll, badge, fmtBytes, fmtTime } from '../lib.js';
import { Chart } from '../chart.js';

export function mount(root) {
  const facts = h('dl', { class: 'facts', id: 'repl-facts' });
  const followers = h('div', { id: 'followers' });
  const note = h('p', { class: 'muted' });
  const files = h('div', { id: 'files' });
  const bytes = new Chart({ label: 'Replication lag per follower, in bytes', shared: true, units: ['B'], floor: 1024 });
  const secs = new Chart({ label: 'Replication lag per follower, in seconds', shared: true, units: ['s'], floor: 0.1 });
  root.append(
    h('h1', {}, 'Files'),
    h('section', { 'aria-labelledby': 'repl-h' }, h('h2', { id: 'repl-h' }, 'Replication'), h('div', { class: 'panel' }, facts)),
    h('section', { 'aria-labelledby': 'fol-h' }, h('h2', { id: 'fol-h' }, 'Followers'), note, followers, h('div', { class: 'grid' }, bytes.el, secs.el)),
    h('section', { 'aria-labelledby': 'files-h' }, h('h2', { id: 'files-h' }, 'Files on this node'), files));

  const stopStatus = poll('replication', 500, async () => {
    const s = await api('/v1/replication/status');
    const now = Date.now();
    const rows = [['Node', s.node], ['Role', s.role], ['Leader', s.leader || 'none'], ['Term', s.term],
      ['In-sync set', (s.in_sync || []).join(', ') || 'empty'], ['Stream position', fmtBytes(s.position || 0)]];
    if (s.follower) rows.push(['Following', s.follower.leader], ['Follower state', s.follower.state],
      ['Applied', fmtBytes(s.follower.applied_bytes)], ['Since', fmtTime(s.follower.since)]);
    for (const [k, v] of Object.entries(s.counters || {})) rows.push([k.replaceAll('_', ' '), v]);
    facts.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '')]));
    if (s.role === 'leader') {
      note.textContent = 'As this node, the replication leader, sees them.';
      const fs = s.followers || [];
      followers.replaceChildren(table('Followers of the replication leader', ['Node', 'State', 'In sync', 'Acked', 'Lag', 'Lag (s)'],
        fs.map(f => [f.node, f.state, f.in_sync ? badge('in sync', 'ok') : badge('behind', 'warn'), fmtBytes(f.acked_bytes), fmtBytes(f.lag_bytes), f.lag_seconds.toFixed(3)]),
        'No followers.'));
      for (const f of fs) {
        bytes.push(f.node, now, f.lag_bytes, fmtBytes(f.lag_bytes));
        secs.push(f.node, now, f.lag_seconds, f.lag_seconds.toFixed(3) + ' s');
      }
    } else {
      note.textContent = s.leader
        ? `Only the replication leader knows every follower's lag: open the console on ${s.leader}.`
        : 'No replication leader is known.';
      followers.replaceChildren();
    }
  });
  const stopFiles = poll('files', 500, async () => {
    const { files: fs = [] } = await api('/v1/files');
    files.replaceChildren(table('Files held by this node', ['Path', 'Size', 'SHA-256', 'Modified'],
      fs.slice(0, 500).map(f => [h('code', {}, f.path), fmtBytes(f.size), h('code', { title: f.sha256 }, f.sha256.slice(0, 12) + '…'), fmtTime(f.mtime)]),
      'No files.'));
  });
  return () => { stopStatus(); stopFiles(); };
}
