// The Changes view of a worker in a git worktree of its own: its changed files and
// their diff against the worktree's base (GET /api/workers/{id}/diff), side by side on
// wide screens and unified on phones, long files paged rather than drawn at once. The
// server publishes a `diff` event after every turn; the open view fetches the diff again
// then, so it follows the agent without a reload. Commit, merge and discard are here
// too (POST /api/workers/{id}/commit, /merge, /discard).

import { $, h, toast } from './dom.js';
import { ApiError, get, post, enc } from './api.js';

const PAGE_LINES = 300; // diff lines drawn per file before "Show more"
const OPEN_FILES = 20; // files drawn open at first; the others wait for a click
const WIDE = '(min-width: 900px)';

const STATUS_LETTER = { new: 'A', modified: 'M', deleted: 'D', renamed: 'R', binary: 'B' };

/** A `diff` event's totals in words: "3 files changed, +10 −2". */
export function describeDiff(ev) {
  const files = Array.isArray(ev.files) ? ev.files.length : 0;
  return files === 0 ? 'no changes' : `${files} file${files === 1 ? '' : 's'} changed, +${ev.added || 0} −${ev.removed || 0}`;
}

/** The unified diff split into one piece a file: { path, lines }. */
export function splitFiles(text) {
  const files = [];
  let current = null;
  for (const line of String(text || '').split('\n')) {
    if (line.startsWith('diff --git ')) {
      current = { header: line, lines: [] };
      files.push(current);
    } else if (current) {
      current.lines.push(line);
    }
  }
  for (const file of files) {
    if (file.lines.length && file.lines[file.lines.length - 1] === '') file.lines.pop();
    const plus = file.lines.find((l) => l.startsWith('+++ '));
    const minus = file.lines.find((l) => l.startsWith('--- '));
    const rename = file.lines.find((l) => l.startsWith('rename to '));
    file.path = rename ? rename.slice(10)
      : plus && plus !== '+++ /dev/null' ? plus.slice(6)
        : minus ? minus.slice(6) : file.header.replace(/^diff --git a\/(.*) b\/.*$/, '$1');
  }
  return files;
}

/** Rows of a side-by-side view: [oldNo, oldText, oldKind, newNo, newText, newKind]. */
function sideBySide(lines) {
  const rows = [];
  let oldNo = 0;
  let newNo = 0;
  let dels = [];
  let adds = [];
  const flush = () => {
    for (let i = 0; i < Math.max(dels.length, adds.length); i++) {
      const d = dels[i];
      const a = adds[i];
      rows.push([d ? d[0] : '', d ? d[1] : '', d ? 'del' : 'none', a ? a[0] : '', a ? a[1] : '', a ? 'add' : 'none']);
    }
    dels = [];
    adds = [];
  };
  for (const line of lines) {
    const hunk = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
    if (hunk) {
      flush();
      oldNo = Number(hunk[1]);
      newNo = Number(hunk[2]);
      rows.push(['', line, 'hunk', '', '', 'hunk']);
    } else if (line.startsWith('-') && !line.startsWith('--- ')) {
      dels.push([oldNo++, line.slice(1)]);
    } else if (line.startsWith('+') && !line.startsWith('+++ ')) {
      adds.push([newNo++, line.slice(1)]);
    } else if (line.startsWith(' ')) {
      flush();
      rows.push([oldNo++, line.slice(1), 'ctx', newNo++, line.slice(1), 'ctx']);
    } else if (line.startsWith('\\')) {
      flush();
    } else if (!line.startsWith('--- ') && !line.startsWith('+++ ') && !line.startsWith('index ')) {
      flush();
      rows.push(['', line, 'meta', '', '', 'meta']);
    }
  }
  flush();
  return rows;
}

function lineKind(line) {
  if (line.startsWith('+++') || line.startsWith('---')) return 'hdr';
  if (line.startsWith('@@')) return 'hunk';
  if (line.startsWith('+')) return 'add';
  if (line.startsWith('-')) return 'del';
  return 'ctx';
}

export class Changes {
  constructor() {
    this.toggle = $('changes-toggle');
    this.panel = $('changes');
    // The composer stays: the agent can be driven while its changes are watched.
    this.hideWhenOpen = [$('conv-wrap'), $('queue')].filter(Boolean);
    this.worker = null;
    this.open = false;
    this.timer = null;
    this.loading = false;
    this.again = false;
    this.wide = window.matchMedia(WIDE);
    this.wide.addEventListener('change', () => { if (this.open && this.data) this.draw(this.data); });
    this.toggle.addEventListener('click', () => this.show(!this.open));
  }

  /** The open worker changed (or its view): the toggle shows for worktree workers. */
  render(w) {
    const same = this.worker && this.worker.id === w.id;
    this.worker = w;
    const isolated = Boolean(w.worktree);
    this.toggle.hidden = !isolated;
    if (!same) {
      this.data = null;
      this.count(null);
      if (this.open) this.show(isolated);
    } else if (!isolated && this.open) {
      this.show(false);
    }
  }

  count(summary) {
    const n = summary && Array.isArray(summary.files) ? summary.files.length : null;
    this.toggle.textContent = this.open ? 'Conversation' : n === null ? 'Changes' : `Changes (${n})`;
  }

  show(open) {
    this.open = open;
    this.panel.hidden = !open;
    for (const el of this.hideWhenOpen) el.classList.toggle('changes-hidden', open);
    this.toggle.setAttribute('aria-pressed', String(open));
    this.count(this.data);
    if (open) this.refresh();
  }

  /** A `diff` event of the open worker: fetched again when shown (once for a burst). */
  onDiff(ev) {
    this.lastEvent = ev;
    if (!this.open) {
      this.count(ev);
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), 150);
  }

  async refresh() {
    if (!this.worker || !this.worker.worktree) return;
    if (this.loading) {
      this.again = true;
      return;
    }
    this.loading = true;
    const id = this.worker.id;
    try {
      const data = await get(`/api/workers/${enc(id)}/diff`);
      if (this.worker && this.worker.id === id && this.open) {
        this.data = data;
        this.draw(data);
        this.count(data);
      }
    } catch (err) {
      if (this.open) this.drawError(err);
    } finally {
      this.loading = false;
      if (this.again) {
        this.again = false;
        this.refresh();
      }
    }
  }

  drawError(err) {
    this.panel.textContent = '';
    this.panel.appendChild(h('p', { class: 'form-error', attrs: { role: 'alert' }, text: `The changes could not be read: ${err.message}` }));
  }

  draw(data) {
    const wt = this.worker.worktree;
    const files = Array.isArray(data.files) ? data.files : [];
    this.panel.textContent = '';
    const head = h('div', { class: 'changes-head' },
      h('div', { class: 'changes-title' },
        h('strong', { text: files.length ? `${files.length} file${files.length === 1 ? '' : 's'} changed` : 'No changes' }),
        h('span', { class: 'muted small', text: ` +${data.added || 0} −${data.removed || 0} on ${wt.branch} since ${String(data.base_commit || '').slice(0, 8)}` })),
      h('div', { class: 'changes-actions', attrs: { role: 'group', 'aria-label': 'Changes actions' } },
        this.button('Refresh', 'changes-refresh', () => this.refresh()),
        this.button('Commit', 'changes-commit', () => this.act('commit', {}, 'Committed on the worker\'s branch.')),
        this.button(`Merge into ${wt.base_branch || '…'}`, 'changes-merge', () => this.act('merge', { strategy: 'squash' }, 'Merged.')),
        this.button('Discard', 'changes-discard', () => {
          if (window.confirm('Throw away every change of this worktree?')) this.act('discard', {}, 'Discarded.');
        }, 'danger')));
    this.panel.appendChild(head);
    if (!files.length) return;
    const body = h('div', { class: 'changes-body' });
    const list = h('ul', { class: 'changes-files', attrs: { 'aria-label': 'Changed files' } });
    const pieces = new Map(splitFiles(data.diff).map((f) => [f.path, f]));
    const sections = h('div', { class: 'changes-diffs' });
    files.forEach((file, i) => {
      const section = this.fileSection(file, pieces.get(file.path), i < OPEN_FILES);
      sections.appendChild(section);
      list.appendChild(h('li', null, h('button', {
        type: 'button',
        class: `changes-file status-${file.status}`,
        on: { click: () => { section.open = true; section.scrollIntoView({ block: 'start' }); } },
      },
      h('span', { class: 'changes-letter mono', text: STATUS_LETTER[file.status] || '?', title: file.status }),
      h('span', { class: 'changes-path mono', text: file.old_path ? `${file.old_path} → ${file.path}` : file.path }),
      h('span', { class: 'changes-counts small', text: file.binary ? 'binary' : `+${file.added} −${file.removed}` }))));
    });
    body.appendChild(list);
    body.appendChild(sections);
    if (data.truncated) body.appendChild(h('p', { class: 'muted small', text: 'The diff is too long to show whole; the rest is in the worktree.' }));
    this.panel.appendChild(body);
  }

  button(text, id, fn, cls = '') {
    return h('button', { type: 'button', id, class: `button small ${cls}`.trim(), text, on: { click: fn } });
  }

  async act(what, body, done) {
    try {
      await post(`/api/workers/${enc(this.worker.id)}/${what}`, body);
      toast(done);
    } catch (err) {
      const paths = err instanceof ApiError && err.paths && err.paths.length ? ` (${err.paths.join(', ')})` : '';
      toast(`${err.message}${paths}`);
    }
    this.refresh();
  }

  /** One file: a <details> with its diff, drawn a page at a time. */
  fileSection(file, piece, open) {
    const section = h('details', { class: 'changes-file-diff', dataset: { path: file.path } });
    section.appendChild(h('summary', { class: 'mono small' },
      h('span', { class: `changes-letter status-${file.status}`, text: STATUS_LETTER[file.status] || '?' }),
      ` ${file.path}`));
    let drawn = false;
    const draw = () => {
      if (drawn) return;
      drawn = true;
      if (file.binary || !piece) {
        section.appendChild(h('p', { class: 'muted small', text: file.binary ? 'Binary file: no lines to show.' : 'No text changes.' }));
        return;
      }
      if (this.wide.matches) this.drawSplit(section, piece.lines);
      else this.drawUnified(section, piece.lines);
    };
    section.addEventListener('toggle', () => { if (section.open) draw(); });
    if (open) {
      section.open = true;
      draw();
    }
    return section;
  }

  drawUnified(section, lines) {
    const box = h('div', { class: 'diff diff-view mono changes-unified', attrs: { role: 'region', 'aria-label': 'Diff', tabindex: '0' } });
    section.appendChild(box);
    this.paged(section, lines.length, (from, to) => {
      for (const line of lines.slice(from, to)) box.appendChild(h('span', { class: lineKind(line), text: line || ' ' }));
    });
  }

  drawSplit(section, lines) {
    const rows = sideBySide(lines);
    const table = h('table', { class: 'diff-split mono' });
    const tbody = h('tbody');
    table.appendChild(tbody);
    section.appendChild(h('div', { class: 'diff-split-wrap', attrs: { role: 'region', 'aria-label': 'Diff side by side', tabindex: '0' } }, table));
    this.paged(section, rows.length, (from, to) => {
      for (const [on, ot, ok, nn, nt, nk] of rows.slice(from, to)) {
        if (ok === 'hunk' || ok === 'meta') {
          tbody.appendChild(h('tr', { class: ok }, h('td', { attrs: { colspan: '4' }, text: ot })));
          continue;
        }
        tbody.appendChild(h('tr', null,
          h('td', { class: 'num', text: String(on) }), h('td', { class: ok, text: ot }),
          h('td', { class: 'num', text: String(nn) }), h('td', { class: nk, text: nt })));
      }
    });
  }

  /** Draws `total` rows a page at a time, with a "Show more" button while some wait. */
  paged(section, total, drawRange) {
    let shown = Math.min(total, PAGE_LINES);
    drawRange(0, shown);
    if (shown >= total) return;
    const more = h('button', { type: 'button', class: 'link-button changes-more' });
    const label = () => { more.textContent = `Show ${Math.min(PAGE_LINES, total - shown)} more lines (${total - shown} left)`; };
    label();
    more.addEventListener('click', () => {
      const next = Math.min(total, shown + PAGE_LINES);
      drawRange(shown, next);
      shown = next;
      if (shown >= total) more.remove();
      else label();
    });
    section.appendChild(more);
  }
}
