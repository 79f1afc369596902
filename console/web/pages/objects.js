// The objects page: objectsync's live viewer. It holds one websocket to
// this node (through /ui/api, so the console cookie authenticates it)
// with objectsync's own browser client, served by the module at
// /v1/objects/client.js, and subscribes to the shoal:objects,
// shoal:producers and shoal:connections introspection objects.

import { h, conn } from '../lib.js';

const CLIENT = '/v1/objects/client.js';

export function mount(root, selected) {
  const filter = h('input', { id: 'filter', value: '*', autocomplete: 'off', 'aria-describedby': 'filter-help' });
  const list = h('tbody', { id: 'object-rows' });
  const watchedTitle = h('span', { id: 'watched' }, selected || '(pick an object)');
  const object = h('pre', { id: 'object', 'aria-live': 'polite' });
  const producers = h('pre', { id: 'producers' });
  const connections = h('pre', { id: 'connections' });
  const err = h('p', { class: 'error', role: 'alert' });
  root.append(
    h('h1', {}, 'Objects'),
    h('form', { class: 'inline', role: 'search', onsubmit: (ev) => ev.preventDefault() },
      h('div', {}, h('label', { for: 'filter' }, 'Filter'), filter),
      h('p', { id: 'filter-help', class: 'muted' }, '* matches any run of characters.')),
    err,
    h('div', { class: 'split' },
      h('section', { 'aria-labelledby': 'objs-h' }, h('h2', { id: 'objs-h' }, 'Objects on this node'),
        h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Objects', tabindex: 0 }, h('table', {},
          h('caption', { class: 'muted' }, 'Ids and versions, updated live'),
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Id'), h('th', { scope: 'col' }, 'Version'))),
          list))),
      h('section', { 'aria-labelledby': 'obj-h' }, h('h2', { id: 'obj-h' }, 'Watching ', watchedTitle), object)),
    h('section', { 'aria-labelledby': 'prod-h' }, h('h2', { id: 'prod-h' }, 'Producers'), producers),
    h('section', { 'aria-labelledby': 'conn-h' }, h('h2', { id: 'conn-h' }, 'Connections'), connections));

  let client = null, watched = null, stopped = false;
  conn.set('objects', null);
  import(CLIENT).then(({ ShoalObjects, match }) => {
    if (stopped) return;
    client = new ShoalObjects(location.origin + '/ui/api/v1/objects/ws');
    client.ondisconnect = () => { if (!stopped) conn.set('objects', false); };
    client.onconnect = () => { if (!stopped) conn.set('objects', true); };
    client.onerror = (m) => { err.textContent = `${m.message} (${m.code})`; };
    const render = () => {
      const st = client.states.get('shoal:objects');
      const objs = st ? st.object.objects || {} : {};
      const f = filter.value || '*';
      list.replaceChildren(...Object.keys(objs).sort().filter(id => match(f, id)).map(id =>
        h('tr', { 'data-id': id },
          h('th', { scope: 'row' }, h('button', { type: 'button', class: 'row', onclick: () => watch(id) }, id)),
          h('td', {}, h('code', {}, JSON.stringify(objs[id]))))));
    };
    const watch = (id) => {
      if (watched) watched.close();
      watchedTitle.textContent = id;
      object.textContent = 'loading…';
      watched = client.subscribe(id).onchange((_, version, obj) => {
        object.textContent = obj === undefined ? '(removed)' : 'version ' + JSON.stringify(version) + '\n' + JSON.stringify(obj, null, 2);
      });
    };
    client.subscribe('shoal:objects').onchange(render);
    client.subscribe('shoal:producers').onchange((_, v, o) => { producers.textContent = JSON.stringify(o, null, 2); });
    client.subscribe('shoal:connections').onchange((_, v, o) => { connections.textContent = JSON.stringify(o, null, 2); });
    filter.addEventListener('input', render);
    if (selected) watch(selected);
  }).catch(e => { err.textContent = 'The objects module is not available on this node: ' + e.message; });

  return () => { stopped = true; if (client) client.close(); conn.drop('objects'); };
}
