// app.js: the console's shell: login, the page router (#/cluster,
// #/logs, ...), and the node name in the header.

import { api, hooks, conn, errorText } from './lib.js';

const PAGES = ['cluster', 'logs', 'kv', 'locks', 'objects', 'files'];
const $ = (id) => document.getElementById(id);

let stop = null;      // the current page's cleanup
let session = null;   // {auth_required, authenticated}
let loading = 0;      // generation of the page being mounted

async function getSession() {
  const r = await fetch('/ui/session', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  if (!r.ok) throw new Error('session: HTTP ' + r.status);
  return r.json();
}

function unmount() {
  if (stop) { try { stop(); } catch (e) { console.warn('page cleanup', e); } }
  stop = null;
  $('page').replaceChildren();
}

function showLogin(message) {
  unmount();
  $('nav').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('token').focus();
}

hooks.onUnauthorized = () => {
  if (session && session.auth_required) {
    session.authenticated = false;
    showLogin('Your session has ended: log in again.');
  }
};

async function login(ev) {
  ev.preventDefault();
  const token = $('token').value;
  if (!token) { $('login-error').textContent = 'Enter the token.'; $('token').focus(); return; }
  try {
    const r = await fetch('/ui/login', { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, body: JSON.stringify({ token }) });
    const body = await r.json();
    if (!r.ok) { $('login-error').textContent = body.error ? body.error.message : 'Login failed.'; $('token').select(); return; }
    $('token').value = '';
    session = body;
    $('login').hidden = true;
    showNode();
    route();
  } catch (e) {
    $('login-error').textContent = 'Login failed: ' + errorText(e);
  }
}

async function logout() {
  await fetch('/ui/logout', { method: 'POST', credentials: 'same-origin' }).catch(() => {});
  session = await getSession().catch(() => session);
  showLogin('');
}

async function route() {
  if (!session || (session.auth_required && !session.authenticated)) return;
  const [, name, arg] = location.hash.match(/^#\/([a-z]+)(?:\/(.*))?$/) || [];
  if (!PAGES.includes(name)) { location.replace('#/cluster'); return; }
  unmount();
  $('login').hidden = true;
  $('nav').hidden = false;
  $('logout').hidden = !session.auth_required;
  for (const a of $('nav').querySelectorAll('a')) {
    if (a.getAttribute('href') === '#/' + name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const gen = ++loading;
  const mod = await import(`./pages/${name}.js`);
  if (gen !== loading) return;
  const root = $('page');
  let param = '';
  try { param = decodeURIComponent(arg || ''); } catch (_) { /* keep it empty */ }
  stop = mod.mount(root, param) || null;
  document.title = `${name} · shoal console`;
  const h1 = root.querySelector('h1');
  if (h1) { h1.tabIndex = -1; h1.focus({ preventScroll: true }); }
}

function showNode() {
  api('/v1/status').then(s => { $('node').textContent = 'node ' + s.node; }).catch(() => {});
}

async function start() {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  // The skip link moves the focus without touching the hash (the router's).
  document.querySelector('.skip').addEventListener('click', (ev) => { ev.preventDefault(); $('main').focus(); });
  window.addEventListener('hashchange', route);
  try {
    session = await getSession();
  } catch (e) {
    conn.render('lost');
    $('page').textContent = 'Cannot reach this node: ' + errorText(e);
    return;
  }
  if (session.auth_required && !session.authenticated) { showLogin(''); return; }
  showNode();
  route();
}

start();
