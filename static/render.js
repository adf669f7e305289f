// One event, one row. Every row carries its event's seq (data-seq), so the page can
// always say which events it shows. Tool results are shown inside their tool call's
// card; their own row then stays as an empty placeholder.

import { h, copyButton } from './dom.js';
import { clock, cost, duration, seconds } from './format.js';
import { appendAnsi, stripAnsi } from './ansi.js';
import { renderMarkdown } from './markdown.js';
import { approvalCard, outcomeText } from './approvals.js';
import { diffView, unifiedDiff } from './diff.js';
import { describeDiff } from './changes.js';
import { planEntries, planList, planProgress } from './plan.js';

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
export function collapsible(box, text, { ansi = true, lines = COLLAPSE_LINES, chars = COLLAPSE_CHARS } = {}) {
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
    const lines = input.content.replace(/\n$/, '').split('\n');
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
    /** While its approval waits (`waiting`), and after: running again, or denied. */
    setApproval(how) {
      if (this.hasResult) return;
      const text = { waiting: 'needs approval', denied: 'not allowed' }[how] || 'running…';
      state.textContent = text;
      state.dataset.state = how === 'waiting' ? 'waiting' : how === 'denied' ? 'error' : 'running';
    },
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

// ---- tool calls of ACP agents ----

/** An ACP tool call's status: what it reads as, and the state its colour follows. */
const ACP_STATUS = {
  pending: { text: 'pending', state: 'pending' },
  in_progress: { text: 'in progress', state: 'running' },
  completed: { text: 'completed', state: 'ok' },
  failed: { text: 'failed', state: 'error' },
};

/** Whether a tool_use carries what an ACP agent says about its call. */
function isAcpCall(c) {
  return ['tool_kind', 'title', 'status', 'locations'].some((k) => c[k] !== undefined && c[k] !== null) || Array.isArray(c.content);
}

/**
 * The agent's own `session/update` an event was made from (its `raw` line), for what
 * the event leaves out: the call a `tool_call_update` is about, the blocks of a final
 * update. Null when `raw` is not one.
 */
function rawUpdate(c) {
  if (!c || typeof c.raw !== 'string' || !c.raw.includes('toolCallId')) return null;
  try {
    const update = JSON.parse(c.raw).params.update;
    return update && typeof update === 'object' ? update : null;
  } catch {
    return null;
  }
}

/** The tool call id a `system` `tool_call_update` event is about. */
function updateCallId(c) {
  const id = c.tool_call_id ?? c.tool_use_id ?? c.toolCallId;
  if (typeof id === 'string' && id) return id;
  const update = rawUpdate(c);
  return update && typeof update.toolCallId === 'string' ? update.toolCallId : null;
}

/** A path as the project sees it: relative to the project folder when inside it. */
function projectPath(path, project) {
  const p = String(path ?? '');
  const root = project ? String(project).replace(/\/+$/, '') : '';
  return root && p.startsWith(`${root}/`) ? p.slice(root.length + 1) : p;
}

/**
 * An ACP tool call's card: its kind as a label, its title and status, the files it
 * touches, its diffs (as approvals show them) and its text output. `update(details)`
 * takes a later state of the call (`tool_kind`, `title`, `status`, `locations`,
 * `content`); `setResult` its end.
 */
function acpToolCard(ev, ctx) {
  const c = ev.content || {};
  const project = ctx.project || '';
  const kindEl = h('span', { class: 'tool-kind' });
  const titleEl = h('span', { class: 'tool-summary tool-title' });
  const state = h('span', { class: 'tool-state' });
  const card = h('details', { class: 'card tool acp-tool', open: true });
  card.appendChild(h('summary', null, kindEl, titleEl, state));
  const locations = h('ul', { class: 'tool-locations mono', attrs: { 'aria-label': 'Files' } });
  const diffs = h('div', { class: 'tool-diffs' });
  const inputBox = h('div', { class: 'tool-input-box' });
  const resultBox = h('div', { class: 'tool-result' });
  const inner = h('div', { class: 'card-body' }, locations, diffs, inputBox, resultBox);
  card.appendChild(inner);
  card.dataset.toolId = c.id || '';
  let status = 'pending';
  let approval = null; // 'waiting' or 'denied' while that says more than the status

  const showState = () => {
    const known = ACP_STATUS[status] || { text: status, state: 'pending' };
    let text = known.text;
    let cls = known.state;
    if (approval === 'waiting' && cls !== 'ok' && cls !== 'error') { text = 'needs approval'; cls = 'waiting'; }
    if (approval === 'denied' && cls !== 'ok' && cls !== 'error') { text = 'not allowed'; cls = 'error'; }
    state.textContent = text;
    state.dataset.state = cls;
    card.dataset.status = status;
    card.classList.toggle('error', status === 'failed');
  };
  const setKind = (kind) => {
    kindEl.textContent = kind;
    kindEl.hidden = !kind;
    card.dataset.kind = kind;
  };
  const setTitle = (title) => {
    titleEl.textContent = title;
    titleEl.title = title;
  };
  const setLocations = (list) => {
    locations.textContent = '';
    for (const loc of list) {
      if (!loc || typeof loc.path !== 'string') continue;
      const shown = projectPath(loc.path, project);
      const line = Number.isFinite(loc.line) ? `:${loc.line}` : '';
      locations.appendChild(h('li', { text: `${shown}${line}`, title: `${loc.path}${line}` }));
    }
    locations.hidden = !locations.firstChild;
  };
  /** Output text, shown as a tool's output is. */
  const setOutput = (text, failed) => {
    resultBox.textContent = '';
    if (!text) return;
    resultBox.appendChild(h('div', { class: 'section-label', text: failed ? 'Error' : 'Output' }));
    const box = h('div');
    box.dataset.preClass = failed ? 'tool-output error' : 'tool-output';
    collapsible(box, text);
    resultBox.appendChild(box);
  };
  /**
   * The call's content blocks: diffs as diffs, text as output. A later state without
   * diffs (a completion that only says "done") leaves the diffs shown before.
   */
  const setContent = (blocks, failed) => {
    const texts = [];
    const views = [];
    for (const block of blocks) {
      if (!block || typeof block !== 'object') continue;
      if (block.type === 'diff') {
        const shown = projectPath(block.path, project) || 'file';
        const diff = unifiedDiff(shown, block.oldText, block.newText ?? '');
        views.push(diff
          ? diffView(diff, { label: `Change to ${shown}`, cls: 'tool-diff' })
          : h('div', { class: 'muted small', text: `No change to ${shown}` }));
      } else if (block.type === 'content') {
        const inner = block.content || {};
        if (inner.type === 'text') texts.push(String(inner.text ?? ''));
        else texts.push(`[${inner.type || 'content'}${inner.uri ? ` ${inner.uri}` : ''}]`);
      } else if (block.type === 'terminal') {
        // Its output stays in the agent's terminal, which this client does not offer.
        texts.push(block.terminalId ? `(terminal ${block.terminalId})` : '(terminal)');
      }
    }
    if (views.length) {
      diffs.textContent = '';
      for (const view of views) diffs.appendChild(view);
    }
    diffs.hidden = !diffs.firstChild;
    if (texts.length || !api.hasResult) setOutput(texts.join('\n'), failed);
    return views.length > 0;
  };

  setKind(typeof c.tool_kind === 'string' ? c.tool_kind : '');
  setTitle(String(c.title || c.name || c.tool_kind || 'tool'));
  if (typeof c.status === 'string' && c.status) status = c.status;
  setLocations(Array.isArray(c.locations) ? c.locations : []);
  const api = {
    el: card,
    id: c.id,
    hasResult: false,
    /** A later state of the call, as ACP's `tool_call_update` says it. */
    update(details) {
      if (!details || typeof details !== 'object') return;
      if (typeof details.tool_kind === 'string') setKind(details.tool_kind);
      if (typeof details.title === 'string' && details.title) setTitle(details.title);
      if (Array.isArray(details.locations)) setLocations(details.locations);
      if (Array.isArray(details.content)) setContent(details.content, status === 'failed');
      if (typeof details.status === 'string' && details.status && !this.hasResult) status = details.status;
      showState();
    },
    setApproval(how) {
      approval = how === 'waiting' || how === 'denied' ? how : null;
      showState();
    },
    setResult(resultEv) {
      const rc = resultEv.content || {};
      this.hasResult = true;
      resultBox.dataset.seq = String(resultEv.seq);
      status = rc.is_error ? 'failed' : 'completed';
      // The agent's own final update holds its blocks (the event has them as text).
      const update = rawUpdate(rc);
      if (update && Array.isArray(update.content)) {
        setContent(update.content, !!rc.is_error);
      } else {
        const text = typeof rc.content === 'string' ? rc.content : prettyJson(rc.content);
        if (text) setOutput(text, !!rc.is_error);
      }
      if (update && Array.isArray(update.locations)) setLocations(update.locations);
      showState();
    },
  };
  const hasDiff = setContent(Array.isArray(c.content) ? c.content : [], false);
  // The input, unless a diff already shows what it does.
  if (!hasDiff) {
    const { body } = describeInput(c.name || '', c.input);
    if (body) inputBox.appendChild(body);
  }
  inputBox.hidden = !inputBox.firstChild;
  showState();
  return api;
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
export function unmergeResult(el) {
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
  const input = usage.input_tokens ?? usage.input ?? usage.prompt_tokens ?? usage.inputTokens;
  const output = usage.output_tokens ?? usage.candidates_tokens ?? usage.completion_tokens ?? usage.outputTokens;
  if (Number.isFinite(input)) parts.push(`${num(input)} in`);
  if (Number.isFinite(output)) parts.push(`${num(output)} out`);
  const cached = (usage.cache_read_input_tokens ?? 0) + (usage.cached_input_tokens ?? 0) + (usage.cached ?? 0) + (usage.cachedReadTokens ?? 0);
  if (cached > 0) parts.push(`${num(cached)} cached`);
  const total = usage.total_tokens ?? usage.totalTokens;
  if (!parts.length && Number.isFinite(total)) parts.push(`${num(total)} tokens`);
  return parts.length ? [`tokens: ${parts.join(' · ')}`] : [];
}

function resultRow(ev, ctx) {
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
  // A failure an error event of the turn already explained is said once, there.
  const errorText = ctx.explained && ctx.explained(ev.seq) ? null : c.error || (c.is_error ? c.result : null);
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

/**
 * An agent's plan as a checklist. A plan is whole each time it changes: a later plan of
 * the same turn supersedes this one, which then folds into a quiet line (shown with
 * "All events"), so that a turn reads with its latest plan only.
 */
function planRow(ev, ctx) {
  const el = row(ev, 'plan-row');
  const entries = planEntries(ev.content);
  const idBase = `plan-${ev.seq}`;
  const show = (superseded) => {
    el.textContent = '';
    el.classList.toggle('quiet', superseded);
    el.classList.toggle('superseded', superseded);
    if (superseded) {
      const [, list] = planList(entries, { idBase, title: 'Earlier plan' });
      el.appendChild(h('details', { class: 'plan plan-old' },
        h('summary', null, h('span', { text: 'Earlier plan' }), h('span', { class: 'muted', text: ` — ${planProgress(entries)}; superseded by a later one` })),
        list));
    } else {
      el.appendChild(h('div', { class: 'card plan', attrs: { role: 'group', 'aria-labelledby': `${idBase}-title` } }, planList(entries, { idBase })));
    }
  };
  show(!!(ctx.planSuperseded && ctx.planSuperseded(ev.seq)));
  el.__supersede = () => { if (!el.classList.contains('superseded')) show(true); };
  const earlier = ctx.earlierPlanRow ? ctx.earlierPlanRow(ev.seq) : null;
  if (earlier && earlier.__supersede) earlier.__supersede();
  return el;
}

/** A state of an ACP tool call between its start and its end: said on its card. */
function toolUpdateRow(ev, ctx) {
  const c = ev.content || {};
  const el = systemRow(ev);
  const id = updateCallId(c);
  if (!id) return el;
  el.__toolUpdate = id;
  if (!ctx.toolUpdates.has(id)) ctx.toolUpdates.set(id, new Set());
  ctx.toolUpdates.get(id).add(el);
  const card = ctx.cards.get(id);
  if (card && card.update) card.update(c);
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
    // An ACP agent says who it is.
    if (c.agent && typeof c.agent === 'object' && c.agent.name) bits.push([c.agent.title || c.agent.name, c.agent.version].filter(Boolean).join(' '));
    if (c.cwd) bits.push(String(c.cwd));
    el.appendChild(h('span', { text: bits.join(' · ') }));
    if (c.session_id) el.title = `session ${c.session_id}`;
    return el;
  }
  if (c.subtype === 'unknown_request' && c.method) {
    // An ACP agent asked for something this client does not offer (and was told so).
    const el = row(ev, 'notice warn unknown-request');
    el.appendChild(h('span', { text: `The agent asked for ${c.method}, which workerhub does not offer; it was told so` }));
    return el;
  }
  if (c.subtype === 'session_lost') {
    const el = row(ev, 'notice warn session-lost');
    const text = String(c.message || 'the session could not be resumed; a new one started without the earlier conversation');
    el.appendChild(h('span', { text: `${text.charAt(0).toUpperCase()}${text.slice(1)}` }));
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
  if (status === 'exited' && stoppedOnRequest(ev)) {
    text = 'Stopped';
    cls = 'notice';
  } else if (status === 'exited') {
    const sig = signalText(ev);
    text = ev.exit_code !== undefined && ev.exit_code !== null ? `Process exited with code ${ev.exit_code}` : sig ? `Process ended by ${sig}` : 'Process exited';
    cls = ev.exit_code === 0 ? 'notice' : 'notice warn';
  } else if (status === 'error') {
    text = `Error${ev.error ? `: ${typeof ev.error === 'string' ? ev.error : compactJson(ev.error)}` : ''}`;
    cls = 'notice bad';
  } else if (status === 'interrupted') {
    text = ev.reason ? `Interrupted: ${ev.reason}` : 'Interrupted (the server stopped while it ran)';
    cls = 'notice warn';
  } else if (status === 'disconnected') {
    // Its host stopped answering; the program may still run there.
    text = `Cannot reach its host${ev.reason ? `: ${ev.reason}` : ''} — retrying`;
    cls = 'notice warn host-lost';
  } else if (ctx.previousStatus && ctx.previousStatus(ev.seq) === 'disconnected') {
    // The status it had before the host stopped answering, back again.
    text = `Reached its host again: ${status.replace(/_/g, ' ')}`;
    cls = 'notice';
  } else if (status === 'running') {
    text = `Process started${ev.pid ? ` (pid ${ev.pid})` : ''}`;
    cls = ctx.hasTurns ? 'quiet' : 'notice';
  } else if (status === 'starting') {
    text = 'Starting…';
  } else if (status === 'busy') {
    text = `Working${ev.pid ? ` (pid ${ev.pid})` : ''}…`;
  } else if (status === 'waiting_approval') {
    const n = Array.isArray(ev.pending_approvals) ? ev.pending_approvals.length : 0;
    text = `Waiting for approval${n > 1 ? ` (${n} requests)` : ''}`;
  } else if (status === 'idle') {
    const turn = ev.last_turn;
    if (turn) {
      const took = Number.isFinite(turn.duration_ms) ? ` after ${duration(turn.duration_ms)}` : '';
      text = `Turn ${turn.outcome || 'ended'}${took}`;
      if (turn.outcome && turn.outcome !== 'completed') cls = turn.outcome === 'failed' || turn.outcome === 'timeout' ? 'notice bad' : 'notice warn';
    } else if (stoppedOnRequest(ev)) {
      text = 'Session stopped';
      cls = 'notice';
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
  if (ev.reason && cls !== 'quiet' && status !== 'interrupted' && status !== 'disconnected' && !stoppedOnRequest(ev)) text += ` (${ev.reason})`;
  if (Array.isArray(ev.queue) && ev.queue.length && cls === 'quiet') text += ` · ${ev.queue.length} queued`;
  const el = row(ev, `status ${cls}`);
  el.appendChild(h('span', { text }));
  el.appendChild(h('span', { class: 'stamp muted', text: time }));
  return el;
}

/** What an error code means, for people. */
const ERROR_TITLES = {
  credentials_missing: 'No API key',
  credentials_rejected: 'API key refused',
  api_unreachable: 'Model API unreachable',
  turn_failed: 'The turn failed',
  start_failed: 'Could not start',
  timeout: 'Timed out',
};

function errorRow(ev) {
  const title = ERROR_TITLES[ev.code];
  const el = row(ev, `error-box${title ? ' explained' : ''}`);
  el.dataset.code = ev.code || '';
  if (title) el.appendChild(h('strong', { class: 'error-title', text: title }));
  else el.appendChild(h('span', { class: 'code', text: ev.code || 'error' }));
  el.appendChild(h('span', { class: 'error-message', text: ev.message || compactJson(ev) }));
  if (ev.hint) el.appendChild(h('div', { class: 'error-hint', text: `What to do: ${ev.hint}` }));
  return el;
}

/** The CLI retries its model API: "API unreachable, retry 4 of 10, next in 8 s". */
function retryRow(ev) {
  const c = ev.content || {};
  const el = row(ev, 'notice warn retry');
  const error = String(c.error || '');
  let what;
  if (!c.status && (!error || /unreachable/i.test(error))) {
    what = 'API unreachable';
  } else {
    what = error ? error.charAt(0).toUpperCase() + error.slice(1) : 'The API failed';
    if (c.status && !what.includes(String(c.status))) what += ` (HTTP ${c.status})`;
  }
  const parts = [what];
  if (Number.isFinite(c.attempt)) parts.push(Number.isFinite(c.max_attempts) ? `retry ${c.attempt} of ${c.max_attempts}` : `retry ${c.attempt}`);
  else parts.push('retrying');
  if (Number.isFinite(c.delay_ms)) parts.push(`next in ${seconds(c.delay_ms)}`);
  el.appendChild(h('span', { class: 'retry-text', text: parts.join(', ') }));
  el.appendChild(h('span', { class: 'stamp muted', text: clock(ev.timestamp) }));
  return el;
}

/**
 * A process stopped on purpose reads as stopped, not as killed by a signal: the server
 * says so (`reason`), or it ended by the signals a stop sends (SIGTERM, SIGINT).
 */
function stoppedOnRequest(ev) {
  return /stopped/i.test(String(ev.reason || '')) || ((ev.exit_code === undefined || ev.exit_code === null) && [2, 15].includes(ev.signal));
}

/** A request for approval: its card, answerable until resolved. */
function approvalRow(ev, ctx) {
  const el = row(ev, 'approval');
  // The tool call it is about, when that is on the page (just above).
  const call = () => (ev.tool_use_id ? ctx.cards.get(ev.tool_use_id) : null);
  const onResolved = (resolved) => {
    const tool = call();
    if (tool) tool.setApproval(String(resolved.decision).startsWith('allow') ? 'allowed' : 'denied');
  };
  const card = approvalCard(ev, (decision, message) => ctx.answer(ev.approval_id, decision, message), onResolved);
  if (call()) call().setApproval('waiting');
  el.appendChild(card.el);
  el.__approval = card;
  ctx.approvals.set(card.id, card);
  const resolved = ctx.decisions.get(card.id);
  if (resolved) card.resolve(resolved);
  return el;
}

/** A resolution: said on its card when that is on the page, else as a line of its own. */
function approvalResolvedRow(ev, ctx) {
  const onPage = ctx.approvals.has(ev.approval_id);
  const el = row(ev, onPage ? 'quiet approval-resolved' : 'notice approval-resolved');
  const tool = ev.tool_name ? `${ev.tool_name}: ` : '';
  el.appendChild(h('span', { text: `${tool}${outcomeText(ev)}${ev.message ? ` — “${ev.message}”` : ''}` }));
  el.appendChild(h('span', { class: 'stamp muted', text: clock(ev.timestamp) }));
  return el;
}

/** The text and state label of a user's message bubble. */
export function userBubble(el, ev, label) {
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
 * state element), `approvals` (approval id → card on the page), `decisions` (approval
 * id → its `approval_resolved` event), `answer(approvalId, decision, message)`,
 * `explained(seq)` (whether an error event already said why that result failed),
 * `toolUpdates` (tool id → rows of its `tool_call_update`s), `project` (the worker's
 * folder, which paths are shown relative to), `planSuperseded(seq)` (whether a later
 * plan of the same turn is held) and `earlierPlanRow(seq)` (the row of the plan it
 * supersedes, when on the page).
 */
export function renderEvent(ev, ctx) {
  switch (ev.type) {
    case 'output': {
      const c = ev.content || {};
      switch (c.kind) {
        case undefined: return outputLine(ev);
        case 'text': return assistantRow(ev);
        case 'thinking': return thinkingRow(ev);
        case 'tool_use': {
          const el = row(ev, 'tool-row');
          const card = isAcpCall(c) ? acpToolCard(ev, ctx) : toolCard(ev);
          el.appendChild(card.el);
          el.__card = card;
          if (c.id) {
            ctx.cards.set(c.id, card);
            // Later states of the call already on the page (rendered before it).
            const updates = ctx.toolUpdates ? ctx.toolUpdates.get(c.id) : null;
            if (updates && card.update) {
              for (const u of [...updates].filter((r) => r.__ev.seq > ev.seq).sort((a, b) => a.__ev.seq - b.__ev.seq)) card.update(u.__ev.content);
            }
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
        case 'result': return resultRow(ev, ctx);
        case 'retry': return retryRow(ev);
        case 'system': return c.subtype === 'tool_call_update' ? toolUpdateRow(ev, ctx) : systemRow(ev);
        case 'plan': return planRow(ev, ctx);
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
    case 'approval_request': return approvalRow(ev, ctx);
    case 'approval_resolved': return approvalResolvedRow(ev, ctx);
    case 'diff': {
      const el = row(ev, 'notice diff-event');
      el.appendChild(h('span', { class: 'small', text: `Changes: ${describeDiff(ev)}` }));
      return el;
    }
    default: {
      const el = row(ev, 'quiet');
      el.appendChild(h('span', { class: 'mono', text: `${ev.type}: ${compactJson(ev, 300)}` }));
      return el;
    }
  }
}
