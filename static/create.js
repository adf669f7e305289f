// The "New worker" form. The kinds and the options each one takes come from
// GET /api/ai-clis (a kind that cannot run here is shown disabled, with the reason);
// fields.js turns the options into fields and back into the request body. When the
// server has other machines (GET /api/hosts), a Host picker says where the worker runs;
// its folder is then a path on that host.

import { $, h, clear } from './dom.js';
import { post } from './api.js';
import { optionField, optionValue } from './fields.js';
import { loadKinds, kindOptionText, credentialProblem } from './kinds.js';
import { rememberPath, suggestPaths } from './paths.js';
import { loadHosts, checkHost, hostState, describeCheck } from './hosts.js';

const LAST_KEY = 'workerhub.lastCreate';

// Offered when the kinds cannot be listed: running a command needs no AI CLI.
const COMMAND_KIND = {
  name: 'command',
  label: 'Command',
  usable: true,
  options: [{ name: 'command', label: 'Command', type: 'argv', required: true, help: 'the program and its arguments, split as a shell would (no shell runs it)' }],
};

/** Free-form arguments and environment are seldom needed: they wait under "More options". */
const isMore = (option) => !option.required && (option.type === 'argv' || option.type === 'env');

export class CreateForm {
  constructor({ onCreated }) {
    this.onCreated = onCreated;
    this.dialog = $('create-dialog');
    this.kinds = [];
    this.roots = []; // the server's project roots, suggested for the folder
    this.fields = []; // the shown kind's options: {option, input}
    this.texts = new Map(); // option name → what was typed, kept across kinds
    this.hosts = []; // GET /api/hosts: the hosts a worker can run on
    this.form = $('create-form');
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    $('cw-cancel').addEventListener('click', () => this.dialog.close());
    $('cw-kind').addEventListener('change', () => this.showFields());
    $('cw-host').addEventListener('change', () => this.showHost());
    $('cw-host-check').addEventListener('click', () => this.check());
  }

  async open() {
    this.error(null);
    const select = $('cw-kind');
    if (!this.dialog.open) this.dialog.showModal();
    let last = {};
    try { last = JSON.parse(localStorage.getItem(LAST_KEY) || '{}') || {}; } catch { last = {}; }
    if (!$('cw-path').value && last.project_path) $('cw-path').value = last.project_path;
    select.disabled = true;
    let defaultKind = null;
    suggestPaths($('cw-path-list'), this.roots);
    const hosts = this.loadHosts(last.host);
    try {
      const data = await loadKinds();
      this.kinds = data.kinds;
      this.roots = data.roots;
      defaultKind = data.defaultKind;
      suggestPaths($('cw-path-list'), this.roots);
    } catch (err) {
      this.error(`Could not list the kinds: ${err.message}`);
      if (!this.kinds.length) this.kinds = [COMMAND_KIND];
    }
    select.disabled = false;
    const previous = select.value || last.ai_cli_type || defaultKind;
    clear(select);
    // The kinds that can run here first, each group in the server's order.
    const kinds = this.kinds.filter((k) => k.usable).concat(this.kinds.filter((k) => !k.usable));
    for (const k of kinds) select.appendChild(h('option', { value: k.name, text: kindOptionText(k), disabled: !k.usable }));
    // Else an AI CLI that can run, else Command (an ACP agent needs its own command).
    const pick = kinds.find((k) => k.usable && k.name === previous)
      || kinds.find((k) => k.usable && !k.needs_command)
      || kinds.find((k) => k.usable && k.name === 'command')
      || kinds.find((k) => k.usable);
    if (pick) select.value = pick.name;
    this.showFields();
    (pick ? $('cw-name') : select).focus();
    await hosts;
  }

  /** Fills the Host picker: "This machine" first, then each host with its state. Hidden
   * when the server has none (or cannot say). */
  async loadHosts(lastHost) {
    try {
      this.hosts = await loadHosts();
    } catch {
      this.hosts = [];
    }
    const select = $('cw-host');
    const previous = select.value || lastHost || '';
    clear(select);
    select.appendChild(h('option', { value: '', text: 'This machine' }));
    for (const x of this.hosts) select.appendChild(h('option', { value: x.name, text: `${x.name} — ${hostState(x)}` }));
    select.value = this.hosts.some((x) => x.name === previous) ? previous : '';
    $('cw-host-field').hidden = this.hosts.length === 0;
    this.showHost();
  }

  /** The chosen host, or null for this machine. */
  host() {
    const name = $('cw-host-field').hidden ? '' : $('cw-host').value;
    return this.hosts.find((x) => x.name === name) || null;
  }

  /** The folder field says where the folder is; local suggestions only for this machine. */
  showHost(note = null) {
    const host = this.host();
    const path = $('cw-path');
    $('cw-host-check').disabled = !host;
    $('cw-host-check').hidden = !host;
    if (host) {
      $('cw-path-label').textContent = `Project folder on ${host.name}`;
      path.placeholder = `/absolute/path/on/${host.name}`;
      path.removeAttribute('list');
      $('cw-host-note').textContent = note || (host.state === 'unknown'
        ? `Runs over ssh${host.host && host.host.ssh !== host.name ? ` (${host.host.ssh})` : ''}; not checked yet: Check connects to it.`
        : host.state === 'reachable' ? describeCheck(host) : `Last check: ${describeCheck(host)}`);
    } else {
      $('cw-path-label').textContent = 'Project folder';
      path.placeholder = '/path/to/project';
      path.setAttribute('list', 'cw-path-list');
      $('cw-host-note').textContent = '';
    }
  }

  /** Checks the chosen host now and says what was found. */
  async check() {
    const host = this.host();
    if (!host) return;
    const button = $('cw-host-check');
    button.disabled = true;
    button.textContent = 'Checking…';
    $('cw-host-note').textContent = `Connecting to ${host.name}…`;
    let note;
    try {
      const status = await checkHost(host.name);
      Object.assign(host, status);
      const option = Array.from($('cw-host').options).find((o) => o.value === host.name);
      if (option) option.textContent = `${host.name} — ${hostState(host)}`;
      note = describeCheck(host);
    } catch (err) {
      note = `Could not check ${host.name}: ${err.message}`;
    } finally {
      button.textContent = 'Check';
    }
    if (this.host() === host) this.showHost(note);
    else this.showHost();
  }

  kind() {
    return this.kinds.find((k) => k.name === $('cw-kind').value) || { name: $('cw-kind').value };
  }

  /** Shows the fields of the selected kind's options. */
  showFields() {
    for (const { option, input } of this.fields) this.texts.set(option.name, input.value);
    const k = this.kind();
    const main = $('cw-options');
    const more = $('cw-more-options');
    clear(main);
    clear(more);
    this.fields = (k.options || []).map((option) => {
      const field = optionField(option, this.texts.get(option.name));
      (isMore(option) ? more : main).appendChild(field.el);
      return { option, input: field.input };
    });
    $('cw-more').hidden = !more.firstChild;
    const note = $('cw-kind-note');
    const problem = credentialProblem(k);
    if (k.usable && problem) {
      // It can still be created: the worker's env may bring its own key.
      const c = k.credentials || {};
      const what = problem === 'no API key found' ? `No API key found for ${k.label || k.name}` : `The API refused the key of ${k.label || k.name} on its last use`;
      note.textContent = `${what}${c.detail ? ` (${c.detail})` : ''}: its turns will fail until you ${c.hint || 'give it a key'}. A key can also go in Environment under More options.`;
      note.classList.add('kind-note-warn');
    } else {
      const bits = [k.binary, k.version_text || k.version, k.default_model && `default model ${k.default_model}`, !k.usable && k.reason];
      note.textContent = bits.filter(Boolean).join(' · ');
      note.classList.remove('kind-note-warn');
    }
  }

  error(text) {
    const el = $('cw-error');
    el.hidden = !text;
    el.textContent = text || '';
  }

  /** The request body, or throws with a message naming the field. */
  body() {
    const body = { ai_cli_type: this.kind().name };
    const name = $('cw-name').value.trim();
    if (name) body.name = name;
    const host = this.host();
    const path = $('cw-path').value.trim();
    if (!path) throw new Error('Project folder is required: the folder the worker runs in.');
    if (host && !path.startsWith('/')) throw new Error(`Project folder must be an absolute path on ${host.name} (it starts with /).`);
    if (host) body.host = host.name;
    body.project_path = path;
    for (const { option, input } of this.fields) {
      const value = optionValue(option, input.value);
      if (value !== undefined) body[option.name] = value;
      else if (option.required) throw new Error(`${option.label || option.name} is required.`);
    }
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
      try { localStorage.setItem(LAST_KEY, JSON.stringify({ ai_cli_type: body.ai_cli_type, project_path: body.project_path, host: body.host || '' })); } catch { /* ignore */ }
      // A folder on another host is no suggestion for this machine.
      if (!body.host) rememberPath(body.project_path);
      this.dialog.close();
      $('cw-name').value = '';
      this.fields = [];
      this.texts.clear();
      this.showFields();
      this.onCreated(worker);
    } catch (err) {
      this.error(err.message);
    } finally {
      button.disabled = false;
      button.textContent = 'Create';
    }
  }
}
