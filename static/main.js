// workerhub's page: the worker list, the open worker's conversation, the create form,
// tasks and the status footer. Plain ES modules, no framework, no build step; this one
// wires them together and routes: #/, #/w/ID, #/tasks.

import { $, toast } from './dom.js';
import { ApiError, get, post, enc, setUnauthorizedHandler } from './api.js';
import { Conversation, forgetScroll } from './conversation.js';
import { WorkerList, markSeen, statusPatch } from './list.js';
import { WorkerHeader } from './header.js';
import { Composer } from './composer.js';
import { CreateForm } from './create.js';
import { Tasks } from './tasks.js';
import { renderConn } from './conn.js';
import { StatusFooter } from './status.js';
import { AgentSocket } from './agents.js';
import { Attention } from './attention.js';
import { setTitle } from './title.js';
import { Changes } from './changes.js';
import { TerminalView, openShell } from './terminal.js';

const SELECTED_KEY = 'workerhub.selected';
const QUIET_KEY = 'workerhub.showQuiet';

const state = {
  route: { view: 'workers', id: null },
  conn: { state: 'connecting', info: {} }, // the open worker's stream
  list: { state: 'connecting', info: {} }, // the worker list's connection (/ws)
  authShown: false,
};

const attention = new Attention({ openWorker: (id) => navigate(`#/w/${enc(id)}`) });

const workers = new WorkerList({
  onOpen: (id) => navigate(`#/w/${enc(id)}`),
  onChange: (list) => attention.update(list),
});

/** Whether worker `id` is still there, for a stream that lost its connection. */
async function probeWorker(id) {
  try {
    await get(`/api/workers/${enc(id)}`, { timeoutMs: 5000 });
    return 'ok';
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return 'gone';
    if (err instanceof ApiError && err.status === 401) return 'unauthorized';
    return 'unreachable';
  }
}

const conversation = new Conversation({
  conv: $('conv'),
  rows: $('rows'),
  pending: $('pending'),
  loadEarlier: $('load-earlier'),
  loadLater: $('load-later'),
  historyStart: $('history-start'),
  moreBelow: $('conv-more-below'),
  jump: $('jump-latest'),
  jumpCount: $('jump-count'),
}, {
  onStatus: (w) => {
    // The worker's own stream may still deliver its last status after the deletion push.
    if (deleted.has(w.id)) return;
    if (workers.selected === w.id) markSeen(w.id, Math.max(w.last_seq || 0, conversation.hi()));
    const merged = workers.update(w);
    if (workers.selected === w.id) showWorker(merged);
  },
  onConn: (st, info) => {
    state.conn = { state: st, info };
    showConn();
  },
  probe: probeWorker,
  onClose: (id, seq) => markSeen(id, seq),
  editText: (text) => composer.edit(text),
  onDiff: (ev) => changes.onDiff(ev),
});

const changes = new Changes();

const composer = new Composer(conversation);

// A terminal worker's view, in place of the conversation (terminal.js).
const terminal = new TerminalView({
  onStatus: (patch) => {
    if (deleted.has(patch.id)) return;
    const merged = workers.update(patch);
    if (workers.selected === patch.id) showWorker(merged);
  },
  onConn: (st, info) => {
    state.conn = { state: st, info };
    showConn();
  },
  probe: probeWorker,
});
$('act-shell').addEventListener('click', () => openShell(workers.get(workers.selected), (id) => navigate(`#/w/${enc(id)}`)));

const header = new WorkerHeader({
  workers,
  conversation,
  onChange: (w) => showWorker(workers.update(w)),
  onDeleted: (id) => {
    forgetScroll(id);
    composer.forget(id);
    toast('Worker deleted.');
    navigate('#/');
    forgetWorker(id);
  },
});

const create = new CreateForm({
  onCreated: (w) => {
    workers.add(w);
    workerChanged();
    navigate(`#/w/${enc(w.id)}`);
  },
});

const tasks = new Tasks({ toast, openWorker: (id) => navigate(`#/w/${enc(id)}`) });

const footer = new StatusFooter();

const agents = new AgentSocket({
  onState: (st, info) => {
    state.list = { state: st, info };
    showConn();
  },
  onAgents: (list) => {
    if (workers.selected && conversation.id === workers.selected) markSeen(workers.selected, conversation.hi());
    workers.replace(list);
    listChanged();
  },
  onPush: applyPush,
  onSystem: (status) => footer.show(status),
  // Each failed attempt fetches the list once over HTTP: the page stays current while
  // /ws is down, and a 401 brings the sign-in form.
  lost: async () => {
    try {
      const data = await get('/api/workers');
      workers.replace(data.workers || []);
      listChanged();
      return null;
    } catch (err) {
      return err instanceof ApiError && err.status === 401 ? 'unauthorized' : null;
    }
  },
});

function showConn() {
  const inWorker = state.route.view === 'worker' && !!workers.selected;
  const signIn = { state: 'unauthorized', info: {} };
  renderConn({
    inWorker,
    stream: inWorker ? state.conn : state.authShown ? signIn : state.list,
    seq: conversation.hi(),
  });
}

/** The open worker's header and composer. */
function showWorker(w) {
  header.render(w);
  composer.render(w);
  changes.render(w);
}

// ---- the worker list, kept current by the server's pushes ----

const deleted = new Set(); // pushes may still come for a worker after it was deleted
const fetching = new Map(); // id → status patches pushed while the worker is fetched
let statusTimer = null;

/** The workers a task can go to follow the list. */
function listChanged() {
  tasks.setWorkers(workers.workers);
}

/** A worker came, went or changed its status: the footer's counts too, asked for once
 * for a burst of changes. */
function workerChanged() {
  listChanged();
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => agents.request('system:status'), 1000);
}

/** One worker's `agent:status` or `agent:stopped` push. */
function applyPush(type, p, timestamp) {
  const id = p.worker_id;
  if (p.deleted) {
    forgetWorker(id);
    return;
  }
  // agent:stopped repeats the status push that came just before it.
  if (type !== 'agent:status' || deleted.has(id)) return;
  const patch = { id, ...statusPatch(p, timestamp) };
  if (fetching.has(id)) {
    fetching.get(id).push(patch);
  } else if (workers.get(id)) {
    const merged = workers.update(patch, { activity: true });
    if (workers.selected === id) showWorker(merged);
    workerChanged();
  } else {
    addWorker(id);
  }
}

/** A worker the page has not seen yet (created by another client): its whole view. */
async function addWorker(id) {
  fetching.set(id, []);
  try {
    const w = await get(`/api/workers/${enc(id)}`);
    if (deleted.has(id)) return;
    // What was pushed while it was fetched is likely newer than the answer.
    workers.add(Object.assign(w, ...fetching.get(id)));
    workerChanged();
  } catch { /* deleted already, or not this token's to see */ } finally {
    fetching.delete(id);
  }
}

/** A worker was deleted: off the list, and if it is open, the page says so. */
function forgetWorker(id) {
  deleted.add(id);
  const w = workers.get(id);
  if (!w) return;
  workers.remove(id);
  workerChanged();
  if (workers.selected === id && conversation.id === id) {
    conversation.deleted();
    if (terminal.id === id) terminal.deleted();
    showWorker({ ...w, deleted: true });
  }
}

// ---- the open worker ----

async function openWorker(id) {
  if (workers.selected === id && (conversation.id === id || terminal.id === id)) return;
  if (conversation.id) conversation.close();
  terminal.close();
  workers.select(id);
  try { localStorage.setItem(SELECTED_KEY, id); } catch { /* ignore */ }
  let w = workers.get(id);
  try {
    w = await get(`/api/workers/${enc(id)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      toast(`Worker ${id} does not exist (any more).`);
      try { localStorage.removeItem(SELECTED_KEY); } catch { /* ignore */ }
      navigate('#/', true);
      return;
    }
    if (!w) {
      toast(`Cannot load worker ${id}: ${err.message}`);
      return;
    }
  }
  if (workers.selected !== id) return;
  showWorker(workers.update(w));
  composer.restore(id);
  if (w.terminal) terminal.open(w); else conversation.open(w);
}

// ---- routing: #/, #/w/ID, #/tasks ----

function parseRoute() {
  const hash = window.location.hash || '#/';
  const m = /^#\/w\/(.+)$/.exec(hash);
  if (m) return { view: 'worker', id: decodeURIComponent(m[1]) };
  if (hash === '#/tasks') return { view: 'tasks', id: null };
  return { view: 'workers', id: null };
}

function navigate(hash, replace = false) {
  if (replace) {
    history.replaceState(null, '', hash);
    route();
  } else if (window.location.hash === hash) {
    route();
  } else {
    window.location.hash = hash;
  }
}

function route() {
  const r = parseRoute();
  state.route = r;
  document.body.classList.remove('nav-open');
  $('nav-toggle').setAttribute('aria-expanded', 'false');
  $('view-empty').hidden = r.view !== 'workers';
  $('view-worker').hidden = r.view !== 'worker';
  $('view-tasks').hidden = r.view !== 'tasks';
  document.body.classList.toggle('no-selection', r.view === 'workers');
  $('tab-workers').setAttribute('aria-current', r.view === 'tasks' ? 'false' : 'page');
  $('tab-tasks').setAttribute('aria-current', r.view === 'tasks' ? 'page' : 'false');
  if (r.view === 'worker') {
    openWorker(r.id);
  } else {
    if (conversation.id) conversation.close();
    terminal.close();
    workers.select(null);
  }
  if (r.view === 'tasks') tasks.show(); else tasks.hide();
  setTitle(r.view === 'worker' ? `${(workers.get(r.id) || {}).name || 'worker'} · workerhub` : r.view === 'tasks' ? 'Tasks · workerhub' : 'workerhub');
  showConn();
}

// ---- sign-in (a server with a token) ----

function showTokenForm() {
  if (state.authShown) return;
  state.authShown = true;
  showConn();
  footer.note('Not signed in.');
  const dialog = $('token-dialog');
  dialog.addEventListener('cancel', (e) => e.preventDefault());
  dialog.showModal();
  $('token-input').focus();
}

function wireToken() {
  $('token-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = $('token-input');
    const err = $('token-error');
    err.hidden = true;
    try {
      await post('/api/auth/login', { token: input.value });
      input.value = '';
      window.location.reload();
    } catch (ex) {
      err.textContent = ex.status === 401 || ex.status === 403
        ? 'That token is not right.'
        : ex.status === 429
          ? 'Too many wrong tokens from this address: wait a minute, then try again.'
          : `Sign-in failed: ${ex.message}`;
      err.hidden = false;
      state.authShown = true;
    }
  });
}

// ---- boot ----

function wireNav() {
  $('new-worker').addEventListener('click', () => create.open());
  $('new-worker-2').addEventListener('click', () => create.open());
  $('back-to-list').addEventListener('click', () => navigate('#/'));
  $('conn-retry').addEventListener('click', () => {
    if (state.route.view === 'worker' && conversation.stream) conversation.stream.retryNow();
    else agents.retryNow();
  });
  $('nav-toggle').addEventListener('click', () => {
    const open = !document.body.classList.contains('nav-open');
    document.body.classList.toggle('nav-open', open);
    $('nav-toggle').setAttribute('aria-expanded', String(open));
    if (open) {
      const first = document.querySelector('.worker-item[aria-current="true"]') || document.querySelector('.worker-item') || $('new-worker');
      first.focus();
    }
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && document.body.classList.contains('nav-open')) {
      document.body.classList.remove('nav-open');
      $('nav-toggle').setAttribute('aria-expanded', 'false');
      $('nav-toggle').focus();
    }
  });
  const quiet = $('show-quiet');
  try { quiet.checked = localStorage.getItem(QUIET_KEY) === '1'; } catch { /* ignore */ }
  $('rows').classList.toggle('show-quiet', quiet.checked);
  quiet.addEventListener('change', () => {
    $('rows').classList.toggle('show-quiet', quiet.checked);
    try { localStorage.setItem(QUIET_KEY, quiet.checked ? '1' : '0'); } catch { /* ignore */ }
  });
}

function boot() {
  // A token must never stay in the address bar (the server trades it for a cookie).
  const url = new URL(window.location.href);
  if (url.searchParams.has('token')) {
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
  setUnauthorizedHandler(showTokenForm);
  wireToken();
  wireNav();
  window.addEventListener('hashchange', route);

  if (!window.location.hash || window.location.hash === '#') {
    let last = null;
    try { last = localStorage.getItem(SELECTED_KEY); } catch { /* ignore */ }
    if (last) history.replaceState(null, '', `#/w/${enc(last)}`);
  }
  route();
  agents.start();

  // For tests and for curious people: what the page holds, by seq.
  window.workerhub = Object.freeze({ debug: () => conversation.debug(), terminal: () => terminal.debug() });
}

boot();
