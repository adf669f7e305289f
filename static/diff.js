// Diffs, one way for the whole page: `diffView` shows a unified diff as coloured lines
// (a long one cut, with "Show all"); `unifiedDiff` makes one from a file's old and new
// text, for agents that send the two texts rather than a diff (ACP's `diff` blocks).
// The approvals card and the tool cards both show their changes with these.

import { h } from './dom.js';

const DIFF_LINES = 40; // diff lines shown before "Show all"
const CONTEXT = 3; // unchanged lines kept around each change
const MAX_EDITS = 2000; // past this many changed lines, the middle is shown as replaced

/**
 * A unified diff as coloured lines: added, removed, context, file and hunk headers.
 * `label` names the scrollable box for assistive technology ("Change to notes.txt");
 * `cls` adds classes to it.
 */
export function diffView(text, { label = 'Change', cls = '' } = {}) {
  const lines = String(text).replace(/\n$/, '').split('\n');
  const box = h('div', { class: `diff diff-view mono ${cls}`.trim(), attrs: { role: 'region', 'aria-label': label, tabindex: '0' } });
  const fill = (all) => {
    box.textContent = '';
    for (const line of all ? lines : lines.slice(0, DIFF_LINES)) {
      let kind = 'ctx';
      if (line.startsWith('+++') || line.startsWith('---')) kind = 'hdr';
      else if (line.startsWith('@@')) kind = 'hunk';
      else if (line.startsWith('+')) kind = 'add';
      else if (line.startsWith('-')) kind = 'del';
      box.appendChild(h('span', { class: kind, text: line || ' ' }));
    }
  };
  fill(false);
  if (lines.length <= DIFF_LINES) return box;
  const wrap = h('div', { class: 'diff-wrap' }, box);
  const more = h('button', { type: 'button', class: 'link-button', text: `Show all ${lines.length} lines`, attrs: { 'aria-expanded': 'false' } });
  more.addEventListener('click', () => {
    const all = more.getAttribute('aria-expanded') !== 'true';
    fill(all);
    more.setAttribute('aria-expanded', String(all));
    more.textContent = all ? 'Show less' : `Show all ${lines.length} lines`;
  });
  wrap.appendChild(h('div', { class: 'collapse-note' }, h('span', { text: `${lines.length} lines, ${lines.length - DIFF_LINES} more` }), more));
  return wrap;
}

/** A text's lines; no last empty line for a text that ends with a newline. */
function linesOf(text) {
  if (text === null || text === undefined || text === '') return [];
  const lines = String(text).split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/**
 * The shortest edit from `a` to `b` (Myers), as [op, line] with op ' ', '-' or '+';
 * null when it takes more than MAX_EDITS changes.
 */
function shortestEdit(a, b) {
  const n = a.length;
  const m = b.length;
  const max = Math.min(n + m, MAX_EDITS);
  const off = max + 1;
  const v = new Int32Array(2 * max + 3);
  const trace = []; // trace[d]: v over k = -d..d before step d
  for (let d = 0; d <= max; d++) {
    trace.push(v.slice(off - d, off + d + 1));
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[off + k - 1] < v[off + k + 1]) ? v[off + k + 1] : v[off + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) { x++; y++; }
      v[off + k] = x;
      if (x >= n && y >= m) return backtrack(trace, a, b);
    }
  }
  return null;
}

function backtrack(trace, a, b) {
  const ops = [];
  let x = a.length;
  let y = b.length;
  for (let d = trace.length - 1; d > 0; d--) {
    const v = trace[d];
    const at = (k) => v[k + d];
    const k = x - y;
    const prevK = k === -d || (k !== d && at(k - 1) < at(k + 1)) ? k + 1 : k - 1;
    const prevX = at(prevK);
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      x--;
      y--;
      ops.push([' ', a[x]]);
    }
    if (x === prevX) ops.push(['+', b[--y]]);
    else ops.push(['-', a[--x]]);
  }
  while (x > 0 && y > 0) {
    x--;
    y--;
    ops.push([' ', a[x]]);
  }
  return ops.reverse();
}

/**
 * A unified diff of a file from `oldText` to `newText` (`oldText` null or undefined for a
 * new file): headers, then hunks with CONTEXT lines around each change. '' when nothing
 * changed.
 */
export function unifiedDiff(path, oldText, newText) {
  const a = linesOf(oldText);
  const b = linesOf(newText);
  // What both share at the start and the end is not searched.
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const midA = a.slice(head, a.length - tail);
  const midB = b.slice(head, b.length - tail);
  const middle = shortestEdit(midA, midB)
    || midA.map((l) => ['-', l]).concat(midB.map((l) => ['+', l]));
  const ops = a.slice(0, head).map((l) => [' ', l]).concat(middle, a.slice(a.length - tail).map((l) => [' ', l]));
  if (!ops.some(([op]) => op !== ' ')) return '';

  const out = [`--- ${oldText === null || oldText === undefined ? '/dev/null' : path}`, `+++ ${path}`];
  // Line numbers (1-based) of each op in the old and the new text.
  const oldNo = [];
  const newNo = [];
  let i = 1;
  let j = 1;
  for (const [op] of ops) {
    oldNo.push(i);
    newNo.push(j);
    if (op !== '+') i++;
    if (op !== '-') j++;
  }
  let at = 0;
  while (at < ops.length) {
    while (at < ops.length && ops[at][0] === ' ') at++;
    if (at >= ops.length) break;
    // A hunk: from CONTEXT lines before this change to CONTEXT lines after the last
    // change that is no more than 2 * CONTEXT unchanged lines from the one before.
    const start = Math.max(0, at - CONTEXT);
    let end = at;
    for (let k = at; k < ops.length; k++) {
      if (ops[k][0] !== ' ') end = k;
      else if (k - end > 2 * CONTEXT) break;
    }
    end = Math.min(ops.length - 1, end + CONTEXT);
    const hunk = ops.slice(start, end + 1);
    const oldLen = hunk.filter(([op]) => op !== '+').length;
    const newLen = hunk.filter(([op]) => op !== '-').length;
    // An empty side starts at the line before it (0 for an empty file).
    const oldStart = oldLen ? oldNo[start] : oldNo[start] - 1;
    const newStart = newLen ? newNo[start] : newNo[start] - 1;
    out.push(`@@ -${oldStart},${oldLen} +${newStart},${newLen} @@`);
    for (const [op, line] of hunk) out.push(`${op}${line}`);
    at = end + 1;
  }
  return out.join('\n');
}
