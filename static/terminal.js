// A terminal worker's view: xterm.js drawing the worker's `terminal` events, and what
// is typed going back as `input`. Each connection starts from the server's
// `terminal_snapshot` (the screen as it is, so a reload or a late viewer sees the same
// screen at once), then the live bytes after it. The terminal has the server's size;
// this page says what size its window fits (`resize`), which the server takes when
// this page is the one typing; when the two differ the bar says so.
//
// Per viewer: a read-only switch (watching cannot type by accident), and a row of keys
// a phone's keyboard lacks (Esc, a sticky Ctrl, Tab, arrows).

import { Terminal } from './vendor/xterm/xterm.js';
import { FitAddon } from './vendor/xterm/addon-fit.js';
import { LiveSocket, wsUrl } from './socket.js';
import { $, toast } from './dom.js';
import { post } from './api.js';
import { statusPatch } from './list.js';

const READ_ONLY_KEY = 'workerhub.terminal.readOnly';

/** The bytes of a `terminal` event or snapshot: a string, or bytes from base64. */
function payload(ev) {
  if (ev.encoding !== 'base64') return ev.data || '';
  const bin = atob(ev.data || '');
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

class TerminalSocket extends LiveSocket {
  constructor(workerId, view) {
    super((state, info) => view.hooks.onConn(state, info));
    this.workerId = workerId;
    this.view = view;
  }

  // Always from a snapshot: it draws the screen whatever was missed meanwhile.
  url() {
    return wsUrl(`/ws/${encodeURIComponent(this.workerId)}`);
  }

  ping() {
    return { type: 'ping' };
  }

  opened() {
    this.view.sendSize(true);
  }

  received(ev) {
    this.view.receive(ev);
  }

  async lost({ attempt, code }) {
    if (attempt < 2 || code === 1013) return null;
    const verdict = await this.view.hooks.probe(this.workerId);
    return verdict === 'gone' || verdict === 'unauthorized' ? verdict : null;
  }
}

export class TerminalView {
  /** @param {object} hooks onStatus(workerPatch), onConn(state, info), probe(id) */
  constructor(hooks) {
    this.hooks = hooks;
    this.id = null;
    this.term = null;
    this.fit = null;
    this.socket = null;
    this.seq = 0; // the last event drawn
    this.size = null; // the terminal's size, as the server says
    this.sent = null; // the window size last sent
    this.ctrl = false;
    this.readOnly = localStorage.getItem(READ_ONLY_KEY) === '1';
    this.observer = new ResizeObserver(() => this.fitWindow());
    this.wire();
  }

  wire() {
    const ro = $('term-readonly');
    ro.checked = this.readOnly;
    ro.addEventListener('change', () => {
      this.readOnly = ro.checked;
      try { localStorage.setItem(READ_ONLY_KEY, this.readOnly ? '1' : '0'); } catch { /* ignore */ }
      if (this.term) this.term.options.disableStdin = this.readOnly;
      this.showBar();
    });
    $('term-copy').addEventListener('click', () => this.copy());
    for (const button of $('term-keys').querySelectorAll('button[data-key]')) {
      // Keep the focus (and a phone's keyboard) in the terminal.
      button.addEventListener('mousedown', (e) => e.preventDefault());
      button.addEventListener('click', () => this.key(button.dataset.key));
    }
  }

  open(w) {
    this.close();
    this.id = w.id;
    this.seq = 0;
    this.size = w.terminal || null;
    this.sent = null;
    document.getElementById('view-worker').classList.add('is-terminal');
    const host = $('term');
    host.textContent = '';
    const term = new Terminal({
      cols: this.size ? this.size.cols : 80,
      rows: this.size ? this.size.rows : 24,
      scrollback: 5000,
      cursorBlink: true,
      disableStdin: this.readOnly,
      fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace',
      fontSize: 14,
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(host);
    term.onData((data) => this.type(data));
    // Ctrl+Shift+C copies the selection (Ctrl+C alone is the program's).
    term.attachCustomKeyEventHandler((e) => {
      if (e.type === 'keydown' && e.ctrlKey && e.shiftKey && e.code === 'KeyC') {
        this.copy();
        return false;
      }
      return true;
    });
    this.term = term;
    this.fit = fit;
    this.observer.observe(host);
    this.socket = new TerminalSocket(w.id, this);
    this.socket.start();
    this.showBar();
    term.focus();
  }

  close() {
    if (this.socket) this.socket.stop();
    this.socket = null;
    this.observer.disconnect();
    if (this.term) this.term.dispose();
    this.term = null;
    this.fit = null;
    this.id = null;
    document.getElementById('view-worker').classList.remove('is-terminal');
  }

  deleted() {
    if (this.socket) this.socket.stop();
    this.socket = null;
    if (this.term) this.term.options.disableStdin = true;
  }

  receive(ev) {
    const term = this.term;
    if (!term) return;
    if (ev.type === 'terminal_snapshot') {
      this.seq = ev.seq;
      this.size = { cols: ev.cols, rows: ev.rows };
      term.reset();
      term.resize(ev.cols, ev.rows);
      term.write(payload(ev));
      this.showBar();
      return;
    }
    if (typeof ev.seq !== 'number') {
      if (ev.type === 'error') toast(ev.message || 'The terminal refused that.');
      return;
    }
    if (ev.seq <= this.seq) return;
    this.seq = ev.seq;
    switch (ev.type) {
      case 'terminal':
        term.write(payload(ev));
        break;
      case 'terminal_resize':
        this.size = { cols: ev.cols, rows: ev.rows };
        term.resize(ev.cols, ev.rows);
        this.showBar();
        break;
      case 'status':
        this.hooks.onStatus({ id: this.id, ...statusPatch(ev) });
        break;
      default:
        break;
    }
  }

  /** What this page types (keys, pastes), with a sticky Ctrl from the key row. */
  type(data) {
    if (this.readOnly || !this.socket) return;
    if (this.ctrl && data.length === 1) {
      const code = data.toUpperCase().charCodeAt(0);
      if (code >= 64 && code <= 95) data = String.fromCharCode(code & 0x1f);
      this.setCtrl(false);
    }
    // Typing makes this window's size the terminal's: say it first.
    this.sendSize(true);
    this.socket.send({ type: 'input', data });
  }

  key(name) {
    if (!this.term) return;
    if (name === 'ctrl') {
      this.setCtrl(!this.ctrl);
      this.term.focus();
      return;
    }
    const app = this.term.modes.applicationCursorKeysMode;
    const arrows = { up: 'A', down: 'B', right: 'C', left: 'D' };
    let data;
    if (name === 'esc') data = '\x1b';
    else if (name === 'tab') data = '\t';
    else if (arrows[name]) data = (app ? '\x1bO' : '\x1b[') + arrows[name];
    if (data) this.type(data);
    this.term.focus();
  }

  setCtrl(on) {
    this.ctrl = on;
    const b = $('term-keys').querySelector('button[data-key="ctrl"]');
    if (b) b.setAttribute('aria-pressed', on ? 'true' : 'false');
  }

  async copy() {
    const text = this.term ? this.term.getSelection() : '';
    if (!text) {
      toast('Select some text in the terminal first.');
      return;
    }
    try {
      await navigator.clipboard.writeText(text);
      toast('Copied.');
    } catch {
      toast('The browser did not allow copying.');
    }
  }

  /** The window's size in cells, as the fit add-on measures it. */
  windowSize() {
    if (!this.fit) return null;
    const dims = this.fit.proposeDimensions();
    if (!dims || !Number.isFinite(dims.cols) || !Number.isFinite(dims.rows)) return null;
    return { cols: Math.max(2, Math.min(1000, dims.cols)), rows: Math.max(1, Math.min(500, dims.rows)) };
  }

  fitWindow() {
    this.sendSize(false);
    this.showBar();
  }

  /** Tells the server this window's size when it changed (or `always`). */
  sendSize(always) {
    const size = this.windowSize();
    if (!size || !this.socket || this.readOnly) return;
    if (!always && this.sent && this.sent.cols === size.cols && this.sent.rows === size.rows) return;
    if (this.socket.send({ type: 'resize', cols: size.cols, rows: size.rows })) this.sent = size;
  }

  showBar() {
    const note = $('term-size');
    const win = this.windowSize();
    const size = this.size;
    if (!size) {
      note.textContent = '';
      return;
    }
    let text = `${size.cols}×${size.rows}`;
    if (win && (win.cols !== size.cols || win.rows !== size.rows)) {
      const bigger = size.cols > win.cols || size.rows > win.rows;
      text += bigger
        ? ` · larger than this window (${win.cols}×${win.rows}): another viewer typed last`
        : ` · smaller than this window (${win.cols}×${win.rows}): another viewer typed last`;
      if (this.readOnly) text += '; read-only pages do not size it';
    }
    note.textContent = text;
    note.dataset.differs = win && (win.cols !== size.cols || win.rows !== size.rows) ? 'true' : 'false';
  }

  debug() {
    return { id: this.id, seq: this.seq, size: this.size, window: this.windowSize(), readOnly: this.readOnly, text: this.text() };
  }

  /** The screen's text, row by row (for tests and debugging). */
  text() {
    if (!this.term) return '';
    const buf = this.term.buffer.active;
    const lines = [];
    for (let y = 0; y < this.term.rows; y++) {
      const line = buf.getLine(buf.viewportY + y);
      lines.push(line ? line.translateToString(true) : '');
    }
    return lines.join('\n');
  }
}

/**
 * The `shell` shortcut: a terminal worker running the user's $SHELL (else bash) in the
 * folder of worker `w`; `open(id)` shows it.
 */
export async function openShell(w, open) {
  if (!w) return;
  const base = String(w.name || 'worker').replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  try {
    const created = await post('/api/workers', {
      name: `${base || 'worker'}-shell`.slice(0, 60),
      command: ['sh', '-c', 'exec "${SHELL:-/bin/bash}"'],
      terminal: true,
      project_path: w.project_path,
    });
    open(created.id);
  } catch (err) {
    toast(`Shell: ${err.message}`);
  }
}
