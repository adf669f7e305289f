// The tasks panel: instructions given to a worker (or to any idle worker of a kind, or
// a new one), once or on a schedule. GET/POST /api/tasks, POST /api/tasks/{id}/run|cancel.

import { $, h, clear } from './dom.js';
import { clock, cost, duration } from './format.js';
import { ApiError, get, post, enc } from './api.js';
import { loadKinds, kindOptionText, kindLabel } from './kinds.js';
import { suggestPaths, rememberPath } from './paths.js';
import { collapsible } from './render.js';
import { renderMarkdown } from './markdown.js';

const TASKS_EVERY_MS = 4000;

function when(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  const today = new Date().toDateString() === d.toDateString();
  return today ? clock(ts) : d.toLocaleString();
}

function relative(ts) {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return '';
  const ms = d.getTime() - Date.now();
  return ms >= 0 ? `in ${duration(ms)}` : `${duration(-ms)} ago`;
}

/** 3600 → "1 h", 90 → "90 s", 300 → "5 min". */
function everyText(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

export class Tasks {
  constructor({ toast, openWorker }) {
    this.toast = toast;
    this.openWorker = openWorker;
    this.visible = false;
    this.timer = null;
    this.workers = [];
    this.optionsKey = '';
    this.kindsLoaded = false;
    this.aiKinds = null; // the AI kinds that can run here, once known
    this.whyNoKind = ''; // why none can, in a few words
    $('task-filter').addEventListener('change', () => this.load());
    $('task-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.create();
    });
    $('task-worker').addEventListener('change', () => this.showTarget());
  }

  /** The workers a task can go to: any that takes messages (an AI worker runs it as a
   * turn, a command worker gets it as a line on its stdin). */
  setWorkers(workers) {
    this.workers = workers;
    this.renderTargets();
  }

  renderTargets() {
    const usable = this.workers.filter((w) => w.takes_messages !== false);
    const noKind = this.aiKinds !== null && this.aiKinds.length === 0;
    const key = `${usable.map((w) => `${w.id}:${w.name}`).join('|')}#${noKind}`;
    if (key === this.optionsKey) return;
    this.optionsKey = key;
    const select = $('task-worker');
    const current = select.value;
    clear(select);
    select.appendChild(h('option', {
      value: '',
      text: noKind ? 'Any worker of a kind (no AI CLI can run here)' : 'Any idle worker of a kind (or a new one)',
      disabled: noKind,
    }));
    for (const w of usable) {
      const what = w.has_turns ? w.ai_cli_type : 'command';
      select.appendChild(h('option', { value: w.id, text: `${w.name || w.id} (${what})` }));
    }
    if (usable.some((w) => w.id === current)) select.value = current;
    else select.value = noKind && usable.length ? usable[0].id : '';
    this.showTarget();
  }

  showTarget() {
    const noKind = this.aiKinds !== null && this.aiKinds.length === 0;
    const any = !$('task-worker').value;
    $('task-kind-field').hidden = !any || noKind;
    $('task-path-field').hidden = !any || noKind;
    // Without an AI CLI a task can still go to a command worker: say so plainly.
    const note = $('task-kind-note');
    const hasWorker = this.workers.some((w) => w.takes_messages !== false);
    $('task-form').querySelector('button[type="submit"]').disabled = noKind && !hasWorker;
    let text = '';
    if (noKind && !hasWorker) {
      text = `No AI CLI can run on this server${this.whyNoKind ? ` (${this.whyNoKind})` : ''}. A task can go to a command worker instead: create one with New worker (for example the command \`cat\`), then pick it here.`;
    } else if (noKind) {
      text = `No AI CLI can run on this server${this.whyNoKind ? ` (${this.whyNoKind})` : ''}, so a task goes to one of your workers: a command worker gets the instruction as a line on its input.`;
    }
    note.textContent = text;
    note.hidden = !text;
  }

  async loadKinds() {
    if (this.kindsLoaded) return;
    try {
      const data = await loadKinds();
      const select = $('task-kind');
      clear(select);
      // Kinds that run a worker's own command (command, acp) cannot be started by a
      // task from the kind alone.
      const ai = data.kinds.filter((k) => !k.needs_command);
      for (const k of ai) select.appendChild(h('option', { value: k.name, text: kindOptionText(k), disabled: !k.usable }));
      this.aiKinds = ai.filter((k) => k.usable);
      this.whyNoKind = `none of ${ai.map((k) => kindLabel(k)).join(', ')} is installed and enabled; New worker says why for each`;
      const pick = this.aiKinds.find((k) => k.name === data.defaultKind) || this.aiKinds[0];
      if (pick) select.value = pick.name;
      suggestPaths($('task-path-list'), data.roots);
      this.kindsLoaded = true;
      this.optionsKey = '';
      this.renderTargets();
      this.showTarget();
    } catch { /* tried again next time */ }
  }

  show() {
    this.visible = true;
    this.loadKinds();
    this.load();
  }

  hide() {
    this.visible = false;
    clearTimeout(this.timer);
  }

  schedule() {
    clearTimeout(this.timer);
    if (this.visible) this.timer = setTimeout(() => this.load(), TASKS_EVERY_MS);
  }

  note(text) {
    const el = $('tasks-note');
    el.hidden = !text;
    el.textContent = text || '';
  }

  async load() {
    const filter = $('task-filter').value;
    try {
      const data = await get(`/api/tasks${filter ? `?status=${enc(filter)}` : ''}`);
      this.note(null);
      $('task-form').hidden = false;
      this.render(data.tasks || []);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && err.code === 'not_found') {
        this.note('This server has no tasks API (a newer workerhub has it).');
        $('task-form').hidden = true;
        clear($('task-list'));
      } else {
        this.note(`Could not load the tasks: ${err.message}`);
      }
    } finally {
      this.schedule();
    }
  }

  render(tasks) {
    const list = $('task-list');
    // Keep what the reader opened (a long result) open across refreshes.
    const open = new Set(Array.from(list.querySelectorAll('details[open]'), (d) => d.dataset.key));
    const focused = document.activeElement && list.contains(document.activeElement) ? document.activeElement.dataset.key : null;
    clear(list);
    if (!tasks.length) {
      list.appendChild(h('li', { class: 'muted', text: 'No tasks.' }));
      return;
    }
    const sorted = tasks.slice().sort((a, b) => String(b.created_at || '').localeCompare(String(a.created_at || '')));
    for (const t of sorted) list.appendChild(this.item(t, open));
    if (focused) {
      const again = list.querySelector(`[data-key="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  workerLink(id) {
    const worker = this.workers.find((w) => w.id === id);
    const link = h('button', { type: 'button', class: 'link-button', text: worker ? worker.name || worker.id : id.slice(0, 8), dataset: { key: `w-${id}` } });
    link.addEventListener('click', () => this.openWorker(id));
    return link;
  }

  item(t, open) {
    const status = h('span', { class: 'badge task-status', text: t.status || '?', dataset: { status: t.status || '' } });
    const meta = h('div', { class: 'task-meta' });
    if (t.worker_id) meta.appendChild(h('span', null, 'on ', this.workerLink(t.worker_id)));
    else if (t.ai_cli_type) meta.appendChild(h('span', { text: `any ${t.ai_cli_type} worker${t.project_path ? ` in ${t.project_path}` : ''}` }));
    if (t.assigned_worker && t.assigned_worker !== t.worker_id) meta.appendChild(h('span', null, 'ran on ', this.workerLink(t.assigned_worker)));
    const every = t.schedule && t.schedule.every_seconds;
    if (every) meta.appendChild(h('span', { class: 'task-every', text: `every ${everyText(every)}` }));
    if (t.next_run_at) meta.appendChild(h('span', { text: `next run ${when(t.next_run_at)} (${relative(t.next_run_at)})`, title: t.next_run_at }));
    if (t.runs) meta.appendChild(h('span', { text: `${t.runs} run${t.runs === 1 ? '' : 's'}` }));
    if (t.finished_at) meta.appendChild(h('span', { text: `finished ${when(t.finished_at)}`, title: t.finished_at }));
    else if (t.created_at) meta.appendChild(h('span', { text: `created ${when(t.created_at)}`, title: t.created_at }));
    meta.appendChild(h('span', { class: 'mono', text: String(t.id || '').slice(0, 8), title: t.id }));

    const short = String(t.id).slice(0, 8);
    const actions = h('div', { class: 'task-actions' });
    if (t.status !== 'running') {
      const again = t.status === 'completed' || t.status === 'failed' || t.status === 'cancelled';
      const label = again && !every ? 'Run again' : 'Run now';
      const run = h('button', { type: 'button', class: 'button small task-run', text: label, dataset: { key: `run-${t.id}` }, attrs: { 'aria-label': `${label}: task ${short}` } });
      run.addEventListener('click', () => this.action(t, 'run'));
      actions.appendChild(run);
    }
    if (t.status === 'pending' || t.status === 'running' || (every && t.status !== 'cancelled')) {
      const cancel = h('button', { type: 'button', class: 'button small danger task-cancel', text: 'Cancel', dataset: { key: `cancel-${t.id}` }, attrs: { 'aria-label': `Cancel task ${short}` } });
      cancel.addEventListener('click', () => this.action(t, 'cancel'));
      actions.appendChild(cancel);
    }
    const li = h('li', { class: 'card task', dataset: { id: t.id || '' } },
      h('div', { class: 'task-main' }, status, ' ', h('span', { class: 'task-instruction', text: t.instruction || '' })),
      actions,
      meta);
    if (t.error) li.appendChild(h('div', { class: 'task-out error-box', text: t.error }));
    const r = t.result;
    if (r && typeof r === 'object') {
      const bits = [];
      if (r.outcome) bits.push(r.outcome);
      if (Number.isFinite(r.duration_ms)) bits.push(duration(r.duration_ms));
      if (r.result && Number.isFinite(r.result.cost_usd)) bits.push(cost(r.result.cost_usd));
      const key = `result-${t.id}`;
      const details = h('details', { class: 'task-out task-result', dataset: { key }, open: open.has(key) },
        h('summary', { text: `Result${bits.length ? `: ${bits.join(' · ')}` : ''}` }));
      if (typeof r.text === 'string' && r.text) details.appendChild(renderMarkdown(r.text));
      else if (r.result && r.result.result) details.appendChild(renderMarkdown(String(r.result.result)));
      else details.appendChild(h('div', { class: 'muted small', text: '(no text)' }));
      li.appendChild(details);
    } else if (r !== undefined && r !== null) {
      const box = h('div', { class: 'task-out' });
      box.dataset.preClass = 'tool-output';
      collapsible(box, typeof r === 'string' ? r : JSON.stringify(r, null, 2), { lines: 6 });
      li.appendChild(box);
    }
    return li;
  }

  async action(t, what) {
    try {
      await post(`/api/tasks/${enc(t.id)}/${what}`);
      this.toast(what === 'run' ? 'Task started.' : 'Task cancelled.');
    } catch (err) {
      this.toast(`${what === 'run' ? 'Run' : 'Cancel'} failed: ${err.message}`);
    }
    this.load();
  }

  async create() {
    const err = $('task-error');
    err.hidden = true;
    const instruction = $('task-instruction').value.trim();
    if (!instruction) {
      err.textContent = 'The instruction is required.';
      err.hidden = false;
      return;
    }
    const body = { instruction };
    const worker = $('task-worker').value;
    if (worker) {
      body.worker_id = worker;
    } else {
      if (this.aiKinds !== null && !this.aiKinds.length) {
        err.textContent = 'No AI CLI can run on this server: pick a worker for the task (a command worker will do).';
        err.hidden = false;
        return;
      }
      if ($('task-kind').value) body.ai_cli_type = $('task-kind').value;
      const path = $('task-path').value.trim();
      if (path) body.project_path = path;
    }
    const everyText = $('task-every').value;
    if (everyText !== '') {
      const every = Number(everyText);
      if (!Number.isInteger(every) || every < 1) {
        err.textContent = 'Repeat every: a whole number of seconds, 1 or more.';
        err.hidden = false;
        return;
      }
      body.schedule = { every_seconds: every };
    }
    const button = $('task-form').querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      await post('/api/tasks', body);
      if (body.project_path) rememberPath(body.project_path);
      $('task-instruction').value = '';
      $('task-every').value = '';
      this.toast('Task created.');
      this.load();
    } catch (ex) {
      err.textContent = ex.message;
      err.hidden = false;
    } finally {
      button.disabled = false;
    }
  }
}
