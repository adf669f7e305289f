// An agent's plan (ACP's `plan` update, whole each time it changes) as a checklist:
// each entry with a mark for its status (✓ done, ◐ in progress, ○ pending), its
// priority in small print, and its status in words for screen readers. The list is
// labelled with the plan's progress ("Plan: 1 of 2 done").

import { h } from './dom.js';

const STATUS = {
  completed: { mark: '✓', words: 'done' },
  in_progress: { mark: '◐', words: 'in progress' },
  pending: { mark: '○', words: 'pending' },
};

/** The entries of a plan event's content, as far as they are entries. */
export function planEntries(content) {
  const entries = content && Array.isArray(content.entries) ? content.entries : [];
  return entries.filter((e) => e && typeof e === 'object');
}

/** "1 of 2 done", "2 of 3 done, 1 in progress". */
export function planProgress(entries) {
  const done = entries.filter((e) => e.status === 'completed').length;
  const going = entries.filter((e) => e.status === 'in_progress').length;
  return `${done} of ${entries.length} done${going ? `, ${going} in progress` : ''}`;
}

/**
 * The checklist of `entries`. `idBase` makes the ids the list is labelled with unique;
 * `title` is its heading ("Plan").
 */
export function planList(entries, { idBase, title = 'Plan' }) {
  const titleId = `${idBase}-title`;
  const progress = planProgress(entries);
  const head = h('div', { class: 'plan-head' },
    h('span', { id: titleId, class: 'plan-title', text: title }),
    h('span', { class: 'plan-progress', text: progress }));
  const list = h('ul', { class: 'plan-list', attrs: { 'aria-label': `${title}: ${progress}` } });
  if (!entries.length) list.appendChild(h('li', { class: 'plan-entry muted', text: '(no steps)' }));
  for (const entry of entries) {
    const status = STATUS[entry.status] ? entry.status : 'pending';
    const { mark, words } = STATUS[status];
    const priority = typeof entry.priority === 'string' ? entry.priority : '';
    const unknown = STATUS[entry.status] || !entry.status ? '' : ` (${entry.status})`;
    list.appendChild(h('li', { class: 'plan-entry', dataset: { status, priority } },
      h('span', { class: 'plan-mark', text: mark, attrs: { 'aria-hidden': 'true' } }),
      h('span', { class: 'plan-text', text: String(entry.content ?? '') }),
      h('span', { class: 'visually-hidden', text: `: ${words}${unknown}${priority ? `, ${priority} priority` : ''}` }),
      priority ? h('span', { class: 'plan-priority', text: priority, title: `${priority} priority`, attrs: { 'aria-hidden': 'true' } }) : null));
  }
  return [head, list];
}
