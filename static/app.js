// workerhub's page, in one file (one request: the page loads fast, and plain HTTP/1.1
// servers see few connections). Sections: DOM helpers, the API, ANSI, Markdown, event
// rendering, the live stream, the conversation, the create form, tasks, the app.

'use strict';

(() => {
// ======================================================================
// dom.js
// ======================================================================

// Small DOM helpers. Everything that comes from a worker, a child process or another
// client goes into the page as text nodes (textContent), never as HTML.

/**
 * Creates an element. `props`: `class`, `text`, `title`, `hidden`, `dataset` (object),
 * `on` (object of event listeners), `attrs` (object of attributes); anything else is
 * set as a property. Children are nodes or strings (added as text).
 */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      switch (key) {
        case 'class': el.className = value; break;
        case 'text': el.textContent = value; break;
        case 'dataset': Object.assign(el.dataset, value); break;
        case 'on':
          for (const [name, fn] of Object.entries(value)) el.addEventListener(name, fn);
          break;
        case 'attrs':
          for (const [name, v] of Object.entries(value)) {
            if (v !== undefined && v !== null && v !== false) el.setAttribute(name, v === true ? '' : String(v));
          }
          break;
        default: el[key] = value;
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

const $ = (id) => document.getElementById(id);

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

/** A number of bytes for people: 1.2 MB. */
function bytes(n) {
  if (!Number.isFinite(n)) return '';
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  do { v /= 1024; i++; } while (v >= 1024 && i < units.length - 1);
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** A duration in milliseconds for people: 850 ms, 2.4 s, 3 min 5 s, 2 h 4 min. */
function duration(ms) {
  if (!Number.isFinite(ms)) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs} h ${m - hrs * 60} min`;
  return `${Math.floor(hrs / 24)} d ${hrs % 24} h`;
}

/** "14:03:22" for an RFC 3339 timestamp (local time), or '' if it does not parse. */
function clock(ts) {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** Copies text to the clipboard; falls back to a hidden textarea where the async API is missing. */
async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch { /* fall through */ }
  const area = h('textarea', { value: text, readOnly: true, class: 'visually-hidden' });
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch { ok = false; }
  area.remove();
  return ok;
}

/** A "Copy" button that copies `getText()` and says so. */
function copyButton(getText, label = 'Copy') {
  const button = h('button', { type: 'button', class: 'button small copy', text: label, title: 'Copy to the clipboard' });
  button.addEventListener('click', async () => {
    const ok = await copyText(getText());
    button.textContent = ok ? 'Copied' : 'Copy failed';
    setTimeout(() => { button.textContent = label; }, 1500);
  });
  return button;
}

/**
 * Splits a command line into arguments the way a shell would split words (spaces,
 * 'single' and "double" quotes, backslash escapes), without any expansion.
 */
function splitArgs(line) {
  const args = [];
  let cur = '';
  let has = false;
  let quote = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote === "'") {
      if (c === "'") quote = null; else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) cur += line[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c; has = true;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i]; has = true;
    } else if (/\s/.test(c)) {
      if (has || cur) { args.push(cur); cur = ''; has = false; }
    } else {
      cur += c;
    }
  }
  if (quote) throw new Error(`unclosed ${quote === '"' ? 'double' : 'single'} quote`);
  if (has || cur) args.push(cur);
  return args;
}

// ======================================================================
// api.js
// ======================================================================

// The REST API. Errors come back as `{"error":{"code","message"}}`; a 401 means the
// server wants its token, which the page asks for (and never keeps itself: the server
// sets a cookie).

class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

let onUnauthorized = () => {};

/** Called on every 401 answer. */
function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

async function api(method, path, body, { timeoutMs = 20000 } = {}) {
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  init.signal = controller.signal;
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    clearTimeout(timer);
    const why = err && err.name === 'AbortError' ? 'the server did not answer in time' : 'cannot reach the server';
    throw new ApiError(0, 'network', why);
  }
  let text;
  try {
    text = await resp.text();
  } catch {
    clearTimeout(timer);
    throw new ApiError(0, 'network', 'the answer was cut off');
  }
  clearTimeout(timer);
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    if (resp.status === 401) onUnauthorized();
    throw new ApiError(resp.status, err.code || `http_${resp.status}`, err.message || `${resp.status} ${resp.statusText}`);
  }
  return data;
}

const get = (path, opts) => api('GET', path, undefined, opts);
const post = (path, body, opts) => api('POST', path, body === undefined ? {} : body, opts);
const del = (path, opts) => api('DELETE', path, undefined, opts);

const enc = encodeURIComponent;

// ======================================================================
// ansi.js
// ======================================================================

// ANSI escape sequences in program output: SGR colours and styles become spans with
// classes (256 and 24-bit colours set element.style from here, which the page's CSP
// allows); every other escape or control sequence is dropped, never shown.

// eslint-disable-next-line no-control-regex
const ESC_RE = /\x1b(?:\[([0-?]*)([ -/]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[@-Z\\-_]|[ -/]+[0-~])|\x9b[0-?]*[ -/]*[@-~]/g;
// C0 controls other than tab and newline, DEL, and lone C1 controls.
// eslint-disable-next-line no-control-regex
const CTRL_RE = /[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]/g;

const PALETTE_6 = [0, 95, 135, 175, 215, 255];

function color256(n) {
  if (n < 16) return { cls: n };
  if (n < 232) {
    const i = n - 16;
    const r = PALETTE_6[Math.floor(i / 36)];
    const g = PALETTE_6[Math.floor(i / 6) % 6];
    const b = PALETTE_6[i % 6];
    return { rgb: `rgb(${r},${g},${b})` };
  }
  const v = 8 + (n - 232) * 10;
  return { rgb: `rgb(${v},${v},${v})` };
}

function freshStyle() {
  return { bold: false, dim: false, italic: false, underline: false, strike: false, inverse: false, fg: null, bg: null };
}

function applySgr(style, params) {
  const codes = params === '' ? [0] : params.split(/[;:]/).map((p) => (p === '' ? 0 : Number(p)));
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c === 0) Object.assign(style, freshStyle());
    else if (c === 1) style.bold = true;
    else if (c === 2) style.dim = true;
    else if (c === 3) style.italic = true;
    else if (c === 4) style.underline = true;
    else if (c === 7) style.inverse = true;
    else if (c === 9) style.strike = true;
    else if (c === 22) { style.bold = false; style.dim = false; }
    else if (c === 23) style.italic = false;
    else if (c === 24) style.underline = false;
    else if (c === 27) style.inverse = false;
    else if (c === 29) style.strike = false;
    else if (c >= 30 && c <= 37) style.fg = { cls: c - 30 };
    else if (c === 39) style.fg = null;
    else if (c >= 40 && c <= 47) style.bg = { cls: c - 40 };
    else if (c === 49) style.bg = null;
    else if (c >= 90 && c <= 97) style.fg = { cls: c - 90 + 8 };
    else if (c >= 100 && c <= 107) style.bg = { cls: c - 100 + 8 };
    else if (c === 38 || c === 48) {
      let col = null;
      if (codes[i + 1] === 5 && i + 2 < codes.length) {
        col = color256(codes[i + 2] & 255);
        i += 2;
      } else if (codes[i + 1] === 2 && i + 4 < codes.length) {
        col = { rgb: `rgb(${codes[i + 2] & 255},${codes[i + 3] & 255},${codes[i + 4] & 255})` };
        i += 4;
      } else {
        i = codes.length;
      }
      if (c === 38) style.fg = col; else style.bg = col;
    }
  }
}

function isPlain(style) {
  return !style.bold && !style.dim && !style.italic && !style.underline && !style.strike && !style.inverse && !style.fg && !style.bg;
}

function span(text, style) {
  const el = document.createElement('span');
  el.textContent = text;
  const classes = [];
  if (style.bold) classes.push('ansi-bold');
  if (style.dim) classes.push('ansi-dim');
  if (style.italic) classes.push('ansi-italic');
  if (style.underline) classes.push('ansi-underline');
  if (style.strike) classes.push('ansi-strike');
  let fg = style.fg;
  let bg = style.bg;
  if (style.inverse) {
    fg = bg || { cls: 0 };
    bg = style.fg || { cls: 7 };
  }
  if (fg) {
    if (fg.rgb) el.style.color = fg.rgb; else classes.push(`ansi-fg-${fg.cls}`);
  }
  if (bg) {
    if (bg.rgb) el.style.backgroundColor = bg.rgb; else classes.push(`ansi-bg-${bg.cls}`);
  }
  if (classes.length) el.className = classes.join(' ');
  return el;
}

/** Quick test: does the text hold anything that needs work? */
// eslint-disable-next-line no-control-regex
const NEEDS_WORK = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/;

/**
 * Appends `text` to `parent` with its ANSI styles as spans. A carriage return inside a
 * line keeps what was written after it (a progress bar's last state). Returns the
 * visible text.
 */
function appendAnsi(parent, text) {
  if (!NEEDS_WORK.test(text)) {
    parent.appendChild(document.createTextNode(text));
    return text;
  }
  // Within each line, a bare \r starts the line again: keep the last rewrite.
  const lines = text.split('\n').map((line) => {
    const trimmed = line.endsWith('\r') ? line.slice(0, -1) : line;
    const cut = trimmed.lastIndexOf('\r');
    return cut >= 0 ? trimmed.slice(cut + 1) : trimmed;
  });
  const source = lines.join('\n');
  const style = freshStyle();
  let visible = '';
  let last = 0;
  const flush = (chunk) => {
    const clean = chunk.replace(CTRL_RE, '');
    if (!clean) return;
    visible += clean;
    if (isPlain(style)) parent.appendChild(document.createTextNode(clean));
    else parent.appendChild(span(clean, style));
  };
  ESC_RE.lastIndex = 0;
  let m;
  while ((m = ESC_RE.exec(source)) !== null) {
    flush(source.slice(last, m.index));
    last = ESC_RE.lastIndex;
    if (m[3] === 'm' && m[2] === '') applySgr(style, m[1] || '');
  }
  flush(source.slice(last));
  return visible;
}

/** The text without any escape or control sequence. */
function stripAnsi(text) {
  if (!NEEDS_WORK.test(text)) return text;
  return text.replace(ESC_RE, '').replace(CTRL_RE, '');
}

// ======================================================================
// markdown.js
// ======================================================================

// A small, safe Markdown renderer for assistant text: paragraphs, headings, lists,
// block quotes, tables, rules, fenced code blocks (monospace, with a copy button) and
// inline code, emphasis and links. It builds DOM nodes; text is only ever set as text.


const FENCE_RE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING_RE = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const HR_RE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE_RE = /^ {0,3}> ?(.*)$/;
const LIST_RE = /^( *)([-*+]|\d{1,9}[.)])( +|$)(.*)$/;
const TABLE_SEP_RE = /^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$/;

/** Renders Markdown `text` into a new `div.md`. */
function renderMarkdown(text) {
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

// ======================================================================
// render.js
// ======================================================================

// One event, one row. Every row carries its event's seq (data-seq), so the page can
// always say which events it shows. Tool results are shown inside their tool call's
// card; their own row then stays as an empty placeholder.


const LONG_LINE = 4000;
const COLLAPSE_LINES = 12;
const COLLAPSE_CHARS = 3000;

function row(ev, cls) {
  const el = h('div', { class: `row ${cls}` });
  el.dataset.seq = String(ev.seq);
  el.dataset.type = ev.type || '';
  el.__ev = ev;
  return el;
}

function who(label, ev, ...extra) {
  return h('div', { class: 'who' }, h('span', { text: label }), h('span', { class: 'stamp', text: clock(ev.timestamp), title: ev.timestamp || '' }), ...extra);
}

function compactJson(value, max = 160) {
  let s;
  try { s = JSON.stringify(value); } catch { s = String(value); }
  if (s === undefined) s = String(value);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

function prettyJson(value) {
  try { return JSON.stringify(value, null, 2); } catch { return String(value); }
}

/**
 * Fills `box` with `text`, showing only its first lines when it is long, with a
 * button to show all of it. `ansi` renders escape sequences as colours.
 */
function collapsible(box, text, { ansi = true, lines = COLLAPSE_LINES, chars = COLLAPSE_CHARS } = {}) {
  const all = String(text);
  const allLines = all.split('\n');
  const long = allLines.length > lines || all.length > chars;
  const pre = h('pre', { class: box.dataset.preClass || '' });
  const fill = (full) => {
    pre.textContent = '';
    let shown = all;
    if (!full && long) {
      shown = allLines.slice(0, lines).join('\n');
      if (shown.length > chars) shown = shown.slice(0, chars);
    }
    if (ansi) appendAnsi(pre, shown); else pre.textContent = shown;
  };
  fill(false);
  box.appendChild(pre);
  if (long) {
    const note = h('span', { text: `${allLines.length} lines, ${all.length.toLocaleString()} characters` });
    const button = h('button', { type: 'button', class: 'link-button', text: 'Show all' });
    let full = false;
    button.addEventListener('click', () => {
      full = !full;
      fill(full);
      button.textContent = full ? 'Show less' : 'Show all';
      button.setAttribute('aria-expanded', String(full));
    });
    button.setAttribute('aria-expanded', 'false');
    box.appendChild(h('div', { class: 'collapse-note' }, note, button));
  }
  return pre;
}

// ---- tool calls ----

function commandText(command) {
  if (Array.isArray(command)) {
    return command.map((a) => (/^[\w@%+=:,./-]+$/.test(String(a)) ? String(a) : `'${String(a).replace(/'/g, "'\\''")}'`)).join(' ');
  }
  return String(command);
}

function pathOf(input) {
  return input.file_path || input.filePath || input.path || input.notebook_path || input.absolute_path || null;
}

function diffBox(oldText, newText) {
  const box = h('div', { class: 'diff mono' });
  const add = (cls, prefix, text) => {
    for (const line of String(text).split('\n')) box.appendChild(h('span', { class: cls, text: `${prefix} ${line}` }));
  };
  if (oldText !== undefined && oldText !== null && oldText !== '') add('del', '-', oldText);
  if (newText !== undefined && newText !== null) add('add', '+', newText);
  return box;
}

/** The one-line summary of a tool call's input, and the body that shows it. */
function describeInput(name, input) {
  if (input === null || input === undefined) return { summary: '', body: null };
  if (typeof input !== 'object') return { summary: String(input), body: h('pre', { class: 'json', text: String(input) }) };
  const body = h('div', { class: 'tool-input' });
  const path = pathOf(input);
  if (input.command !== undefined && input.command !== null) {
    const cmd = commandText(input.command);
    body.appendChild(h('pre', { class: 'cmd', text: cmd }));
    if (input.description) body.appendChild(h('div', { class: 'tool-desc', text: String(input.description) }));
    return { summary: cmd.split('\n')[0], body };
  }
  const oldText = input.old_string ?? input.oldString;
  const newText = input.new_string ?? input.newString;
  if (path && (oldText !== undefined || newText !== undefined)) {
    body.appendChild(h('div', { class: 'edit-path', text: path }));
    body.appendChild(diffBox(oldText, newText));
    return { summary: path, body };
  }
  if (path && Array.isArray(input.edits)) {
    body.appendChild(h('div', { class: 'edit-path', text: `${path} (${input.edits.length} edits)` }));
    for (const edit of input.edits) body.appendChild(diffBox(edit.old_string ?? edit.oldString, edit.new_string ?? edit.newString));
    return { summary: path, body };
  }
  if (path && typeof input.content === 'string') {
    body.appendChild(h('div', { class: 'edit-path', text: `${path} (new content)` }));
    const box = h('div', { class: 'diff mono' });
    const lines = input.content.split('\n');
    const shown = lines.length > 40 ? lines.slice(0, 40) : lines;
    for (const line of shown) box.appendChild(h('span', { class: 'add', text: `+ ${line}` }));
    if (lines.length > shown.length) box.appendChild(h('span', { class: 'ctx', text: `… ${lines.length - shown.length} more lines` }));
    body.appendChild(box);
    return { summary: path, body };
  }
  if (Array.isArray(input.changes)) {
    const list = h('ul', { class: 'mono' });
    for (const change of input.changes) {
      list.appendChild(h('li', { text: `${change.kind || change.type || 'change'} ${change.path || ''}` }));
    }
    body.appendChild(list);
    return { summary: input.changes.map((c) => c.path).filter(Boolean).join(', '), body };
  }
  if (path) {
    const keys = Object.keys(input).filter((k) => pathOf({ [k]: input[k] }) === null);
    if (keys.length) body.appendChild(h('pre', { class: 'json', text: prettyJson(Object.fromEntries(keys.map((k) => [k, input[k]]))) }));
    return { summary: path, body: keys.length ? body : null };
  }
  const key = ['pattern', 'query', 'url', 'prompt', 'description'].find((k) => typeof input[k] === 'string');
  const box = h('div');
  collapsible(box, prettyJson(input), { ansi: false });
  box.firstChild.classList.add('json');
  body.appendChild(box);
  return { summary: key ? input[key] : compactJson(input, 120), body };
}

/** A tool call's card. `setResult` puts its result in. */
function toolCard(ev) {
  const c = ev.content || {};
  const name = c.name || 'tool';
  const { summary, body } = describeInput(name, c.input);
  const state = h('span', { class: 'tool-state', text: 'running…' });
  state.dataset.state = 'running';
  const card = h('details', { class: 'card tool', open: true });
  card.appendChild(h('summary', null,
    h('span', { class: 'tool-name', text: name }),
    h('span', { class: 'tool-summary', text: summary, title: summary }),
    state));
  const inner = h('div', { class: 'card-body' });
  if (body) inner.appendChild(body);
  const resultBox = h('div', { class: 'tool-result' });
  inner.appendChild(resultBox);
  card.appendChild(inner);
  card.dataset.toolId = c.id || '';
  return {
    el: card,
    id: c.id,
    hasResult: false,
    setResult(resultEv) {
      const rc = resultEv.content || {};
      this.hasResult = true;
      resultBox.textContent = '';
      resultBox.dataset.seq = String(resultEv.seq);
      const isError = !!rc.is_error;
      card.classList.toggle('error', isError);
      state.dataset.state = isError ? 'error' : 'ok';
      const exit = rc.exit_code !== undefined && rc.exit_code !== null ? ` · exit ${rc.exit_code}` : '';
      state.textContent = (isError ? 'error' : 'done') + exit;
      const text = typeof rc.content === 'string' ? rc.content : prettyJson(rc.content);
      resultBox.appendChild(h('div', { class: 'section-label', text: isError ? 'Error' : 'Output' }));
      if (!text) {
        resultBox.appendChild(h('div', { class: 'muted small', text: '(no output)' }));
      } else {
        const box = h('div');
        box.dataset.preClass = isError ? 'tool-output error' : 'tool-output';
        collapsible(box, text);
        resultBox.appendChild(box);
      }
    },
  };
}

/** A tool result whose call is not on the page (not loaded, or from another turn). */
function standaloneResult(ev, el) {
  const c = ev.content || {};
  const isError = !!c.is_error;
  const text = typeof c.content === 'string' ? c.content : prettyJson(c.content);
  const card = h('div', { class: `card tool${isError ? ' error' : ''}` });
  const head = h('div', { class: 'card-head' },
    h('span', { class: 'tool-name', text: isError ? 'Tool error' : 'Tool result' }),
    h('span', { class: 'tool-summary muted', text: c.tool_use_id ? ` for ${c.tool_use_id}` : '' }));
  head.classList.add('summary-like');
  card.appendChild(head);
  const body = h('div', { class: 'card-body' });
  const box = h('div');
  box.dataset.preClass = isError ? 'tool-output error' : 'tool-output';
  collapsible(box, text || '(no output)');
  body.appendChild(box);
  card.appendChild(body);
  el.appendChild(card);
}

/** Re-renders a merged tool result row on its own (its card left the page). */
function unmergeResult(el) {
  el.classList.remove('merged');
  el.textContent = '';
  standaloneResult(el.__ev, el);
}

// ---- the turn's result ----

function num(n) {
  return Number(n).toLocaleString();
}

function usageText(usage) {
  if (!usage || typeof usage !== 'object') return [];
  const parts = [];
  const input = usage.input_tokens ?? usage.input ?? usage.prompt_tokens;
  const output = usage.output_tokens ?? usage.candidates_tokens ?? usage.completion_tokens;
  if (Number.isFinite(input)) parts.push(`${num(input)} in`);
  if (Number.isFinite(output)) parts.push(`${num(output)} out`);
  const cached = (usage.cache_read_input_tokens ?? 0) + (usage.cached_input_tokens ?? 0) + (usage.cached ?? 0);
  if (cached > 0) parts.push(`${num(cached)} cached`);
  if (!parts.length && Number.isFinite(usage.total_tokens)) parts.push(`${num(usage.total_tokens)} tokens`);
  return parts.length ? [`tokens: ${parts.join(' · ')}`] : [];
}

function cost(usd) {
  if (!Number.isFinite(usd)) return null;
  if (usd === 0) return '$0';
  return usd < 1 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
}

function resultRow(ev) {
  const c = ev.content || {};
  const el = row(ev, `result${c.is_error ? ' error' : ''}`);
  const parts = [];
  parts.push(h('span', { class: 'outcome', text: c.is_error ? `✗ Failed${c.subtype && c.subtype !== 'success' ? ` (${c.subtype})` : ''}` : '✓ Done' }));
  if (Number.isFinite(c.duration_ms)) parts.push(h('span', { class: 'r-duration', text: duration(c.duration_ms) }));
  const dollars = cost(c.cost_usd);
  if (dollars) parts.push(h('span', { class: 'r-cost', text: dollars }));
  for (const t of usageText(c.usage)) parts.push(h('span', { class: 'r-tokens', text: t }));
  if (Number.isFinite(c.num_turns)) parts.push(h('span', { class: 'r-turns', text: `${c.num_turns} turn${c.num_turns === 1 ? '' : 's'}` }));
  parts.push(h('span', { class: 'stamp muted', text: clock(ev.timestamp) }));
  for (const p of parts) el.appendChild(p);
  const errorText = c.error || (c.is_error ? c.result : null);
  if (errorText) el.appendChild(h('div', { class: 'result-text', text: typeof errorText === 'string' ? errorText : compactJson(errorText, 2000) }));
  return el;
}

// ---- everything else ----

function outputLine(ev) {
  const c = ev.content || {};
  const el = row(ev, `out${c.stream === 'stderr' ? ' stderr' : ''}`);
  const text = typeof c.text === 'string' ? c.text : compactJson(c);
  if (text.length > LONG_LINE) {
    const shown = h('span');
    appendAnsi(shown, text.slice(0, LONG_LINE));
    el.appendChild(shown);
    const more = h('button', { type: 'button', class: 'link-button small', text: ` … show the whole line (${num(text.length)} characters)` });
    more.addEventListener('click', () => {
      shown.textContent = '';
      appendAnsi(shown, text);
      more.remove();
    });
    el.appendChild(more);
  } else {
    appendAnsi(el, text);
  }
  return el;
}

function thinkingRow(ev) {
  const c = ev.content || {};
  const text = String(c.text ?? '');
  const el = row(ev, 'thinking-row');
  const first = stripAnsi(text).replace(/\s+/g, ' ').trim();
  const details = h('details', { class: 'thinking' },
    h('summary', null, h('span', { text: 'Thinking' }), h('span', { class: 'muted', text: first ? ` — ${first.length > 90 ? `${first.slice(0, 90)}…` : first}` : '' })),
    h('div', { class: 'body', text }));
  el.appendChild(details);
  return el;
}

function assistantRow(ev) {
  const c = ev.content || {};
  const text = String(c.text ?? '');
  const el = row(ev, 'assistant');
  el.appendChild(who('Assistant', ev, copyButton(() => text)));
  el.appendChild(renderMarkdown(text));
  return el;
}

function systemRow(ev) {
  const c = ev.content || {};
  if (c.subtype === 'init') {
    const el = row(ev, 'notice system-init');
    const bits = ['Session started'];
    if (c.model) bits.push(String(c.model));
    if (Array.isArray(c.tools)) bits.push(`${c.tools.length} tools`);
    if (c.permission_mode) bits.push(`permissions: ${c.permission_mode}`);
    if (c.cwd) bits.push(String(c.cwd));
    el.appendChild(h('span', { text: bits.join(' · ') }));
    if (c.session_id) el.title = `session ${c.session_id}`;
    return el;
  }
  const el = row(ev, 'quiet system');
  const rest = { ...c };
  delete rest.raw;
  delete rest.kind;
  const label = c.subtype ? `system · ${c.subtype}` : 'system';
  delete rest.subtype;
  el.appendChild(h('span', { class: 'mono', text: `${label} ${Object.keys(rest).length ? compactJson(rest, 240) : ''}` }));
  if (c.subtype === 'error' || c.severity === 'error') {
    el.classList.remove('quiet');
    el.classList.add('error-box');
  }
  return el;
}

function logRow(ev) {
  const c = ev.content || {};
  const el = row(ev, `log${c.stream === 'stderr' ? ' stderr' : ''}`);
  const text = String(c.text ?? '');
  if (text.length > LONG_LINE) {
    const box = h('div');
    collapsible(box, text, { lines: 4, chars: LONG_LINE });
    el.appendChild(box);
  } else {
    appendAnsi(el, text);
  }
  return el;
}

function signalText(ev) {
  if (ev.signal_name) return ev.signal_name;
  if (ev.signal !== undefined && ev.signal !== null) return `signal ${ev.signal}`;
  return null;
}

function statusRow(ev, ctx) {
  const status = ev.status;
  const time = clock(ev.timestamp);
  let text = null;
  let cls = 'quiet';
  if (status === 'exited') {
    const sig = signalText(ev);
    text = ev.exit_code !== undefined && ev.exit_code !== null ? `Process exited with code ${ev.exit_code}` : sig ? `Process ended by ${sig}` : 'Process exited';
    cls = ev.exit_code === 0 ? 'notice' : 'notice warn';
  } else if (status === 'error') {
    text = `Error${ev.error ? `: ${typeof ev.error === 'string' ? ev.error : compactJson(ev.error)}` : ''}`;
    cls = 'notice bad';
  } else if (status === 'interrupted') {
    text = 'Interrupted (the server stopped while it ran)';
    cls = 'notice warn';
  } else if (status === 'running') {
    text = `Process started${ev.pid ? ` (pid ${ev.pid})` : ''}`;
    cls = ctx.hasTurns ? 'quiet' : 'notice';
  } else if (status === 'starting') {
    text = 'Starting…';
  } else if (status === 'busy') {
    text = `Working${ev.pid ? ` (pid ${ev.pid})` : ''}…`;
  } else if (status === 'idle') {
    const turn = ev.last_turn;
    if (turn) {
      const took = Number.isFinite(turn.duration_ms) ? ` after ${duration(turn.duration_ms)}` : '';
      text = `Turn ${turn.outcome || 'ended'}${took}`;
      if (turn.outcome && turn.outcome !== 'completed') cls = turn.outcome === 'failed' || turn.outcome === 'timeout' ? 'notice bad' : 'notice warn';
    } else if (ev.exit_code !== undefined || ev.signal !== undefined) {
      const sig = signalText(ev);
      text = `Session ended${ev.exit_code !== undefined && ev.exit_code !== null ? ` with code ${ev.exit_code}` : sig ? ` by ${sig}` : ''}`;
      cls = 'notice';
    } else {
      text = 'Idle';
    }
  } else {
    text = `Status: ${status}`;
  }
  if (Array.isArray(ev.queue) && ev.queue.length && cls === 'quiet') text += ` · ${ev.queue.length} queued`;
  const el = row(ev, `status ${cls}`);
  el.appendChild(h('span', { text }));
  el.appendChild(h('span', { class: 'stamp muted', text: time }));
  return el;
}

function errorRow(ev) {
  const el = row(ev, 'error-box');
  el.appendChild(h('span', { class: 'code', text: ev.code || 'error' }));
  el.appendChild(h('span', { text: ev.message || compactJson(ev) }));
  return el;
}

/** The text and state label of a user's message bubble. */
function userBubble(el, ev, label) {
  const stateEl = h('span', { class: 'state', text: label });
  stateEl.dataset.state = label.split(' ')[0];
  const source = ev.source === 'transcript' ? 'User (transcript)' : 'You';
  el.appendChild(who(source, ev, stateEl));
  el.appendChild(h('div', { class: 'body', text: String(ev.content ?? '') }));
  return stateEl;
}

/**
 * The row for one event. `ctx`: `hasTurns`, `cards` (tool id → card on the page),
 * `resultRows` (tool id → result row), `messageLabel(ev)`, `bubbles` (message id →
 * state element).
 */
function renderEvent(ev, ctx) {
  switch (ev.type) {
    case 'output': {
      const c = ev.content || {};
      switch (c.kind) {
        case undefined: return outputLine(ev);
        case 'text': return assistantRow(ev);
        case 'thinking': return thinkingRow(ev);
        case 'tool_use': {
          const el = row(ev, 'tool-row');
          const card = toolCard(ev);
          el.appendChild(card.el);
          el.__card = card;
          if (c.id) {
            ctx.cards.set(c.id, card);
            // Its result may already be on the page on its own (rendered before the call).
            const result = ctx.resultRows.get(c.id);
            if (result) {
              card.setResult(result.__ev);
              result.classList.add('merged');
              result.textContent = '';
            }
          }
          return el;
        }
        case 'tool_result': {
          const el = row(ev, 'tool-result-row');
          const card = c.tool_use_id ? ctx.cards.get(c.tool_use_id) : null;
          if (c.tool_use_id) ctx.resultRows.set(c.tool_use_id, el);
          if (card) {
            card.setResult(ev);
            el.classList.add('merged');
          } else {
            standaloneResult(ev, el);
          }
          return el;
        }
        case 'result': return resultRow(ev);
        case 'system': return systemRow(ev);
        case 'log': return logRow(ev);
        default: {
          const el = row(ev, 'quiet');
          el.appendChild(h('span', { class: 'mono', text: `${c.kind}: ${compactJson(c, 300)}` }));
          return el;
        }
      }
    }
    case 'user_message': {
      const el = row(ev, 'user');
      const stateEl = userBubble(el, ev, ctx.messageLabel(ev));
      if (ev.message_id) ctx.bubbles.set(ev.message_id, stateEl);
      return el;
    }
    case 'status': return statusRow(ev, ctx);
    case 'error': return errorRow(ev);
    default: {
      const el = row(ev, 'quiet');
      el.appendChild(h('span', { class: 'mono', text: `${ev.type}: ${compactJson(ev, 300)}` }));
      return el;
    }
  }
}

// ======================================================================
// stream.js
// ======================================================================

// One worker's live events over `/ws/{id}?since=N`. Keeps the last seq it handed on,
// drops anything at or below it (so a replay after a reconnect never shows a line
// twice), and reconnects by itself with back-off, asking for what came after that seq
// (so nothing is missed). Close 1013 (too slow) and 1001 (server going away) are
// reconnected the same way.

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
const PING_EVERY_MS = 25000;
const PONG_WITHIN_MS = 10000;
const STABLE_AFTER_MS = 3000;

class WorkerStream {
  /**
   * @param {string} workerId
   * @param {number} since the last seq the page already has
   * @param {object} handlers onEvent(event), onClientError(msg), onState(state, info),
   *   probe() -> Promise<'ok'|'gone'|'unauthorized'|'unreachable'>
   */
  constructor(workerId, since, handlers) {
    this.workerId = workerId;
    this.lastSeq = since;
    this.h = handlers;
    this.ws = null;
    this.stopped = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.stableTimer = null;
    this.retryAt = 0;
    this.state = 'idle';
    this.onOnline = () => this.retryNow();
    window.addEventListener('online', this.onOnline);
  }

  setState(state, info = {}) {
    this.state = state;
    this.h.onState(state, info);
  }

  url() {
    const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${window.location.host}/ws/${encodeURIComponent(this.workerId)}?since=${this.lastSeq}`;
  }

  start() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting', { attempt: this.attempt, connecting: true });
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (err) {
      this.scheduleRetry(null);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.setState('live', { since: this.lastSeq });
      this.stableTimer = setTimeout(() => { this.attempt = 0; }, STABLE_AFTER_MS);
      this.schedulePing();
    };
    ws.onmessage = (msg) => {
      if (ws !== this.ws) return;
      this.schedulePing();
      let event;
      try {
        event = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (typeof event.seq !== 'number') {
        if (event.type === 'pong') return;
        this.h.onClientError(event);
        return;
      }
      if (event.seq <= this.lastSeq) return; // already have it
      this.lastSeq = event.seq;
      this.h.onEvent(event);
    };
    ws.onclose = (close) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.clearTimers();
      if (this.stopped) return;
      this.scheduleRetry(close);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  clearTimers() {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    clearTimeout(this.stableTimer);
    this.pingTimer = this.pongTimer = this.stableTimer = null;
  }

  /** An application ping after a quiet spell; no answer means the connection is dead. */
  schedulePing() {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pongTimer = null;
    this.pingTimer = setTimeout(() => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      try { ws.send(JSON.stringify({ type: 'ping' })); } catch { /* closing */ }
      this.pongTimer = setTimeout(() => {
        if (ws === this.ws) {
          // Silent for too long: treat as gone and reconnect.
          this.ws = null;
          try { ws.close(4000, 'no pong'); } catch { /* already closed */ }
          this.clearTimers();
          this.scheduleRetry({ code: 4000, reason: 'no answer to ping' });
        }
      }, PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  async scheduleRetry(close) {
    if (this.stopped) return;
    const code = close ? close.code : 0;
    let delay;
    if (code === 1013) {
      delay = 250; // too slow: catch up at once from where we are
    } else {
      delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
      delay = Math.round(delay * (0.8 + Math.random() * 0.4));
    }
    this.attempt++;
    const info = { code, reason: close ? close.reason : '', attempt: this.attempt, delay };
    // After a couple of failures, ask over HTTP why: the worker may be gone, or the
    // server may want its token.
    if (this.attempt >= 2 && code !== 1013 && this.h.probe) {
      const verdict = await this.h.probe();
      if (this.stopped) return;
      if (verdict === 'gone') {
        this.setState('gone', info);
        return;
      }
      if (verdict === 'unauthorized') {
        this.setState('unauthorized', info);
        return;
      }
      info.serverReachable = verdict === 'ok';
    }
    this.retryAt = Date.now() + delay;
    this.setState('reconnecting', info);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.start(), delay);
  }

  /** Reconnects now instead of waiting for the back-off. */
  retryNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.start();
  }

  /** Whether a message can go out now. */
  isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.clearTimers();
    window.removeEventListener('online', this.onOnline);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try { ws.close(1000, 'bye'); } catch { /* already closed */ }
    }
  }
}

// ======================================================================
// conversation.js
// ======================================================================

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

function loadScroll(id) {
  try {
    const v = JSON.parse(localStorage.getItem(scrollKey(id)) || 'null');
    return v && typeof v === 'object' ? v : null;
  } catch { return null; }
}

class Conversation {
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
    this.bubbles = new Map();
    this.bubbleEvents = new Map();
    this.started = new Set();
    this.failedIds = new Set();
    this.queue = new Map();
    this.queueSeq = 0;
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
    } catch { /* the list poll will tell */ }
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
      if (ev.message_id && ev.status === 'busy') this.started.add(ev.message_id);
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
    }
  }

  applyStatus(ev) {
    const patch = { status: ev.status };
    if (Array.isArray(ev.queue)) patch.queue = ev.queue;
    if ('pid' in ev) patch.pid = ev.pid;
    if ('exit_code' in ev) patch.exit_code = ev.exit_code;
    if ('signal' in ev) patch.signal = ev.signal;
    if (ev.status === 'busy' && ev.message_id) patch.turn = { message_id: ev.message_id, started_at: ev.timestamp };
    if (ev.status === 'idle') patch.turn = null;
    if (!('pid' in ev) && ['idle', 'exited', 'interrupted', 'error'].includes(ev.status)) patch.pid = null;
    patch.last_seq = ev.seq;
    Object.assign(this.worker, patch);
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
    };
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
    this.bubbles.clear();
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
    if (ev && ev.type === 'user_message' && ev.message_id) this.bubbles.delete(ev.message_id);
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

  showClientError(ev) {
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

// ======================================================================
// create.js
// ======================================================================

// The "New worker" form: the kinds come from GET /api/ai-clis (a kind that cannot run
// here is shown disabled, with the reason), and each kind shows the options it has.


const LAST_KEY = 'workerhub.lastCreate';

const PERMISSIONS = {
  claude: ['default', 'acceptEdits', 'bypassPermissions', 'plan'],
  codex: ['read-only', 'workspace-write', 'danger-full-access'],
};

const LABELS = {
  claude: 'Claude Code',
  codex: 'Codex',
  gemini: 'Gemini CLI',
  opencode: 'OpenCode',
  command: 'Command (any program)',
};

class CreateForm {
  constructor({ onCreated }) {
    this.onCreated = onCreated;
    this.dialog = $('create-dialog');
    this.kinds = [];
    this.form = $('create-form');
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    $('cw-cancel').addEventListener('click', () => this.dialog.close());
    $('cw-kind').addEventListener('change', () => this.showFields());
  }

  async open() {
    this.error(null);
    const select = $('cw-kind');
    if (!this.dialog.open) this.dialog.showModal();
    let last = {};
    try { last = JSON.parse(localStorage.getItem(LAST_KEY) || '{}') || {}; } catch { last = {}; }
    if (!$('cw-path').value && last.project_path) $('cw-path').value = last.project_path;
    select.disabled = true;
    try {
      const data = await get('/api/ai-clis');
      this.kinds = data.ai_clis || [];
    } catch (err) {
      this.error(`Could not list the kinds: ${err.message}`);
      if (!this.kinds.length) this.kinds = [{ name: 'command', usable: true, available: true, enabled: true }];
    }
    select.disabled = false;
    const previous = select.value || last.ai_cli_type;
    clear(select);
    // AI CLIs first, then command, then anything else.
    const order = (k) => (k.name === 'command' ? 1 : LABELS[k.name] ? 0 : 2);
    const kinds = this.kinds.slice().sort((a, b) => order(a) - order(b) || a.name.localeCompare(b.name));
    for (const k of kinds) {
      let text = LABELS[k.name] ? `${LABELS[k.name]} (${k.name})` : k.name;
      if (k.version) text += ` — ${k.version}`;
      if (!k.usable) text += ` — unavailable: ${k.reason || 'not installed'}`;
      const opt = h('option', { value: k.name, text, disabled: !k.usable });
      select.appendChild(opt);
    }
    const usable = kinds.filter((k) => k.usable);
    const pick = usable.find((k) => k.name === previous) || usable[0];
    if (pick) select.value = pick.name;
    this.showFields();
    (pick ? $('cw-name') : select).focus();
  }

  kind() {
    return this.kinds.find((k) => k.name === $('cw-kind').value) || { name: $('cw-kind').value };
  }

  showFields() {
    const k = this.kind();
    const name = k.name;
    const isCommand = name === 'command';
    for (const field of this.form.querySelectorAll('[data-for]')) {
      const want = field.dataset.for;
      let show;
      if (want === 'command') show = isCommand;
      else if (want === 'ai' || want === 'ai-args') show = !isCommand;
      else if (want === 'claude') show = name === 'claude';
      else if (want === 'permission') show = !!PERMISSIONS[name];
      else show = true;
      field.hidden = !show;
    }
    const list = $('cw-permission-list');
    clear(list);
    for (const p of PERMISSIONS[name] || []) list.appendChild(h('option', { value: p }));
    $('cw-model').placeholder = k.default_model ? `default: ${k.default_model}` : "the CLI's default";
    const note = $('cw-kind-note');
    const bits = [];
    if (k.binary) bits.push(k.binary);
    if (!k.usable && k.reason) bits.push(k.reason);
    note.textContent = bits.join(' — ');
    $('cw-command').required = isCommand;
  }

  error(text) {
    const el = $('cw-error');
    el.hidden = !text;
    el.textContent = text || '';
  }

  /** The request body, or throws with a message naming the field. */
  body() {
    const k = this.kind();
    const body = { ai_cli_type: k.name };
    const name = $('cw-name').value.trim();
    if (name) body.name = name;
    const path = $('cw-path').value.trim();
    if (!path) throw new Error('Project folder is required: the folder the worker runs in.');
    body.project_path = path;
    if (k.name === 'command') {
      let argv;
      try { argv = splitArgs($('cw-command').value); } catch (err) { throw new Error(`Command: ${err.message}`); }
      if (!argv.length) throw new Error('Command is required for a command worker.');
      body.command = argv;
    } else {
      const model = $('cw-model').value.trim();
      if (model) body.model = model;
      let extra;
      try { extra = splitArgs($('cw-args').value); } catch (err) { throw new Error(`Extra arguments: ${err.message}`); }
      if (extra.length) body.extra_args = extra;
    }
    if (PERMISSIONS[k.name]) {
      const perm = $('cw-permission').value.trim();
      if (perm) body.permission_mode = perm;
    }
    if (k.name === 'claude') {
      const mode = $('cw-mode').value;
      if (mode) body.mode = mode;
      const tools = $('cw-tools').value.split(/[\s,]+/).map((t) => t.trim()).filter(Boolean);
      if (tools.length) body.allowed_tools = tools;
      const session = $('cw-session').value.trim();
      if (session) body.session_id = session;
    }
    const env = {};
    const lines = $('cw-env').value.split('\n');
    lines.forEach((line, i) => {
      const t = line.trim();
      if (!t || t.startsWith('#')) return;
      const eq = t.indexOf('=');
      if (eq <= 0) throw new Error(`Environment line ${i + 1} is not NAME=value.`);
      env[t.slice(0, eq).trim()] = t.slice(eq + 1);
    });
    if (Object.keys(env).length) body.env = env;
    return body;
  }

  async submit() {
    this.error(null);
    let body;
    try {
      body = this.body();
    } catch (err) {
      this.error(err.message);
      return;
    }
    const button = $('cw-submit');
    button.disabled = true;
    button.textContent = 'Creating…';
    try {
      const worker = await post('/api/workers', body);
      try { localStorage.setItem(LAST_KEY, JSON.stringify({ ai_cli_type: body.ai_cli_type, project_path: body.project_path })); } catch { /* ignore */ }
      this.dialog.close();
      for (const id of ['cw-name', 'cw-command', 'cw-model', 'cw-tools', 'cw-session', 'cw-args', 'cw-env', 'cw-permission']) $(id).value = '';
      $('cw-mode').value = '';
      this.onCreated(worker);
    } catch (err) {
      this.error(err.message);
    } finally {
      button.disabled = false;
      button.textContent = 'Create';
    }
  }
}

// ======================================================================
// tasks.js
// ======================================================================

// The tasks panel: instructions given to a worker (or to any idle worker of a kind, or
// a new one), once or on a schedule. GET/POST /api/tasks, POST /api/tasks/{id}/run|cancel.

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

class Tasks {
  constructor({ toast, openWorker }) {
    this.toast = toast;
    this.openWorker = openWorker;
    this.visible = false;
    this.timer = null;
    this.workers = [];
    this.optionsKey = '';
    this.kindsLoaded = false;
    this.available = true;
    $('task-filter').addEventListener('change', () => this.load());
    $('task-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.create();
    });
    $('task-worker').addEventListener('change', () => this.showTarget());
  }

  /** The workers a task can go to: AI workers that take messages. */
  setWorkers(workers) {
    this.workers = workers;
    const usable = workers.filter((w) => w.has_turns && w.takes_messages !== false);
    const key = usable.map((w) => `${w.id}:${w.name}`).join('|');
    if (key === this.optionsKey) return;
    this.optionsKey = key;
    const select = $('task-worker');
    const current = select.value;
    clear(select);
    select.appendChild(h('option', { value: '', text: 'Any idle worker of a kind (or a new one)' }));
    for (const w of usable) select.appendChild(h('option', { value: w.id, text: `${w.name || w.id} (${w.ai_cli_type})` }));
    select.value = usable.some((w) => w.id === current) ? current : '';
    this.showTarget();
  }

  showTarget() {
    const any = !$('task-worker').value;
    $('task-kind-field').hidden = !any;
    $('task-path-field').hidden = !any;
  }

  async loadKinds() {
    if (this.kindsLoaded) return;
    try {
      const data = await get('/api/ai-clis');
      const select = $('task-kind');
      clear(select);
      for (const k of data.ai_clis || []) {
        if (k.name === 'command') continue;
        select.appendChild(h('option', { value: k.name, text: k.usable ? k.name : `${k.name} — unavailable`, disabled: !k.usable }));
      }
      const first = (data.ai_clis || []).find((k) => k.usable && k.name !== 'command');
      if (first) select.value = first.name;
      this.kindsLoaded = true;
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

// ======================================================================
// app.js
// ======================================================================

// workerhub's page: the worker list, the selected worker's conversation, the create
// form, tasks and the status footer. Plain modules, no framework, no build step.


const LIST_EVERY_MS = 3000;
const STATUS_EVERY_MS = 10000;
const SELECTED_KEY = 'workerhub.selected';
const QUIET_KEY = 'workerhub.showQuiet';
const draftKey = (id) => `workerhub.draft.${id}`;

const state = {
  workers: [],
  byId: new Map(),
  selected: null, // worker id
  route: { view: 'workers', id: null },
  listOk: true,
  conn: { state: 'connecting', info: {} },
  authShown: false,
};

// ---- the connection indicator ----

let countdownTimer = null;

function renderConn() {
  const el = $('conn');
  const text = $('conn-text');
  const retry = $('conn-retry');
  clearInterval(countdownTimer);
  countdownTimer = null;
  let s;
  let label;
  let showRetry = false;
  if (state.route.view === 'worker' && state.selected) {
    const { state: st, info } = state.conn;
    switch (st) {
      case 'live':
        s = 'live';
        label = 'Live';
        break;
      case 'connecting':
        s = 'connecting';
        label = 'Connecting…';
        break;
      case 'reconnecting': {
        s = 'reconnecting';
        showRetry = true;
        const why = info.code === 1001 ? 'Server went away' : info.code === 1013 ? 'Too slow, catching up' : 'Disconnected';
        if (info.connecting) {
          label = `${why} — reconnecting…`;
        } else {
          const tick = () => {
            const left = Math.max(0, Math.ceil(((info.retryAt || 0) - Date.now()) / 1000));
            text.textContent = `${why} — reconnecting in ${left} s`;
          };
          label = null;
          tick();
          countdownTimer = setInterval(tick, 500);
        }
        break;
      }
      case 'gone':
        s = 'offline';
        label = 'This worker no longer exists';
        break;
      case 'unauthorized':
        s = 'offline';
        label = 'Sign-in needed';
        break;
      default:
        s = 'connecting';
        label = st;
    }
  } else if (state.authShown) {
    s = 'offline';
    label = 'Sign-in needed';
  } else {
    s = state.listOk ? 'live' : 'reconnecting';
    label = state.listOk ? 'Connected' : 'Server unreachable — retrying';
  }
  el.dataset.state = s;
  if (label !== null) text.textContent = label;
  retry.hidden = !showRetry;
  renderBanner();
}

/** Under the worker's header: what a lost connection means for what is shown. */
function renderBanner() {
  const banner = $('conn-banner');
  const badgeEl = $('w-badge');
  const inWorker = state.route.view === 'worker' && state.selected;
  const st = state.conn.state;
  let text = null;
  if (inWorker && st === 'reconnecting') {
    const seq = conversation.hi();
    text = `Connection lost: what is shown may be out of date. The page reconnects by itself and catches up from event ${seq}; nothing is lost.`;
  } else if (inWorker && st === 'gone') {
    text = 'This worker no longer exists on the server.';
  } else if (inWorker && st === 'unauthorized') {
    text = 'The server wants its token again: sign in to go on.';
  }
  banner.hidden = !text;
  banner.textContent = text || '';
  badgeEl.classList.toggle('stale', !!inWorker && st !== 'live');
  badgeEl.title = inWorker && st !== 'live' ? 'last known status (not connected)' : badgeEl.title;
}

// ---- the worker list ----

function statusLabel(w) {
  let label = w.status || 'unknown';
  if (w.status === 'exited') {
    if (w.exit_code !== undefined && w.exit_code !== null) label = `exited ${w.exit_code}`;
    else if (w.signal) label = 'killed';
  }
  return label;
}

function badge(el, w) {
  el.textContent = statusLabel(w);
  el.dataset.status = w.status || '';
  const q = Array.isArray(w.queue) ? w.queue.length : 0;
  el.title = q ? `${w.status}, ${q} queued` : w.status || '';
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

function markSeen(id, seq) {
  try { localStorage.setItem(seenKey(id), String(seq)); } catch { /* ignore */ }
}

function workerItem(w) {
  const b = h('span', { class: 'badge' });
  badge(b, w);
  const fresh = state.selected !== w.id && (w.last_seq || 0) > seenSeq(w);
  const dot = fresh ? h('span', { class: 'new-dot', title: 'new activity since you last looked' }, h('span', { class: 'visually-hidden', text: 'new activity' })) : null;
  const q = Array.isArray(w.queue) && w.queue.length ? h('span', { class: 'badge', text: `${w.queue.length} queued`, dataset: { status: 'pending' } }) : null;
  const button = h('button', {
    type: 'button',
    class: 'worker-item',
    dataset: { id: w.id },
    attrs: { 'aria-current': state.selected === w.id ? 'true' : 'false' },
  },
  h('span', { class: 'wi-name' }, dot, w.name || w.id),
  h('span', { class: 'wi-badges' }, b, q ? ' ' : null, q),
  h('span', { class: 'wi-sub' }, h('span', { class: 'kind', text: w.ai_cli_type }), h('span', { class: 'wi-path', text: shortPath(w.project_path), title: String(w.project_path || '') })));
  button.addEventListener('click', () => navigate(`#/w/${enc(w.id)}`));
  return h('li', null, button);
}

let listKey = '';

function renderWorkerList() {
  const list = $('worker-list');
  const key = JSON.stringify(state.workers.map((w) => [w.id, w.name, w.status, w.exit_code, w.signal, (w.queue || []).length, w.project_path, w.ai_cli_type, state.selected === w.id, w.last_seq]));
  if (key === listKey && list.childElementCount === state.workers.length) return;
  listKey = key;
  const focusedId = document.activeElement && document.activeElement.classList.contains('worker-item') ? document.activeElement.dataset.id : null;
  clear(list);
  for (const w of state.workers) list.appendChild(workerItem(w));
  $('workers-empty').hidden = state.workers.length > 0;
  if (focusedId) {
    const again = list.querySelector(`.worker-item[data-id="${CSS.escape(focusedId)}"]`);
    if (again) again.focus();
  }
}

let lastCount = -1;

async function loadWorkers() {
  try {
    const data = await get('/api/workers');
    state.listOk = true;
    const workers = (data.workers || []).slice().sort((a, b) => String(a.created_at || '').localeCompare(String(b.created_at || '')));
    // The open worker's live state comes from its stream; keep it where it is newer.
    const current = state.selected ? state.byId.get(state.selected) : null;
    state.workers = workers.map((w) => (current && w.id === current.id && (current.last_seq || 0) > (w.last_seq || 0) ? { ...w, ...current } : w));
    const countChanged = lastCount !== state.workers.length;
    lastCount = state.workers.length;
    state.byId = new Map(state.workers.map((w) => [w.id, w]));
    if (state.selected && conversation.id === state.selected) markSeen(state.selected, conversation.hi());
    renderWorkerList();
    if (countChanged) loadStatus();
    if (state.selected) {
      const w = state.byId.get(state.selected);
      if (w) renderWorkerHead(w);
    }
    tasks.setWorkers(state.workers);
  } catch (err) {
    state.listOk = false;
    if (err instanceof ApiError && err.status === 401) return;
  } finally {
    renderConn();
  }
}

let listTimer = null;
function pollWorkers() {
  clearTimeout(listTimer);
  loadWorkers().finally(() => {
    listTimer = setTimeout(pollWorkers, document.visibilityState === 'visible' ? LIST_EVERY_MS : LIST_EVERY_MS * 5);
  });
}

// ---- the selected worker ----

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
    if (state.selected === w.id) markSeen(w.id, Math.max(w.last_seq || 0, conversation.hi()));
    const merged = { ...(state.byId.get(w.id) || {}), ...w };
    state.byId.set(w.id, merged);
    state.workers = state.workers.map((x) => (x.id === w.id ? merged : x));
    if (state.selected === w.id) renderWorkerHead(merged);
    const item = document.querySelector(`.worker-item[data-id="${CSS.escape(w.id)}"]`);
    if (item) {
      const focused = document.activeElement === item;
      const fresh = workerItem(merged);
      item.parentElement.replaceWith(fresh);
      if (focused) fresh.firstChild.focus();
    }
  },
  onConn: (st, info) => {
    state.conn = { state: st, info: { ...info, retryAt: st === 'reconnecting' && info.delay ? Date.now() + info.delay : 0 } };
    renderConn();
  },
  probe: async (id) => {
    try {
      await get(`/api/workers/${enc(id)}`, { timeoutMs: 5000 });
      return 'ok';
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return 'gone';
      if (err instanceof ApiError && err.status === 401) return 'unauthorized';
      return 'unreachable';
    }
  },
  onClose: (id, seq) => markSeen(id, seq),
  editText: (text) => {
    const input = $('composer-input');
    input.value = text;
    input.focus();
  },
});

function renderWorkerHead(w) {
  if (state.route.view === 'worker' && state.selected === w.id) document.title = `${w.name || w.id} (${statusLabel(w)}) · workerhub`;
  $('w-name').textContent = w.name || w.id;
  $('w-name').title = w.id;
  badge($('w-badge'), w);
  $('w-kind').textContent = w.ai_cli_type || '';
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
  const busy = st === 'busy';
  const running = st === 'running' || st === 'starting';
  $('act-interrupt').disabled = !(busy || (!w.has_turns && running));
  $('act-stop').disabled = !(busy || running || (Array.isArray(w.queue) && w.queue.length > 0));
  $('act-start').hidden = !!w.has_turns;
  $('act-start').disabled = running;

  const input = $('composer-input');
  const send = $('composer-send');
  const hint = $('composer-hint');
  $('composer-label').textContent = `Message to ${w.name || w.id}`;
  input.setAttribute('aria-label', `Message to ${w.name || w.id}`);
  const q = Array.isArray(w.queue) ? w.queue.length : 0;
  if (w.takes_messages === false) {
    input.disabled = true;
    send.disabled = true;
    hint.textContent = 'This worker follows a session read-only: it takes no messages.';
  } else {
    input.disabled = false;
    send.disabled = false;
    if (!w.has_turns && !running) {
      hint.textContent = 'The process is not running: press Start to run it again.';
    } else if (busy) {
      hint.textContent = `Working: a message now waits in the queue${q ? ` (${q} waiting)` : ''}.`;
    } else {
      hint.textContent = '';
    }
    send.textContent = busy ? 'Queue' : 'Send';
  }
  renderQueue(w);
  renderWorking(w);
}

let workingTimer = null;

/** "Working · 12 s" at the end of the conversation while a turn runs. */
function renderWorking(w) {
  const box = $('working');
  clearInterval(workingTimer);
  workingTimer = null;
  const busy = w.status === 'busy';
  box.hidden = !busy;
  if (!busy) return;
  const since = Date.parse((w.turn && w.turn.started_at) || '') || Date.now();
  const tick = () => {
    $('working-text').textContent = `${w.name || 'The worker'} is working · ${duration(Math.max(0, Date.now() - since))}`;
  };
  tick();
  workingTimer = setInterval(tick, 1000);
  if (conversation.following) conversation.scrollToBottom();
}

function renderQueue(w) {
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

async function openWorker(id) {
  if (state.selected === id && conversation.id === id) return;
  if (conversation.id) conversation.close();
  state.selected = id;
  try { localStorage.setItem(SELECTED_KEY, id); } catch { /* ignore */ }
  renderWorkerList();
  let w = state.byId.get(id);
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
  if (state.selected !== id) return;
  state.byId.set(w.id, w);
  renderWorkerHead(w);
  const input = $('composer-input');
  try { input.value = localStorage.getItem(draftKey(id)) || ''; } catch { input.value = ''; }
  conversation.open(w);
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
    state.selected = null;
    document.querySelectorAll('.worker-item').forEach((el) => el.setAttribute('aria-current', 'false'));
  }
  if (r.view === 'tasks') tasks.show(); else tasks.hide();
  document.title = r.view === 'worker' ? `${(state.byId.get(r.id) || {}).name || 'worker'} · workerhub` : r.view === 'tasks' ? 'Tasks · workerhub' : 'workerhub';
  renderConn();
}

// ---- composer ----

function wireComposer() {
  const form = $('composer');
  const input = $('composer-input');
  let draftTimer = null;
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value;
    if (!text.trim() || !conversation.id) return;
    conversation.send(text);
    input.value = '';
    try { localStorage.removeItem(draftKey(conversation.id)); } catch { /* ignore */ }
    input.focus();
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      form.requestSubmit();
    } else if (e.key === 'Escape') {
      input.blur();
    }
  });
  input.addEventListener('input', () => {
    clearTimeout(draftTimer);
    const id = conversation.id;
    draftTimer = setTimeout(() => {
      if (!id) return;
      try {
        if (input.value) localStorage.setItem(draftKey(id), input.value);
        else localStorage.removeItem(draftKey(id));
      } catch { /* ignore */ }
    }, 300);
  });
}

// ---- actions ----

async function act(what) {
  const id = state.selected;
  if (!id) return;
  const w = state.byId.get(id) || {};
  const buttons = ['act-interrupt', 'act-stop', 'act-start'].map($);
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const answer = await post(`/api/workers/${enc(id)}/${what}`);
    if (what === 'stop' && answer && answer.dropped_messages) toast(`Stopped; ${answer.dropped_messages} queued message(s) dropped.`);
  } catch (err) {
    toast(`${what} ${w.name || id}: ${err.message}`);
  }
  try {
    const fresh = await get(`/api/workers/${enc(id)}`);
    if (state.selected === fresh.id) {
      state.byId.set(fresh.id, { ...(state.byId.get(fresh.id) || {}), ...fresh });
      renderWorkerHead(state.byId.get(fresh.id));
    }
  } catch { /* the poll will tell */ }
}

function confirmDelete() {
  const id = state.selected;
  const w = state.byId.get(id);
  if (!w) return;
  const dialog = $('confirm-dialog');
  $('confirm-title').textContent = `Delete ${w.name || w.id}?`;
  $('confirm-text').textContent = `Its process is stopped and the worker is removed with its history. This cannot be undone.`;
  dialog.returnValue = '';
  dialog.showModal();
  $('confirm-cancel').focus();
}

function wireActions() {
  $('act-interrupt').addEventListener('click', () => act('interrupt'));
  $('act-stop').addEventListener('click', () => act('stop'));
  $('act-start').addEventListener('click', () => act('start'));
  $('act-delete').addEventListener('click', confirmDelete);
  const dialog = $('confirm-dialog');
  $('confirm-cancel').addEventListener('click', () => dialog.close());
  $('confirm-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const id = state.selected;
    dialog.close();
    try {
      await del(`/api/workers/${enc(id)}`);
      try { localStorage.removeItem(`workerhub.scroll.${id}`); localStorage.removeItem(draftKey(id)); } catch { /* ignore */ }
      toast('Worker deleted.');
      navigate('#/');
      loadWorkers();
    } catch (err) {
      toast(`Delete failed: ${err.message}`);
    }
  });
}

// ---- toasts ----

function toast(text) {
  let box = $('toasts');
  if (!box) {
    box = h('div', { id: 'toasts', class: 'toasts', attrs: { role: 'alert', 'aria-live': 'assertive' } });
    document.body.appendChild(box);
  }
  const item = h('div', { class: 'toast', text });
  box.appendChild(item);
  setTimeout(() => item.remove(), 6000);
}

// ---- status footer ----

async function loadStatus() {
  try {
    const s = await get('/api/status');
    const byStatus = s.workers && s.workers.by_status ? Object.entries(s.workers.by_status).map(([k, v]) => `${v} ${k}`).join(', ') : '';
    const parts = [
      `workerhub ${s.version || ''}`.trim(),
      `up ${s.uptime_seconds < 60 ? `${s.uptime_seconds || 0} s` : duration(s.uptime_seconds * 1000)}`,
      `${s.workers ? s.workers.total : 0} worker${s.workers && s.workers.total === 1 ? '' : 's'}${byStatus ? ` (${byStatus})` : ''}`,
      `${s.connections ?? 0} connection${s.connections === 1 ? '' : 's'}`,
    ];
    if (s.tasks && s.tasks.total) {
      const t = Object.entries(s.tasks.by_status || {}).map(([k, v]) => `${v} ${k}`).join(', ');
      parts.push(`${s.tasks.total} task${s.tasks.total === 1 ? '' : 's'}${t ? ` (${t})` : ''}`);
    }
    if (s.process && s.process.rss_bytes) parts.push(`${bytes(s.process.rss_bytes)} memory`);
    $('status-line').textContent = parts.join(' · ');
  } catch (err) {
    $('status-line').textContent = err.status === 401 ? 'Not signed in.' : `Status unavailable: ${err.message}`;
  }
}

// ---- sign-in (a server with a token) ----

function showTokenForm() {
  if (state.authShown) return;
  state.authShown = true;
  renderConn();
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

const create = new CreateForm({
  onCreated: (w) => {
    loadWorkers();
    navigate(`#/w/${enc(w.id)}`);
  },
});

const tasks = new Tasks({ toast, openWorker: (id) => navigate(`#/w/${enc(id)}`) });

function boot() {
  // A token must never stay in the address bar (the server trades it for a cookie).
  const url = new URL(window.location.href);
  if (url.searchParams.has('token')) {
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
  setUnauthorizedHandler(showTokenForm);
  wireToken();
  wireComposer();
  wireActions();
  $('new-worker').addEventListener('click', () => create.open());
  $('new-worker-2').addEventListener('click', () => create.open());
  $('back-to-list').addEventListener('click', () => navigate('#/'));
  $('conn-retry').addEventListener('click', () => { if (conversation.stream) conversation.stream.retryNow(); else pollWorkers(); });
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
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') pollWorkers(); });

  if (!window.location.hash || window.location.hash === '#') {
    let last = null;
    try { last = localStorage.getItem(SELECTED_KEY); } catch { /* ignore */ }
    if (last) history.replaceState(null, '', `#/w/${enc(last)}`);
  }
  route();
  pollWorkers();
  loadStatus();
  setInterval(loadStatus, STATUS_EVERY_MS);

  // For tests and for curious people: what the page holds, by seq.
  window.workerhub = Object.freeze({ debug: () => conversation.debug() });
}

boot();

})();
