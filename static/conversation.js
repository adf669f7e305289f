// The selected worker's conversation: its events in memory (a contiguous run of seqs,
// each held once), a window of them on the page, the live stream, and the composer's
// pending messages.
//
// * Loading: the tail of the history over HTTP, then the WebSocket from the last seq
//   held (`?since=`). Older events are fetched when the reader scrolls up.
// * Windowing: at most MAX_ROWS rows are on the page. While following the end, the
//   oldest rows leave as new ones come; scrolling up brings them back.
// * Every seq is taken once: the stream drops seqs it already passed, and `ingest`
//   drops any seq at or below the last one held. A gap (history trimmed, or a bug) is
//   filled over HTTP before going on.

import { h, clear } from './dom.js';
import { ApiError, get, post, enc } from './api.js';
import { renderEvent, unmergeResult, userBubble } from './render.js';
import { WorkerStream } from './stream.js';
import { statusPatch } from './list.js';

const INITIAL_FETCH = 1000; // events fetched when a worker is opened
const FETCH_CHUNK = 1000; // events fetched each time the reader scrolls past the oldest held
const INITIAL_ROWS = 300; // rows rendered when a worker is opened
const CHUNK_ROWS = 300; // rows added when scrolling up or down past the window
const MAX_ROWS = 2000; // rows on the page at most
const ROWS_PER_FRAME = 400; // rows rendered per animation frame while catching up
const RESTORE_LIMIT = 20000; // farthest back a saved scroll position is restored
const MAX_HELD = 50000; // events kept in memory; older ones are fetched again if needed
const NEAR_PX = 300;
const BOTTOM_PX = 40;

const scrollKey = (id) => `workerhub.scroll.${id}`;

// Errors that say in plain words why a turn failed: its result need not say it again.
const EXPLAINING_CODES = new Set(['credentials_missing', 'credentials_rejected', 'api_unreachable']);

function loadScroll(id) {
  try {
    const v = JSON.parse(localStorage.getItem(scrollKey(id)) || 'null');
    return v && typeof v === 'object' ? v : null;
  } catch { return null; }
}

/** Forgets where the reader was in a worker's conversation (the worker is gone). */
export function forgetScroll(id) {
  try { localStorage.removeItem(scrollKey(id)); } catch { /* ignore */ }
}

export class Conversation {
  /**
   * @param {object} els the page's elements: conv, rows, pending, loadEarlier,
   *   historyStart, moreBelow, jump, jumpCount
   * @param {object} hooks onStatus(workerPatch), onConn(state, info), probe(id)
   */
  constructor(els, hooks) {
    this.els = els;
    this.hooks = hooks;
    this.id = null;
    this.raf = 0;
    this.sendChain = Promise.resolve();
    els.conv.addEventListener('scroll', () => this.onScroll(), { passive: true });
    els.conv.addEventListener('wheel', (e) => { if (e.deltaY < 0) this.unfollow(); }, { passive: true });
    els.conv.addEventListener('keydown', (e) => {
      if (['PageUp', 'ArrowUp', 'Home'].includes(e.key)) this.unfollow();
      if (e.key === 'End' && !e.ctrlKey) {
        e.preventDefault();
        this.jumpToLatest();
      }
    });
    els.jump.addEventListener('click', () => this.jumpToLatest());
    els.loadEarlier.addEventListener('click', () => this.extendUp());
    els.loadLater.addEventListener('click', () => this.extendDown());
    this.resizeObserver = new ResizeObserver(() => { if (this.following) this.scrollToBottom(); });
    this.resizeObserver.observe(els.conv);
    window.addEventListener('pagehide', () => this.saveScroll());
    this.reset();
  }

  // ---- opening and closing ----

  reset() {
    if (this.stream) this.stream.stop();
    this.stream = null;
    if (this.rafIsTimer) clearTimeout(this.raf); else cancelAnimationFrame(this.raf);
    this.raf = 0;
    this.events = [];
    this.base = 0; // the seq before the first held event when none is held
    this.firstAvail = 1;
    this.domLo = 0; // seqs on the page: domLo..domHi (0 when none)
    this.domHi = 0;
    this.rowEls = new Map();
    this.cards = new Map();
    this.resultRows = new Map();
    this.toolUpdates = new Map(); // tool id → rows of its tool_call_update events on the page
    this.bubbles = new Map();
    this.bubbleEvents = new Map();
    this.started = new Set();
    this.failedIds = new Set();
    this.queue = new Map();
    this.queueSeq = 0;
    this.approvals = new Map(); // approval id → its card on the page
    this.decisions = new Map(); // approval id → its approval_resolved event
    this.answering = new Map(); // approval id → its card, while this page's answer is on its way
    this.explained = new Set(); // seqs of failed results an error event already explained
    this.explaining = false; // such an error came in the running turn
    this.incoming = [];
    this.filling = false;
    this.tailMode = true;
    this.following = true;
    this.unseen = 0;
    this.loadingUp = false;
    this.pendings = [];
    this.loaded = false;
    clear(this.els.rows);
    clear(this.els.pending);
    this.updateEdges();
    this.updateJump();
  }

  /** Shows `worker` (a worker view from the API). */
  async open(worker) {
    this.reset();
    this.id = worker.id;
    this.worker = worker;
    const token = Symbol('open');
    this.openToken = token;
    const saved = loadScroll(worker.id);
    this.hooks.onConn('connecting', {});
    const last = worker.last_seq || 0;
    this.firstAvail = worker.first_seq || 1;
    let since = Math.max(this.firstAvail - 1, last - INITIAL_FETCH);
    const anchor = saved && !saved.following && Number.isFinite(saved.seq) ? saved.seq : null;
    if (anchor !== null && anchor <= last && anchor > this.firstAvail - 1 && anchor - 100 < since && last - anchor < RESTORE_LIMIT) {
      since = Math.max(this.firstAvail - 1, anchor - 100);
    }
    this.base = since;
    try {
      await this.fetchForward(since, last, token);
    } catch (err) {
      if (this.openToken !== token) return;
      if (err instanceof ApiError && err.status === 404) {
        this.hooks.onConn('gone', {});
        return;
      }
      // The stream will bring what the history request could not.
    }
    if (this.openToken !== token) return;
    this.loaded = true;
    // Render: around the saved position, or the tail.
    if (anchor !== null && this.indexOf(anchor) >= 0) {
      const lo = Math.max(this.lo(), anchor - 50);
      const hi = Math.min(this.hi(), lo + MAX_ROWS - 1);
      this.renderRange(lo, hi, 'append');
      this.tailMode = hi === this.hi();
      this.following = false;
      const el = this.firstVisibleRowFrom(anchor);
      if (el) this.els.conv.scrollTop = Math.max(0, el.offsetTop - (saved.offset || 0));
    } else {
      this.renderTail();
    }
    this.updateEdges();
    this.updateJump();
    this.startStream();
  }

  /** The worker was deleted: stop following it, and say so. */
  deleted() {
    if (this.stream) this.stream.stop();
    this.hooks.onConn('gone', { deleted: true });
  }

  close() {
    this.saveScroll();
    if (this.id && this.loaded && this.hooks.onClose) this.hooks.onClose(this.id, this.hi());
    this.openToken = null;
    this.reset();
    this.id = null;
  }

  /** Fetches events after `since` up to `until` (or the end) into memory. */
  async fetchForward(since, until, token) {
    let at = since;
    for (;;) {
      const page = await get(`/api/workers/${enc(this.id)}/events?since=${at}&limit=5000`);
      if (this.openToken !== token) return;
      if (Number.isFinite(page.first_seq)) this.firstAvail = page.first_seq;
      if (!page.events.length) {
        if (!this.events.length) this.base = Math.max(this.base, page.next_since || at);
        return;
      }
      for (const ev of page.events) this.ingest(ev);
      at = page.events[page.events.length - 1].seq;
      // A page is bounded in events and in bytes: `has_more` says whether one follows.
      if (at >= until || !page.has_more) return;
    }
  }

  startStream() {
    const id = this.id;
    this.stream = new WorkerStream(id, this.hi(), {
      onEvent: (ev) => this.receive(ev),
      onClientError: (ev) => this.showClientError(ev),
      onState: (state, info) => {
        if (this.id !== id) return;
        if (state === 'live') this.refreshWorker();
        this.hooks.onConn(state, info);
      },
      probe: () => this.hooks.probe(id),
    });
    this.stream.start();
  }

  async refreshWorker() {
    try {
      const w = await get(`/api/workers/${enc(this.id)}`);
      if (w.id === this.id) {
        this.worker = w;
        this.hooks.onStatus(w);
      }
    } catch { /* the pushes of the worker list will tell */ }
  }

  // ---- memory ----

  lo() { return this.events.length ? this.events[0].seq : this.base + 1; }

  hi() { return this.events.length ? this.events[this.events.length - 1].seq : this.base; }

  indexOf(seq) {
    const ev = this.events;
    let a = 0;
    let b = ev.length - 1;
    while (a <= b) {
      const m = (a + b) >> 1;
      const s = ev[m].seq;
      if (s === seq) return m;
      if (s < seq) a = m + 1; else b = m - 1;
    }
    return -1;
  }

  /** Index of the first held event with seq >= `seq`. */
  lowerBound(seq) {
    const ev = this.events;
    let a = 0;
    let b = ev.length;
    while (a < b) {
      const m = (a + b) >> 1;
      if (ev[m].seq < seq) a = m + 1; else b = m;
    }
    return a;
  }

  /** Takes one event in seq order; returns false if it was already held. */
  ingest(ev) {
    if (ev.seq <= this.hi()) return false;
    this.events.push(ev);
    this.learn(ev);
    return true;
  }

  /** What an event tells about messages and the worker's state. */
  learn(ev) {
    if (ev.type === 'status') {
      if (ev.message_id && (ev.status === 'busy' || ev.status === 'waiting_approval')) this.started.add(ev.message_id);
      if (ev.status === 'idle') this.explaining = false;
      if (ev.last_turn && ev.last_turn.message_id) this.started.add(ev.last_turn.message_id);
      if (Array.isArray(ev.queue) && ev.seq >= this.queueSeq) {
        this.queue = new Map(ev.queue.map((q) => [q.message_id, q.position]));
        this.queueSeq = ev.seq;
      }
      if (this.loaded || ev.seq >= (this.worker.last_seq || 0)) this.applyStatus(ev);
    } else if (ev.type === 'error' && ev.message_id && ev.code === 'start_failed') {
      this.failedIds.add(ev.message_id);
    } else if (ev.type === 'user_message') {
      this.settlePending(ev);
    } else if (ev.type === 'diff') {
      if (this.hooks.onDiff) this.hooks.onDiff(ev);
    } else if (ev.type === 'approval_resolved') {
      this.decisions.set(ev.approval_id, ev);
      this.answering.delete(ev.approval_id);
      const card = this.approvals.get(ev.approval_id);
      if (card) card.resolve(ev);
    }
    if (ev.type === 'error' && EXPLAINING_CODES.has(ev.code)) this.explaining = true;
    if (this.explaining && ev.type === 'output' && ev.content && ev.content.kind === 'result') {
      this.explained.add(ev.seq);
      this.explaining = false;
    }
  }

  applyStatus(ev) {
    Object.assign(this.worker, statusPatch(ev), { last_seq: ev.seq });
    this.hooks.onStatus(this.worker);
  }

  messageLabel(ev) {
    const id = ev.message_id;
    if (!id) return ev.state === 'queued' ? 'queued' : 'sent';
    if (this.failedIds.has(id)) return 'failed';
    if (this.started.has(id)) return 'sent';
    if (ev.state !== 'queued') return 'sent';
    if (this.queue.has(id)) return `queued #${this.queue.get(id)}`;
    if (this.queueSeq < ev.seq) return 'queued';
    return 'dropped';
  }

  refreshBubbles() {
    for (const [id, stateEl] of this.bubbles) {
      const ev = this.bubbleEvents.get(id);
      if (!ev) continue;
      const label = this.messageLabel(ev);
      if (stateEl.textContent !== label) {
        stateEl.textContent = label;
        stateEl.dataset.state = label.split(' ')[0];
      }
    }
  }

  // ---- live events ----

  receive(ev) {
    this.incoming.push(ev);
    this.scheduleFlush();
  }

  /** Next frame; in a hidden tab (no frames) a timer keeps memory and state current. */
  scheduleFlush() {
    if (this.raf) return;
    if (document.hidden) {
      this.raf = setTimeout(() => this.flush(), 250);
      this.rafIsTimer = true;
    } else {
      this.raf = requestAnimationFrame(() => this.flush());
      this.rafIsTimer = false;
    }
  }

  flush() {
    this.raf = 0;
    if (this.filling) return;
    let changed = false;
    let added = 0;
    while (this.incoming.length) {
      const ev = this.incoming[0];
      if (ev.seq > this.hi() + 1 && this.loaded) {
        this.fillGap(this.hi(), ev.seq);
        return;
      }
      this.incoming.shift();
      if (this.ingest(ev)) {
        changed = true;
        added++;
      }
    }
    if (changed) {
      this.refreshBubbles();
      if (!this.following || !this.tailMode) this.unseen += added;
      this.forgetOldest();
    }
    this.catchUpRows();
  }

  /** Fetches the events between `after` and `before` that the stream skipped. */
  async fillGap(after, before) {
    this.filling = true;
    const id = this.id;
    try {
      let at = after;
      while (at < before - 1) {
        const page = await get(`/api/workers/${enc(id)}/events?since=${at}&limit=${Math.min(10000, before - at - 1)}`);
        if (this.id !== id) return;
        for (const ev of page.events) if (ev.seq < before) this.ingest(ev);
        if (!page.events.length || !page.has_more) break;
        at = page.events[page.events.length - 1].seq;
      }
      if (this.hi() < before - 1) {
        // The server no longer has them (its history was trimmed): say so, once.
        const note = { seq: before - 1, type: 'gap', timestamp: new Date().toISOString(), missing: before - 1 - this.hi() };
        this.base = before - 1;
        this.events.push(note);
      }
    } catch {
      // Try again at the next event.
    } finally {
      if (this.id === id) {
        this.filling = false;
        this.scheduleFlush();
      }
    }
  }

  /** Keeps memory bounded on a long stream: events far above the page are dropped
   * (scrolling up fetches them again). */
  forgetOldest() {
    if (this.events.length <= MAX_HELD) return;
    const keepFrom = Math.min(this.domLo || this.hi(), this.hi() - Math.floor(MAX_HELD * 0.8));
    const cut = this.lowerBound(keepFrom);
    if (cut > 0) this.events.splice(0, cut);
  }

  /** Renders, in bounded steps, what the page still lacks at the end. */
  catchUpRows() {
    if (!this.tailMode) {
      this.updateJump();
      return;
    }
    const hi = this.hi();
    if (this.domHi >= hi) return;
    const rows = this.rowEls.size;
    if (!this.following && rows >= MAX_ROWS * 1.5) {
      // The reader is looking further up: stop growing the page; jump brings the end.
      this.tailMode = false;
      this.unseen = hi - this.domHi;
      this.updateEdges();
      this.updateJump();
      return;
    }
    if (hi - this.domHi > MAX_ROWS) {
      this.renderTail();
    } else {
      const from = this.domHi ? this.domHi + 1 : this.lo();
      const to = Math.min(hi, from + ROWS_PER_FRAME - 1);
      this.renderRange(from, to, 'append');
      if (this.following) this.trimTop();
    }
    if (this.following) this.scrollToBottom();
    this.updateEdges();
    this.updateJump();
    if (this.domHi < this.hi()) this.scheduleFlush();
  }

  // ---- rendering ----

  renderCtx() {
    return {
      hasTurns: !!(this.worker && this.worker.has_turns),
      cards: this.cards,
      resultRows: this.resultRows,
      bubbles: this.bubbles,
      messageLabel: (ev) => this.messageLabel(ev),
      approvals: this.approvals,
      decisions: this.decisions,
      answer: (approvalId, decision, message) => this.answer(approvalId, decision, message),
      explained: (seq) => this.explained.has(seq),
      toolUpdates: this.toolUpdates,
      project: this.worker ? this.worker.project_path : '',
      previousStatus: (seq) => this.previousStatus(seq),
      planSuperseded: (seq) => this.planNear(seq, 1) !== null,
      earlierPlanRow: (seq) => {
        const earlier = this.planNear(seq, -1);
        return earlier ? this.rowEls.get(earlier.seq) || null : null;
      },
    };
  }

  /**
   * The plan event of the same turn nearest to the one at `seq`, after it (`dir` 1) or
   * before it (-1), among the events held; null when the turn ends first.
   */
  planNear(seq, dir) {
    let i = this.indexOf(seq);
    if (i < 0) return null;
    for (i += dir; i >= 0 && i < this.events.length; i += dir) {
      const ev = this.events[i];
      const kind = ev.type === 'output' && ev.content ? ev.content.kind : null;
      if (kind === 'plan') return ev;
      if (kind === 'result' || (ev.type === 'user_message' && ev.state !== 'queued')) return null;
      if (ev.type === 'status' && ['idle', 'exited', 'error', 'interrupted'].includes(ev.status)) return null;
    }
    return null;
  }

  /** The status of the held status event before `seq` (null when none is held). */
  previousStatus(seq) {
    for (let i = this.lowerBound(seq) - 1; i >= 0; i--) {
      if (this.events[i].type === 'status') return this.events[i].status;
    }
    return null;
  }

  /** Renders held events lo..hi at the end or the start of the page. */
  renderRange(lo, hi, where) {
    if (hi < lo) return;
    const ctx = this.renderCtx();
    const frag = document.createDocumentFragment();
    let i = this.lowerBound(lo);
    let first = 0;
    let last = 0;
    for (; i < this.events.length && this.events[i].seq <= hi; i++) {
      const ev = this.events[i];
      if (this.rowEls.has(ev.seq)) continue;
      const el = ev.type === 'gap'
        ? h('div', { class: 'row notice warn', dataset: { seq: String(ev.seq), type: 'gap' }, text: `${ev.missing} events are no longer in the server's history` })
        : renderEvent(ev, ctx);
      if (ev.type === 'user_message' && ev.message_id) this.bubbleEvents.set(ev.message_id, ev);
      this.rowEls.set(ev.seq, el);
      frag.appendChild(el);
      if (!first) first = ev.seq;
      last = ev.seq;
    }
    if (!first) return;
    if (where === 'prepend') {
      this.els.rows.insertBefore(frag, this.els.rows.firstChild);
      this.domLo = first;
      if (!this.domHi) this.domHi = last;
    } else {
      this.els.rows.appendChild(frag);
      this.domHi = last;
      if (!this.domLo) this.domLo = first;
    }
  }

  /** Clears the page and renders the last rows. */
  renderTail() {
    this.clearRows();
    const hi = this.hi();
    const start = this.events.length ? this.events[Math.max(0, this.events.length - INITIAL_ROWS)].seq : hi + 1;
    this.renderRange(start, hi, 'append');
    this.tailMode = true;
    this.unseen = 0;
    if (this.following) this.scrollToBottom();
  }

  clearRows() {
    clear(this.els.rows);
    this.rowEls.clear();
    this.cards.clear();
    this.resultRows.clear();
    this.toolUpdates.clear();
    this.bubbles.clear();
    this.approvals.clear();
    this.domLo = 0;
    this.domHi = 0;
  }

  /** Takes one row off the page, keeping tool cards and their results consistent. */
  dropRow(el) {
    const ev = el.__ev;
    if (el.__card && el.__card.id) {
      const card = el.__card;
      if (this.cards.get(card.id) === card) this.cards.delete(card.id);
      const result = this.resultRows.get(card.id);
      if (result && result.isConnected && result !== el && result.classList.contains('merged')) unmergeResult(result);
    }
    if (ev && ev.type === 'output' && ev.content && ev.content.kind === 'tool_result') {
      const id = ev.content.tool_use_id;
      if (id && this.resultRows.get(id) === el) this.resultRows.delete(id);
    }
    if (el.__toolUpdate && this.toolUpdates.has(el.__toolUpdate)) {
      const rows = this.toolUpdates.get(el.__toolUpdate);
      rows.delete(el);
      if (!rows.size) this.toolUpdates.delete(el.__toolUpdate);
    }
    if (ev && ev.type === 'user_message' && ev.message_id) this.bubbles.delete(ev.message_id);
    if (el.__approval && this.approvals.get(el.__approval.id) === el.__approval) this.approvals.delete(el.__approval.id);
    this.rowEls.delete(Number(el.dataset.seq));
    el.remove();
  }

  trimTop() {
    const rows = this.els.rows;
    let extra = this.rowEls.size - MAX_ROWS;
    while (extra > 0 && rows.firstElementChild) {
      this.dropRow(rows.firstElementChild);
      extra--;
    }
    const first = rows.firstElementChild;
    this.domLo = first ? Number(first.dataset.seq) : 0;
    if (!first) this.domHi = 0;
  }

  trimBottom() {
    const rows = this.els.rows;
    let extra = this.rowEls.size - MAX_ROWS;
    if (extra <= 0) return;
    while (extra > 0 && rows.lastElementChild) {
      this.dropRow(rows.lastElementChild);
      extra--;
    }
    const last = rows.lastElementChild;
    this.domHi = last ? Number(last.dataset.seq) : 0;
    this.tailMode = false;
  }

  /** Brings earlier events onto the page (fetching them if needed). */
  async extendUp() {
    if (this.loadingUp || !this.id) return;
    if (this.domLo > this.lo()) {
      const conv = this.els.conv;
      const before = conv.scrollHeight;
      const top = conv.scrollTop;
      this.renderRange(Math.max(this.lo(), this.domLo - CHUNK_ROWS), this.domLo - 1, 'prepend');
      conv.scrollTop = top + (conv.scrollHeight - before);
      this.trimBottom();
      this.updateEdges();
      this.updateJump();
      return;
    }
    if (this.lo() <= this.firstAvail) {
      this.updateEdges();
      return;
    }
    this.loadingUp = true;
    this.updateEdges();
    const id = this.id;
    const lo = this.lo();
    const since = Math.max(this.firstAvail - 1, lo - 1 - FETCH_CHUNK);
    try {
      const page = await get(`/api/workers/${enc(id)}/events?since=${since}&limit=${lo - 1 - since}`);
      if (this.id !== id) return;
      if (Number.isFinite(page.first_seq)) this.firstAvail = page.first_seq;
      const older = page.events.filter((e) => e.seq < this.lo());
      if (older.length) {
        this.events = older.concat(this.events);
        // Messages and queue states from older events: only add what is missing.
        for (const ev of older) {
          if (ev.type === 'status' && ev.message_id && ev.status === 'busy') this.started.add(ev.message_id);
          if (ev.type === 'status' && ev.last_turn && ev.last_turn.message_id) this.started.add(ev.last_turn.message_id);
          if (ev.type === 'error' && ev.message_id && ev.code === 'start_failed') this.failedIds.add(ev.message_id);
          if (ev.type === 'approval_resolved' && !this.decisions.has(ev.approval_id)) this.decisions.set(ev.approval_id, ev);
        }
      } else if (!page.events.length) {
        this.firstAvail = Math.max(this.firstAvail, lo);
      }
    } catch {
      // The button stays; the reader can try again.
    } finally {
      this.loadingUp = false;
    }
    if (this.id !== id) return;
    if (this.domLo > this.lo() || !this.domLo) this.extendUp();
    else this.updateEdges();
  }

  /** Brings later events onto the page when it does not reach the end. */
  extendDown() {
    if (this.tailMode || !this.id) return;
    const from = this.domHi + 1;
    const to = Math.min(this.hi(), from + CHUNK_ROWS - 1);
    this.renderRange(from, to, 'append');
    // Taking rows off the top moves the view up; keep it where it was.
    const conv = this.els.conv;
    const before = conv.scrollHeight;
    const top = conv.scrollTop;
    this.trimTop();
    const removed = before - conv.scrollHeight;
    if (removed > 0) conv.scrollTop = Math.max(0, top - removed);
    if (this.domHi >= this.hi()) {
      this.tailMode = true;
      this.unseen = 0;
    }
    this.updateEdges();
    this.updateJump();
  }

  updateEdges() {
    const atStart = this.events.length === 0 ? this.loaded : this.domLo <= this.lo() && this.lo() <= this.firstAvail;
    this.els.historyStart.hidden = !atStart || !this.loaded;
    this.els.loadEarlier.hidden = atStart || !this.loaded;
    this.els.loadEarlier.disabled = !!this.loadingUp;
    this.els.loadEarlier.textContent = this.loadingUp ? 'Loading…' : 'Load earlier events';
    this.els.moreBelow.hidden = this.tailMode;
  }

  // ---- scrolling ----

  isAtBottom() {
    const c = this.els.conv;
    return c.scrollHeight - c.scrollTop - c.clientHeight < BOTTOM_PX;
  }

  scrollToBottom() {
    const c = this.els.conv;
    c.scrollTop = c.scrollHeight;
  }

  unfollow() {
    const c = this.els.conv;
    if (this.following && c.scrollHeight > c.clientHeight + BOTTOM_PX) {
      this.following = false;
      this.updateJump();
    }
  }

  onScroll() {
    if (!this.id) return;
    const c = this.els.conv;
    const atBottom = this.isAtBottom();
    if (atBottom && this.tailMode) {
      if (!this.following) {
        this.following = true;
        this.unseen = 0;
        this.trimTop();
      }
    } else if (!atBottom) {
      this.following = false;
    }
    if (c.scrollTop < NEAR_PX && this.loaded) {
      if (this.domLo > this.lo() || this.lo() > this.firstAvail) this.extendUp();
    }
    if (!this.tailMode && c.scrollHeight - c.scrollTop - c.clientHeight < NEAR_PX) this.extendDown();
    this.updateJump();
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => this.saveScroll(), 300);
  }

  jumpToLatest() {
    this.following = true;
    if (!this.tailMode || this.hi() - this.domHi > MAX_ROWS) this.renderTail();
    else this.catchUpRows();
    this.tailMode = true;
    this.trimTop();
    this.unseen = 0;
    this.scrollToBottom();
    this.updateEdges();
    this.updateJump();
    this.saveScroll();
  }

  updateJump() {
    const show = !!this.id && (!this.following || !this.tailMode);
    this.els.jump.hidden = !show;
    const n = this.unseen;
    this.els.jumpCount.textContent = n > 0 ? `(${n.toLocaleString()} new)` : '';
  }

  firstVisibleRowFrom(seq) {
    let el = this.rowEls.get(seq);
    while (el && el.offsetParent === null) el = el.nextElementSibling;
    return el || null;
  }

  /** The first row at or below the top of the view. */
  anchorRow() {
    const c = this.els.conv;
    const top = c.scrollTop;
    for (const el of this.els.rows.children) {
      if (el.offsetParent === null) continue;
      if (el.offsetTop + el.offsetHeight > top) return el;
    }
    return null;
  }

  saveScroll() {
    if (!this.id || !this.loaded) return;
    const state = { following: this.following && this.tailMode, at: Date.now() };
    if (!state.following) {
      const el = this.anchorRow();
      if (el) {
        state.seq = Number(el.dataset.seq);
        state.offset = el.offsetTop - this.els.conv.scrollTop;
      }
    }
    try { localStorage.setItem(scrollKey(this.id), JSON.stringify(state)); } catch { /* full or disabled */ }
  }

  // ---- sending ----

  /** Sends a message: shown at once as pending, then as sent when its event arrives. */
  send(text) {
    const id = this.id;
    const pending = { text, messageId: null, seq: null, el: null, stateEl: null };
    pending.el = h('div', { class: 'row user pending-msg' });
    pending.stateEl = userBubble(pending.el, { content: text, timestamp: new Date().toISOString() }, 'sending…');
    pending.stateEl.dataset.state = 'pending';
    this.pendings.push(pending);
    this.els.pending.appendChild(pending.el);
    if (this.following) this.scrollToBottom();
    this.sendChain = this.sendChain.then(async () => {
      if (this.id !== id) return;
      try {
        const ack = await post(`/api/workers/${enc(id)}/messages`, { content: text });
        if (this.id !== id) return;
        pending.messageId = ack.message_id || null;
        pending.seq = Number.isFinite(ack.seq) ? ack.seq : null;
        pending.stateEl.textContent = ack.state === 'queued' ? 'queued' : 'sent…';
        pending.stateEl.dataset.state = ack.state === 'queued' ? 'queued' : 'pending';
        this.settlePendingAgainstHistory(pending);
      } catch (err) {
        if (this.id !== id) return;
        this.failPending(pending, err);
      }
    });
  }

  /** The message's event may have come before the answer to its request. */
  settlePendingAgainstHistory(pending) {
    const found = this.events.some((ev) => ev.type === 'user_message'
      && ((pending.messageId && ev.message_id === pending.messageId) || (pending.seq !== null && ev.seq === pending.seq)));
    if (found) this.removePending(pending);
  }

  settlePending(ev) {
    for (const p of this.pendings) {
      if ((p.messageId && ev.message_id === p.messageId) || (p.seq !== null && ev.seq === p.seq)) {
        this.removePending(p);
        return;
      }
    }
  }

  removePending(pending) {
    pending.el.remove();
    this.pendings = this.pendings.filter((p) => p !== pending);
  }

  failPending(pending, err) {
    pending.stateEl.textContent = 'not sent';
    pending.stateEl.dataset.state = 'failed';
    const retry = h('button', { type: 'button', class: 'button small', text: 'Retry' });
    const edit = h('button', { type: 'button', class: 'button small', text: 'Edit' });
    const dismiss = h('button', { type: 'button', class: 'button small', text: 'Dismiss' });
    const box = h('div', { class: 'pending-error' }, h('span', { text: `${err.message || err} ` }), retry, ' ', edit, ' ', dismiss);
    pending.el.appendChild(box);
    retry.addEventListener('click', () => { this.removePending(pending); this.send(pending.text); });
    edit.addEventListener('click', () => { this.removePending(pending); this.hooks.editText(pending.text); });
    dismiss.addEventListener('click', () => this.removePending(pending));
  }

  // ---- answering tool approvals ----

  /**
   * Answers approval `approvalId`: over the worker's WebSocket when it is open (a refusal
   * comes back on it), else over HTTP. Everyone sees the outcome as an
   * `approval_resolved` event; a refused answer is said on its card.
   */
  async answer(approvalId, decision, message) {
    const body = { decision };
    if (message) body.message = message;
    if (this.stream && this.stream.send({ type: 'approval', approval_id: approvalId, ...body })) {
      const card = this.approvals.get(approvalId);
      if (card) this.answering.set(approvalId, card);
      return;
    }
    const id = this.id;
    try {
      await post(`/api/workers/${enc(id)}/approvals/${enc(approvalId)}`, body);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'already_decided') {
        const card = this.approvals.get(approvalId);
        if (card && this.id === id) card.refused(err.message);
        return;
      }
      throw err;
    }
  }

  /** The card a refusal on the WebSocket is about: the one its message names, or the
   * one answered last. */
  answeringCard(ev) {
    const text = String(ev.message || '');
    for (const [approvalId, card] of this.answering) {
      if (text.includes(approvalId)) return [approvalId, card];
    }
    const last = Array.from(this.answering).pop();
    return last || [null, null];
  }

  showClientError(ev) {
    if (this.answering.size && ['already_decided', 'not_found', 'forbidden', 'read_only', 'invalid_request', 'bad_message'].includes(ev.code)) {
      const [approvalId, card] = this.answeringCard(ev);
      this.answering.delete(approvalId);
      if (ev.code === 'already_decided') card.refused(ev.message);
      else card.failed(ev.message || ev.code);
      return;
    }
    const el = h('div', { class: 'row error-box' }, h('span', { class: 'code', text: ev.code || 'error' }), h('span', { text: ev.message || '' }));
    this.els.pending.appendChild(el);
    if (this.following) this.scrollToBottom();
  }

  // ---- for tests and debugging ----

  debug() {
    return {
      id: this.id,
      seqs: this.events.map((e) => e.seq),
      domSeqs: Array.from(this.els.rows.children, (el) => Number(el.dataset.seq)),
      following: this.following,
      tailMode: this.tailMode,
      stream: this.stream ? this.stream.state : null,
      lastSeq: this.hi(),
    };
  }
}
