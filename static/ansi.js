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
export function appendAnsi(parent, text) {
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
export function stripAnsi(text) {
  if (!NEEDS_WORK.test(text)) return text;
  return text.replace(ESC_RE, '').replace(CTRL_RE, '');
}
