// A small, safe Markdown renderer for assistant text: paragraphs, headings, lists,
// block quotes, tables, rules, fenced code blocks (monospace, with a copy button) and
// inline code, emphasis and links. It builds DOM nodes; text is only ever set as text.

import { h, copyButton } from './dom.js';

const FENCE_RE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING_RE = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const HR_RE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE_RE = /^ {0,3}> ?(.*)$/;
const LIST_RE = /^( *)([-*+]|\d{1,9}[.)])( +|$)(.*)$/;
const TABLE_SEP_RE = /^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$/;

/** Renders Markdown `text` into a new `div.md`. */
export function renderMarkdown(text) {
  const root = h('div', { class: 'md' });
  renderBlocks(root, String(text).replace(/\r\n?/g, '\n').split('\n'));
  return root;
}

function isBlank(line) {
  return /^\s*$/.test(line);
}

function indentOf(line) {
  const m = /^ */.exec(line.replace(/\t/g, '    '));
  return m[0].length;
}

function startsBlock(line) {
  return FENCE_RE.test(line) || HEADING_RE.test(line) || HR_RE.test(line) || QUOTE_RE.test(line) || LIST_RE.test(line);
}

/** Whether `line` ends a paragraph: an ordered list must start at 1 to do so ("2024. was…"). */
function interruptsParagraph(line) {
  const m = LIST_RE.exec(line);
  if (m && /\d/.test(m[2]) && parseInt(m[2], 10) !== 1) return FENCE_RE.test(line) || HEADING_RE.test(line) || HR_RE.test(line) || QUOTE_RE.test(line);
  return startsBlock(line);
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const cells = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && s[i + 1] === '|') { cur += '|'; i++; } else if (s[i] === '|') { cells.push(cur.trim()); cur = ''; } else cur += s[i];
  }
  cells.push(cur.trim());
  return cells;
}

function renderBlocks(parent, lines) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) { i++; continue; }

    const fence = FENCE_RE.exec(line);
    if (fence) {
      const marker = fence[1];
      const lang = fence[2] || '';
      const body = [];
      i++;
      while (i < lines.length) {
        const close = lines[i].trim();
        if (close.startsWith(marker[0].repeat(marker.length)) && /^(`+|~+)$/.test(close)) { i++; break; }
        body.push(lines[i]);
        i++;
      }
      parent.appendChild(codeBlock(body.join('\n'), lang));
      continue;
    }

    const heading = HEADING_RE.exec(line);
    if (heading) {
      const el = h(`h${heading[1].length}`);
      inline(el, heading[2]);
      parent.appendChild(el);
      i++;
      continue;
    }

    if (HR_RE.test(line)) {
      parent.appendChild(h('hr'));
      i++;
      continue;
    }

    if (QUOTE_RE.test(line)) {
      const inner = [];
      while (i < lines.length && !isBlank(lines[i])) {
        const q = QUOTE_RE.exec(lines[i]);
        inner.push(q ? q[1] : lines[i]);
        i++;
      }
      const quote = h('blockquote');
      renderBlocks(quote, inner);
      parent.appendChild(quote);
      continue;
    }

    const item = LIST_RE.exec(line);
    if (item) {
      i = renderList(parent, lines, i);
      continue;
    }

    if (line.includes('|') && i + 1 < lines.length && TABLE_SEP_RE.test(lines[i + 1]) && lines[i + 1].includes('-')) {
      const head = splitRow(line);
      const aligns = splitRow(lines[i + 1]).map((c) => (c.startsWith(':') && c.endsWith(':') ? 'center' : c.endsWith(':') ? 'right' : ''));
      i += 2;
      const table = h('table');
      const thead = h('thead');
      const tr = h('tr');
      head.forEach((cell, k) => {
        const th = h('th');
        if (aligns[k]) th.style.textAlign = aligns[k];
        inline(th, cell);
        tr.appendChild(th);
      });
      thead.appendChild(tr);
      table.appendChild(thead);
      const tbody = h('tbody');
      while (i < lines.length && !isBlank(lines[i]) && lines[i].includes('|')) {
        const row = h('tr');
        splitRow(lines[i]).forEach((cell, k) => {
          const td = h('td');
          if (aligns[k]) td.style.textAlign = aligns[k];
          inline(td, cell);
          row.appendChild(td);
        });
        tbody.appendChild(row);
        i++;
      }
      table.appendChild(tbody);
      parent.appendChild(h('div', { class: 'table-wrap', tabIndex: 0, attrs: { role: 'region', 'aria-label': 'table' } }, table));
      continue;
    }

    // A paragraph: lines up to a blank line or the start of another block.
    const para = [line];
    i++;
    while (i < lines.length && !isBlank(lines[i]) && !interruptsParagraph(lines[i])) {
      para.push(lines[i]);
      i++;
    }
    const p = h('p');
    para.forEach((l, k) => {
      if (k > 0) p.appendChild(h('br'));
      inline(p, l.trim());
    });
    parent.appendChild(p);
  }
}

/** Renders the list starting at `lines[start]`; returns the index after it. */
function renderList(parent, lines, start) {
  const first = LIST_RE.exec(lines[start]);
  const baseIndent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const list = h(ordered ? 'ol' : 'ul');
  if (ordered) {
    const n = parseInt(first[2], 10);
    if (n !== 1) list.start = n;
  }
  let i = start;
  let tight = true;
  const items = [];
  while (i < lines.length) {
    const m = LIST_RE.exec(lines[i]);
    if (!m || m[1].length !== baseIndent || /\d/.test(m[2]) !== ordered) break;
    const contentIndent = baseIndent + m[2].length + Math.max(1, m[3].length);
    const body = [m[4]];
    i++;
    while (i < lines.length) {
      const l = lines[i];
      if (isBlank(l)) {
        // A blank line continues the item only if indented content follows.
        let j = i + 1;
        while (j < lines.length && isBlank(lines[j])) j++;
        if (j < lines.length && indentOf(lines[j]) >= contentIndent) {
          tight = false;
          for (; i < j; i++) body.push('');
          continue;
        }
        break;
      }
      const ind = indentOf(l);
      const sub = LIST_RE.exec(l);
      if (sub && sub[1].length <= baseIndent) break;
      if (ind >= contentIndent || sub) {
        body.push(l.replace(/\t/g, '    ').slice(Math.min(ind, contentIndent)));
      } else if (!startsBlock(l)) {
        body.push(l.trim()); // a lazy continuation of the item's paragraph
      } else {
        break;
      }
      i++;
    }
    items.push(body);
    // A blank line between items makes the list loose.
    if (i < lines.length && isBlank(lines[i])) {
      let j = i;
      while (j < lines.length && isBlank(lines[j])) j++;
      const next = j < lines.length ? LIST_RE.exec(lines[j]) : null;
      if (next && next[1].length === baseIndent && /\d/.test(next[2]) === ordered) {
        tight = false;
        i = j;
      }
    }
  }
  for (const body of items) {
    const li = h('li');
    renderBlocks(li, body);
    if (tight && li.firstChild && li.firstChild.tagName === 'P') {
      // Tight lists keep their text without paragraph margins.
      const p = li.firstChild;
      while (p.firstChild) li.insertBefore(p.firstChild, p);
      p.remove();
    }
    list.appendChild(li);
  }
  parent.appendChild(list);
  return i;
}

/** A fenced code block: monospace, the language if given, and a copy button. */
function codeBlock(code, lang) {
  const codeEl = h('code', { text: code });
  if (lang) codeEl.dataset.lang = lang;
  return h('div', { class: 'codeblock' },
    h('div', { class: 'codeblock-head' },
      h('span', { text: lang || 'code' }),
      copyButton(() => code)),
    h('pre', { tabIndex: 0, attrs: { 'aria-label': `${lang || 'code'} block` } }, codeEl));
}

// Inline spans: code, strong, emphasis, strike-through, links and bare URLs.
const INLINE_RE = new RegExp([
  '(`+)([^`]|[^`][\\s\\S]*?[^`])\\1(?!`)', // 1,2 code
  '\\*\\*(?=\\S)([\\s\\S]*?\\S)\\*\\*', // 3 strong
  '__(?=\\S)([\\s\\S]*?\\S)__(?![A-Za-z0-9])', // 4 strong
  '~~(?=\\S)([\\s\\S]*?\\S)~~', // 5 strike
  '\\*(?=[^\\s*])([\\s\\S]*?[^\\s*])\\*', // 6 emphasis
  '(?<![A-Za-z0-9_])_(?=[^\\s_])([\\s\\S]*?[^\\s_])_(?![A-Za-z0-9_])', // 7 emphasis
  '\\[([^\\]\\n]+)\\]\\(\\s*<?([^\\s()<>]+(?:\\([^\\s()<>]*\\))?)>?(?:\\s+"[^"\\n]*")?\\s*\\)', // 8,9 link
  '(https?:\\/\\/[^\\s<>"\'`]*[^\\s<>"\'`.,;:!?)\\]])', // 10 bare URL
].join('|'), 'g');

function safeHref(url) {
  try {
    const u = new URL(url, window.location.href);
    if (u.protocol === 'http:' || u.protocol === 'https:' || u.protocol === 'mailto:') return u.href;
  } catch { /* not a URL */ }
  return null;
}

function link(text, url) {
  const href = safeHref(url);
  if (!href) return null;
  return h('a', { href, attrs: { target: '_blank', rel: 'noopener noreferrer nofollow' } });
}

/** Appends inline Markdown `text` to `parent` as DOM nodes. */
function inline(parent, text, depth = 0) {
  if (depth > 8) {
    parent.appendChild(document.createTextNode(text));
    return;
  }
  const re = new RegExp(INLINE_RE.source, 'g');
  let last = 0;
  let m;
  while ((m = re.exec(text)) !== null) {
    if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
    last = re.lastIndex;
    if (m[1] !== undefined) {
      let code = m[2];
      if (/^ .* $/.test(code) && code.trim()) code = code.slice(1, -1);
      parent.appendChild(h('code', { text: code }));
    } else if (m[3] !== undefined || m[4] !== undefined) {
      const el = h('strong');
      inline(el, m[3] !== undefined ? m[3] : m[4], depth + 1);
      parent.appendChild(el);
    } else if (m[5] !== undefined) {
      const el = h('del');
      inline(el, m[5], depth + 1);
      parent.appendChild(el);
    } else if (m[6] !== undefined || m[7] !== undefined) {
      const el = h('em');
      inline(el, m[6] !== undefined ? m[6] : m[7], depth + 1);
      parent.appendChild(el);
    } else if (m[8] !== undefined) {
      const a = link(m[8], m[9]);
      if (a) {
        inline(a, m[8], depth + 1);
        parent.appendChild(a);
      } else {
        parent.appendChild(document.createTextNode(m[0]));
      }
    } else if (m[10] !== undefined) {
      const a = link(m[10], m[10]);
      if (a) {
        a.textContent = m[10];
        parent.appendChild(a);
      } else {
        parent.appendChild(document.createTextNode(m[0]));
      }
    }
  }
  if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
}
