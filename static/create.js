// The "New worker" form: the kinds come from GET /api/ai-clis (a kind that cannot run
// here is shown disabled, with the reason), and each kind shows the options it has.

import { $, h, clear } from './dom.js';
import { get, post } from './api.js';

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

export class CreateForm {
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
