// Small DOM helpers. Everything that comes from a worker, a child process or another
// client goes into the page as text nodes (textContent), never as HTML.

/**
 * Creates an element. `props`: `class`, `text`, `title`, `hidden`, `dataset` (object),
 * `on` (object of event listeners), `attrs` (object of attributes); anything else is
 * set as a property. Children are nodes or strings (added as text).
 */
export function h(tag, props, ...children) {
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

export const $ = (id) => document.getElementById(id);

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
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
export function copyButton(getText, label = 'Copy') {
  const button = h('button', { type: 'button', class: 'button small copy', text: label, title: 'Copy to the clipboard' });
  button.addEventListener('click', async () => {
    const ok = await copyText(getText());
    button.textContent = ok ? 'Copied' : 'Copy failed';
    setTimeout(() => { button.textContent = label; }, 1500);
  });
  return button;
}

/** A message that shows for a few seconds at the bottom of the page. */
export function toast(text) {
  let box = $('toasts');
  if (!box) {
    box = h('div', { id: 'toasts', class: 'toasts', attrs: { role: 'alert', 'aria-live': 'assertive' } });
    document.body.appendChild(box);
  }
  const item = h('div', { class: 'toast', text, title: 'Click to dismiss' });
  item.addEventListener('click', () => item.remove());
  box.appendChild(item);
  setTimeout(() => item.remove(), 6000);
}
