// The open worker's header (name, status, kind, host, folder, details), its action
// buttons (interrupt, stop, start, delete), the "working" line while a turn runs, the
// strip of queued messages, and the banner while its host cannot be reached.

import { $, h, clear, toast } from './dom.js';
import { duration, plural } from './format.js';
import { get, post, del, enc } from './api.js';
import { badge, statusLabel, pendingApprovals, disconnectedText } from './list.js';
import { setTitle } from './title.js';

export class WorkerHeader {
  /**
   * @param {object} deps workers (the WorkerList), conversation, onChange(worker): a
   *   fresher view of the open worker, onDeleted(id)
   */
  constructor({ workers, conversation, onChange, onDeleted }) {
    this.workers = workers;
    this.conversation = conversation;
    this.onChange = onChange;
    this.onDeleted = onDeleted;
    this.workingTimer = null;
    $('act-interrupt').addEventListener('click', () => this.act('interrupt'));
    $('act-stop').addEventListener('click', () => this.act('stop'));
    $('act-start').addEventListener('click', () => this.act('start'));
    $('act-delete').addEventListener('click', () => this.confirmDelete());
    const dialog = $('confirm-dialog');
    $('confirm-cancel').addEventListener('click', () => dialog.close());
    $('confirm-form').addEventListener('submit', (e) => {
      e.preventDefault();
      dialog.close();
      this.remove(this.workers.selected);
    });
  }

  /** Shows worker `w` (a worker view; `deleted`: it was deleted meanwhile). */
  render(w) {
    setTitle(`${w.name || w.id} (${statusLabel(w)}) · workerhub`);
    $('w-name').textContent = w.name || w.id;
    $('w-name').title = w.id;
    badge($('w-badge'), w);
    $('w-kind').textContent = w.ai_cli_type || '';
    // A worker on this machine shows no host.
    $('w-host').hidden = !w.host;
    // The Shell button opens a terminal on this machine: not one for a folder elsewhere.
    $('act-shell').hidden = !!w.host;
    $('w-host').textContent = w.host || '';
    $('w-host').title = w.host ? `runs on host ${w.host}; its folder is a path there` : '';
    $('w-path').textContent = String(w.project_path || '');
    $('w-path').title = String(w.project_path || '');
    const bits = [];
    if (w.model) bits.push(`model ${w.model}`);
    if (w.mode) bits.push(`${w.mode} mode`);
    if (w.pid) bits.push(`pid ${w.pid}`);
    if (w.session_id) bits.push(`session ${String(w.session_id).slice(0, 8)}`);
    if (Array.isArray(w.command)) bits.push(w.command.join(' '));
    $('w-details').textContent = bits.join(' · ');
    $('w-details').title = bits.join('\n');

    const st = w.status;
    const busy = st === 'busy' || st === 'waiting_approval';
    const running = st === 'running' || st === 'starting';
    // Its program runs on a host that does not answer now: it can still be stopped (given
    // up here), not interrupted or started.
    const disconnected = st === 'disconnected';
    const gone = !!w.deleted;
    $('act-interrupt').disabled = gone || !(busy || (!w.has_turns && running));
    $('act-stop').disabled = gone || !(busy || running || disconnected || (Array.isArray(w.queue) && w.queue.length > 0));
    $('act-start').hidden = !!w.has_turns;
    $('act-start').disabled = gone || running || disconnected;
    const banner = $('host-banner');
    banner.hidden = gone || !disconnected;
    banner.textContent = disconnected && !gone ? `${disconnectedText(w)}. Messages are refused until it answers again; nothing it prints is lost.` : '';
    $('act-delete').disabled = gone;
    this.renderQueue(w);
    this.renderWorking(w);
  }

  /** "Working · 12 s" at the end of the conversation while a turn runs. */
  renderWorking(w) {
    const box = $('working');
    clearInterval(this.workingTimer);
    this.workingTimer = null;
    const waiting = w.status === 'waiting_approval';
    const busy = w.status === 'busy' || waiting;
    box.hidden = !busy;
    box.classList.toggle('waiting', waiting);
    if (!busy) return;
    const since = Date.parse((w.turn && w.turn.started_at) || '') || Date.now();
    const n = pendingApprovals(w).length;
    const doing = waiting ? `waits for your approval${n > 1 ? ` (${n} requests)` : ''}` : 'is working';
    const tick = () => {
      $('working-text').textContent = `${w.name || 'The worker'} ${doing} · ${duration(Math.max(0, Date.now() - since))}`;
    };
    tick();
    this.workingTimer = setInterval(tick, 1000);
    if (this.conversation.following) this.conversation.scrollToBottom();
  }

  renderQueue(w) {
    const box = $('queue');
    clear(box);
    const q = Array.isArray(w.queue) ? w.queue : [];
    box.hidden = q.length === 0;
    if (!q.length) return;
    box.appendChild(h('span', { class: 'muted', text: 'Queued:' }));
    for (const item of q) {
      box.appendChild(h('span', { class: 'queue-item', text: `#${item.position} ${item.content}`, title: item.content }));
    }
  }

  async act(what) {
    const id = this.workers.selected;
    if (!id) return;
    const w = this.workers.get(id) || {};
    const buttons = ['act-interrupt', 'act-stop', 'act-start'].map($);
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const answer = await post(`/api/workers/${enc(id)}/${what}`);
      if (what === 'stop' && answer && answer.dropped_messages) toast(`Stopped; ${plural(answer.dropped_messages, 'queued message')} dropped.`);
    } catch (err) {
      toast(`${what} ${w.name || id}: ${err.message}`);
    }
    try {
      const fresh = await get(`/api/workers/${enc(id)}`);
      if (this.workers.selected === fresh.id) this.onChange(fresh);
    } catch { /* its pushes will tell */ }
  }

  confirmDelete() {
    const w = this.workers.get(this.workers.selected);
    if (!w) return;
    const dialog = $('confirm-dialog');
    $('confirm-title').textContent = `Delete ${w.name || w.id}?`;
    $('confirm-text').textContent = 'Its process is stopped and the worker is removed with its history. This cannot be undone.';
    dialog.returnValue = '';
    dialog.showModal();
    $('confirm-cancel').focus();
  }

  async remove(id) {
    try {
      await del(`/api/workers/${enc(id)}`);
      this.onDeleted(id);
    } catch (err) {
      toast(`Delete failed: ${err.message}`);
    }
  }
}
