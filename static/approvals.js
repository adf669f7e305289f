// Tool approvals in the conversation. An `approval_request` becomes a card where the
// tool call stands: what the tool would do (the command, or the file and its diff) and
// the answers it offers (Allow, Allow for this session, Deny with an optional message).
// Once resolved, by anyone (another viewer, a rule, an interrupt, a timeout), the card
// says how and by whom, and its buttons go. Whoever answers first wins; a late answer
// is told so on the card.

import { h } from './dom.js';
import { clock } from './format.js';
import { diffView } from './diff.js';

/** What each decision reads as once made. */
const OUTCOME = {
  allow: 'Allowed once',
  allow_session: 'Allowed for this session',
  deny: 'Denied',
  cancelled: 'Withdrawn',
  expired: 'Expired',
};

/** The buttons, in the order a person reads them; their labels are the page's own. */
const BUTTONS = [
  { decision: 'allow', label: 'Allow', cls: 'button primary' },
  { decision: 'allow_session', label: 'Allow for this session', cls: 'button' },
  { decision: 'deny', label: 'Deny', cls: 'button danger' },
];

/** A decision in words, with who made it: "Denied by alice", "Withdrawn (the turn ended)". */
export function outcomeText(resolved) {
  const what = OUTCOME[resolved.decision] || String(resolved.decision || 'Decided');
  const by = resolved.by ? ` by ${resolved.by}` : '';
  return `${what}${by}`;
}

/** A diff made from an edit's old and new text, when the request carries none. */
function diffOfInput(input) {
  const old = input.old_string ?? input.oldString;
  const next = input.new_string ?? input.newString ?? input.content;
  if (typeof next !== 'string') return null;
  const lines = [];
  if (typeof old === 'string' && old !== '') lines.push(...old.split('\n').map((l) => `-${l}`));
  lines.push(...next.split('\n').map((l) => `+${l}`));
  return lines.join('\n');
}

const pathOf = (input) => (input && (input.file_path || input.filePath || input.path || input.notebook_path)) || null;

function commandOf(input) {
  const command = input && input.command;
  if (Array.isArray(command)) return command.join(' ');
  return typeof command === 'string' ? command : null;
}

/** What the tool would do: the command, or the file and its change, or its input. */
function proposal(req) {
  const input = req.input && typeof req.input === 'object' ? req.input : {};
  const command = commandOf(input);
  if (command !== null) {
    const parts = [h('pre', { class: 'cmd', text: command })];
    if (input.description) parts.push(h('div', { class: 'tool-desc', text: String(input.description) }));
    return parts;
  }
  const path = pathOf(input);
  const diff = req.diff || diffOfInput(input);
  if (path || diff) {
    return [
      path ? h('div', { class: 'edit-path', text: path }) : null,
      diff ? diffView(diff, { label: path ? `Change to ${path}` : 'Change', cls: 'approval-diff' }) : null,
    ];
  }
  let json;
  try { json = JSON.stringify(req.input, null, 2); } catch { json = String(req.input); }
  return json && json !== '{}' ? [h('pre', { class: 'json', text: json })] : [];
}

/**
 * The card for `req` (an `approval_request` event). `answer(decision, message)` sends an
 * answer and resolves when it went out (it throws with a message when it did not);
 * `onResolved(resolvedEvent)` hears the outcome.
 * Returns `{el, id, resolve(resolvedEvent), refused(text), failed(text)}`.
 */
export function approvalCard(req, answer, onResolved = () => {}) {
  const id = String(req.approval_id || '');
  const key = id.replace(/[^\w-]/g, '');
  const titleId = `approval-${key}-title`;
  const summaryId = `approval-${key}-summary`;
  const summary = req.summary || commandOf(req.input) || pathOf(req.input) || '';
  const card = h('section', {
    class: 'card approval-card',
    dataset: { approvalId: id, state: 'pending', tool: req.tool_name || '' },
    attrs: { 'aria-labelledby': titleId },
  });
  card.appendChild(h('div', { class: 'approval-head' },
    h('span', { id: titleId, class: 'approval-title', text: 'Approval needed' }),
    h('span', { class: 'tool-name', text: req.tool_name || 'tool' }),
    h('span', { id: summaryId, class: 'tool-summary', text: summary, title: summary })));
  if (req.reason) card.appendChild(h('p', { class: 'approval-reason muted small', text: `Why it asks: ${req.reason}` }));
  card.appendChild(h('div', { class: 'approval-proposal' }, proposal(req)));

  const outcome = h('p', { class: 'approval-outcome', attrs: { role: 'status', tabindex: '-1' } });
  const offered = new Set((req.options || []).map((o) => o.decision));
  const ruleOf = Object.fromEntries((req.options || []).filter((o) => o.rule).map((o) => [o.decision, o.rule]));
  const messageId = `approval-${key}-message`;
  const message = h('input', { id: messageId, type: 'text', class: 'approval-message', maxLength: 2000, placeholder: 'e.g. use the test database instead', attrs: { spellcheck: 'true' } });
  const buttons = BUTTONS.filter((b) => !offered.size || offered.has(b.decision)).map((b) => {
    const button = h('button', {
      type: 'button',
      class: `${b.cls} approval-${b.decision.replace('_', '-')}`,
      text: b.label,
      dataset: { decision: b.decision },
      title: ruleOf[b.decision] ? `Allows calls that match ${ruleOf[b.decision]} until the session ends` : '',
      attrs: { 'aria-describedby': summaryId },
    });
    button.addEventListener('click', () => send(b.decision));
    return button;
  });
  const controls = h('div', { class: 'approval-answer' },
    h('div', { class: 'approval-message-field' },
      h('label', { htmlFor: messageId, class: 'small', text: 'Message with a denial (optional)' }),
      message),
    h('div', { class: 'approval-buttons', attrs: { role: 'group', 'aria-label': `Answer: ${req.tool_name || 'tool'} ${summary}`.trim() } }, buttons));
  card.appendChild(controls);
  card.appendChild(outcome);

  let done = false;
  const say = (text, tone) => {
    outcome.textContent = text;
    outcome.dataset.tone = tone || '';
  };

  const failed = (text) => {
    if (done) return;
    for (const b of buttons) b.disabled = false;
    message.disabled = false;
    say(`Not sent: ${text}`, 'bad');
  };

  async function send(decision) {
    if (done) return;
    for (const b of buttons) b.disabled = true;
    message.disabled = true;
    say('Sending…', 'pending');
    const text = decision === 'deny' ? message.value.trim() : '';
    try {
      await answer(decision, text || undefined);
    } catch (err) {
      failed(err.message || String(err));
    }
  }

  const finish = () => {
    const hadFocus = card.contains(document.activeElement);
    done = true;
    controls.remove();
    if (hadFocus) outcome.focus();
  };

  return {
    el: card,
    id,
    /** The request was resolved (by anyone): say how, and take the buttons away. */
    resolve(resolved) {
      card.dataset.state = resolved.decision || 'resolved';
      const bits = [outcomeText(resolved)];
      if (resolved.timestamp) bits.push(clock(resolved.timestamp));
      const tone = resolved.decision === 'deny' ? 'bad' : String(resolved.decision).startsWith('allow') ? 'ok' : '';
      say(bits.join(' · '), tone);
      if (resolved.message) outcome.appendChild(h('span', { class: 'approval-said', text: ` — “${resolved.message}”` }));
      finish();
      onResolved(resolved);
    },
    /** The server refused this page's answer for another reason (`text`). */
    failed,
    /** This page's answer came after someone else's: it was not used. */
    refused(text) {
      if (done && card.querySelector('.approval-late')) return;
      const decided = String(text || '').replace(/^approval \S+ was already decided: /, '');
      card.insertBefore(h('p', { class: 'approval-late', attrs: { role: 'alert' }, text: `Already decided${decided ? ` (${decided})` : ''}: your answer was not used.` }), outcome);
      if (!done) {
        card.dataset.state = 'decided';
        say('Decided by someone else', 'warn');
        finish();
      }
    },
  };
}
