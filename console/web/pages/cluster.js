// The cluster page: members, Raft, and a live chart of writes per second
// and apply latency computed from this node's /metrics.

import { api, h, table, badge, poll } from '../lib.js';
import { Chart, parseMetrics } from '../chart.js';

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function mount(root) {
  const facts = h('dl', { class: 'facts', id: 'raft-facts' });
  const members = h('div', { id: 'members' });
  const problems = h('div', {});
  const chart = new Chart({ label: 'Writes per second (HTTP writes on this node) and Raft apply latency', series: ['writes/s', 'apply latency'], units: ['/s', 'ms'] });
  root.append(
    h('h1', {}, 'Cluster'),
    h('section', { 'aria-labelledby': 'raft-h' }, h('h2', { id: 'raft-h' }, 'This node and Raft'), h('div', { class: 'panel' }, facts)),
    h('section', { 'aria-labelledby': 'members-h' }, h('h2', { id: 'members-h' }, 'Members'), members, problems),
    h('section', { 'aria-labelledby': 'rate-h' }, h('h2', { id: 'rate-h' }, 'Load'), chart.el),
  );

  const stopStatus = poll('status', 500, async () => {
    const [st, ms] = await Promise.all([api('/v1/status'), api('/v1/members')]);
    const r = st.raft || {};
    facts.replaceChildren(...[
      ['Node', st.node], ['Leader', st.leader || 'none'], ['Raft state', r.state], ['Term', r.term],
      ['Commit index', r.commit_index], ['Applied index', r.applied_index], ['Last index', r.last_index],
      ['Voters', (r.voters || []).join(', ')], ['Non-voters', (r.non_voters || []).join(', ') || 'none'],
      ['Alive members', st.members], ['Modules', (st.modules || []).join(', ')], ['Version', st.version],
    ].concat(r.halted ? [['Halted', r.halted]] : []).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '')]));
    members.replaceChildren(table('Gossip members of the cluster', ['Name', 'Role', 'Suffrage', 'Zone', 'Health', 'Leader', 'HTTP', 'Version'],
      (ms.members || []).map(m => [
        m.name,
        m.raft_addr ? 'server' : 'client',
        m.raft_suffrage || 'not in raft',
        m.zone || '–',
        h('td', {}, badge(m.status, m.status === 'alive' ? 'ok' : m.status === 'left' ? 'warn' : 'bad'), m.problem ? ' ' + m.problem : ''),
        m.leader ? badge('leader', 'ok') : '',
        m.http_addr || '',
        m.version || '',
      ])));
    const mm = st.mismatched_members || {};
    problems.replaceChildren(...Object.entries(mm).map(([n, p]) => h('p', { class: 'error' }, `${n}: ${p}`)));
  });

  let prev = null;
  const stopMetrics = poll('metrics', 1000, async () => {
    const text = await api('/metrics', { raw: true });
    const now = Date.now();
    let writes = 0, applySum = 0, applyCount = 0;
    for (const m of parseMetrics(text)) {
      if (m.name === 'shoal_http_requests_total' && WRITE_METHODS.has(m.labels.method)) writes += m.value;
      else if (m.name === 'shoal_raft_apply_seconds_sum') applySum += m.value;
      else if (m.name === 'shoal_raft_apply_seconds_count') applyCount += m.value;
    }
    if (prev) {
      const dt = (now - prev.t) / 1000;
      const wps = Math.max(0, (writes - prev.writes) / dt);
      const dc = applyCount - prev.applyCount;
      const lat = dc > 0 ? (applySum - prev.applySum) / dc * 1000 : null;
      chart.push('writes/s', now, wps, wps.toFixed(1) + '/s');
      chart.push('apply latency', now, lat, lat === null ? '–' : lat.toFixed(2) + ' ms');
    }
    prev = { t: now, writes, applySum, applyCount };
  });
  return () => { stopStatus(); stopMetrics(); };
}
