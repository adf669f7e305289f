// The worker list in the sidebar: one button per worker with its status, kind and
// folder, and a dot for activity since the reader last looked at it. It holds the
// page's view of every worker; main.js keeps it current from the server's pushes.

import { $, h, clear } from './dom.js';
import { plural } from './format.js';

// Signals that end a process because someone asked it to stop (SIGINT, SIGTERM).
const STOP_SIGNALS = new Set([2, 15]);

/** The status as the badge says it: "exited 1", "stopped", "killed", "busy"… */
export function statusLabel(w) {
  let label = w.status || 'unknown';
  if (w.status === 'exited') {
    const code = w.exit_code !== undefined && w.exit_code !== null;
    // The server says when it stopped the process (which may then exit with any code).
    if (/stopped/i.test(String(w.reason || '')) || (!code && STOP_SIGNALS.has(w.signal))) label = 'stopped';
    else if (code) label = `exited ${w.exit_code}`;
    else if (w.signal) label = 'killed';
  } else if (w.status === 'waiting_approval') {
    label = 'needs approval';
  }
  return label;
}

/** Why a worker shows `disconnected`: its host cannot be reached (the status's reason). */
export function disconnectedText(w) {
  const host = w.host || 'its host';
  return `Cannot reach ${host}${w.reason ? `: ${w.reason}` : ''} — retrying`;
}

/** The tool approvals a worker waits for (the worker view lists whole requests, status
 * events a summary of each). */
export function pendingApprovals(w) {
  return Array.isArray(w.pending_approvals) ? w.pending_approvals : [];
}

/** Fills a `.badge` element with a worker's status. */
export function badge(el, w) {
  el.textContent = statusLabel(w);
  el.dataset.status = w.status || '';
  const q = Array.isArray(w.queue) ? w.queue.length : 0;
  const label = w.status === 'disconnected' ? disconnectedText(w) : statusLabel(w);
  el.title = q ? `${label}, ${q} queued` : label;
}

/**
 * What a status event changes in a worker's view: the event of its history, or the
 * fields of an `agent:status` push (with the push's time as `timestamp`).
 */
export function statusPatch(ev, timestamp = ev.timestamp) {
  // A status event lists what waits for approval, and leaves the list out when nothing does.
  const patch = { status: ev.status, reason: ev.reason || null, pending_approvals: Array.isArray(ev.pending_approvals) ? ev.pending_approvals : [] };
  if (Array.isArray(ev.queue)) patch.queue = ev.queue;
  if ('pid' in ev) patch.pid = ev.pid;
  if ('exit_code' in ev) patch.exit_code = ev.exit_code;
  if ('signal' in ev) patch.signal = ev.signal;
  if ((ev.status === 'busy' || ev.status === 'waiting_approval') && ev.message_id) patch.turn = { message_id: ev.message_id, started_at: timestamp };
  if (ev.status === 'idle') patch.turn = null;
  if (!('pid' in ev) && ['idle', 'exited', 'interrupted', 'error'].includes(ev.status)) patch.pid = null;
  return patch;
}

/** A long folder shortened from the left: …/project/sub. */
function shortPath(path) {
  const p = String(path || '');
  if (p.length <= 36) return p;
  const parts = p.split('/').filter(Boolean);
  let out = '';
  for (let i = parts.length - 1; i >= 0; i--) {
    const next = `/${parts[i]}${out}`;
    if (next.length > 34 && out) break;
    out = next;
  }
  return `…${out}`;
}

// What was last seen of each worker (its last seq), to mark new activity in the list.
const seenKey = (id) => `workerhub.seen.${id}`;

function seenSeq(w) {
  let seen = null;
  try { seen = localStorage.getItem(seenKey(w.id)); } catch { /* ignore */ }
  if (seen === null) {
    // First sight: what happened before is not news.
    markSeen(w.id, w.last_seq || 0);
    return w.last_seq || 0;
  }
  return Number(seen) || 0;
}

/** Records that the reader has seen a worker's events up to `seq`. */
export function markSeen(id, seq) {
  try { localStorage.setItem(seenKey(id), String(seq)); } catch { /* ignore */ }
}

export class WorkerList {
  /** @param {object} hooks onOpen(id): the reader picked a worker; onChange(workers):
   * the list or a worker in it changed */
  constructor({ onOpen, onChange = () => {} }) {
    this.onOpen = onOpen;
    this.onChange = onChange;
    this.workers = []; // in the order they were created
    this.byId = new Map();
    this.selected = null; // the open worker's id
    // Workers whose status changed while the reader looked elsewhere. A push carries
    // no seq, so this marks them until looked at, as a higher last_seq would.
    this.active = new Set();
    this.key = '';
  }

  get(id) {
    return this.byId.get(id);
  }

  /** Replaces the whole list. */
  replace(workers) {
    // The open worker's live state comes from its stream; keep it where it is newer.
    const current = this.selected ? this.byId.get(this.selected) : null;
    const fresher = (w) => (current && w.id === current.id && (current.last_seq || 0) > (w.last_seq || 0) ? { ...w, ...current } : w);
    this.workers = workers.map(fresher).sort((a, b) => String(a.created_at || '').localeCompare(String(b.created_at || '')));
    this.byId = new Map(this.workers.map((w) => [w.id, w]));
    this.render();
    this.onChange(this.workers);
  }

  /** Adds a worker, or updates it if the list has it already. */
  add(w) {
    if (this.workers.some((x) => x.id === w.id)) return this.update(w);
    this.replace(this.workers.concat(w));
    return w;
  }

  remove(id) {
    this.active.delete(id);
    this.replace(this.workers.filter((w) => w.id !== id));
  }

  /**
   * Merges what is known of one worker; returns the merged worker. `activity`: the
   * change is news to a reader looking elsewhere.
   */
  update(w, { activity = false } = {}) {
    if (activity && w.id !== this.selected) this.active.add(w.id);
    const merged = { ...(this.byId.get(w.id) || {}), ...w };
    this.byId.set(w.id, merged);
    this.workers = this.workers.map((x) => (x.id === w.id ? merged : x));
    const item = document.querySelector(`.worker-item[data-id="${CSS.escape(w.id)}"]`);
    if (item) {
      const focused = document.activeElement === item;
      const fresh = this.item(merged);
      item.parentElement.replaceWith(fresh);
      if (focused) fresh.firstChild.focus();
    }
    this.onChange(this.workers);
    return merged;
  }

  /** Marks the open worker (null: none). */
  select(id) {
    this.selected = id;
    this.active.delete(id);
    if (id) {
      this.render();
    } else {
      document.querySelectorAll('.worker-item').forEach((el) => el.setAttribute('aria-current', 'false'));
    }
  }

  item(w) {
    const b = h('span', { class: 'badge' });
    badge(b, w);
    const fresh = this.selected !== w.id && (this.active.has(w.id) || (w.last_seq || 0) > seenSeq(w));
    const dot = fresh ? h('span', { class: 'new-dot', title: 'new activity since you last looked' }, h('span', { class: 'visually-hidden', text: 'new activity' })) : null;
    const q = Array.isArray(w.queue) && w.queue.length ? h('span', { class: 'badge', text: `${w.queue.length} queued`, dataset: { status: 'pending' } }) : null;
    const waiting = pendingApprovals(w).length;
    const approvals = waiting ? h('span', { class: 'badge approvals-badge', text: `${waiting} to approve`, title: `${plural(waiting, 'tool call')} waiting for approval`, dataset: { status: 'waiting_approval' } }) : null;
    const button = h('button', {
      type: 'button',
      class: 'worker-item',
      dataset: { id: w.id },
      attrs: { 'aria-current': this.selected === w.id ? 'true' : 'false' },
    },
    h('span', { class: 'wi-name' }, dot, w.name || w.id),
    // Waiting for approval, the count says it all.
    h('span', { class: 'wi-badges' }, approvals || b, q ? ' ' : null, q),
    h('span', { class: 'wi-sub' },
      h('span', { class: 'kind', text: w.ai_cli_type }),
      // Where it runs, for a worker on another machine (nothing for this one).
      w.host ? h('span', { class: 'host-tag', text: w.host, title: `runs on host ${w.host}` }) : null,
      h('span', { class: 'wi-path', text: shortPath(w.project_path), title: String(w.project_path || '') })));
    button.addEventListener('click', () => this.onOpen(w.id));
    return h('li', null, button);
  }

  /** Renders the list, unless nothing it shows has changed. */
  render() {
    const list = $('worker-list');
    const key = JSON.stringify(this.workers.map((w) => [w.id, w.name, w.status, w.exit_code, w.signal, w.reason, (w.queue || []).length, pendingApprovals(w).length, w.project_path, w.ai_cli_type, w.host, this.selected === w.id, w.last_seq, this.active.has(w.id)]));
    if (key === this.key && list.childElementCount === this.workers.length) return;
    this.key = key;
    const focusedId = document.activeElement && document.activeElement.classList.contains('worker-item') ? document.activeElement.dataset.id : null;
    clear(list);
    for (const w of this.workers) list.appendChild(this.item(w));
    $('workers-empty').hidden = this.workers.length > 0;
    if (focusedId) {
      const again = list.querySelector(`.worker-item[data-id="${CSS.escape(focusedId)}"]`);
      if (again) again.focus();
    }
  }
}
