// Project folders to suggest: the ones used last on this browser (newest first), then
// the server's project roots. Shown as a datalist under a folder field.

import { h, clear } from './dom.js';

const RECENT_KEY = 'workerhub.recentPaths';
const MAX_RECENT = 8;

export function recentPaths() {
  try {
    const list = JSON.parse(localStorage.getItem(RECENT_KEY) || '[]');
    return Array.isArray(list) ? list.filter((p) => typeof p === 'string' && p) : [];
  } catch {
    return [];
  }
}

/** Puts `path` first among the recent folders. */
export function rememberPath(path) {
  const p = String(path || '').trim();
  if (!p) return;
  const list = [p, ...recentPaths().filter((x) => x !== p)].slice(0, MAX_RECENT);
  try { localStorage.setItem(RECENT_KEY, JSON.stringify(list)); } catch { /* full or disabled */ }
}

/** Fills `datalist` with the recent folders and then `roots`, each once. */
export function suggestPaths(datalist, roots = []) {
  clear(datalist);
  const recent = recentPaths();
  const seen = new Set();
  for (const p of recent.concat(roots)) {
    if (seen.has(p)) continue;
    seen.add(p);
    datalist.appendChild(h('option', { value: p, label: recent.includes(p) ? 'used recently' : 'project root' }));
  }
}
