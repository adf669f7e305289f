// A worker kind's options as form fields. `GET /api/ai-clis` lists each kind's options
// as {name, label, type, values?, required, help}: `name` is the field of the
// `POST /api/workers` body, `type` says how it is entered (text, choice, list, argv,
// env, flag). The page knows no kind: whatever the server lists is what the form shows.

import { h } from './dom.js';

/** Whether an option's field is wide (a command line, environment lines). */
const isWide = (option) => option.type === 'argv' || option.type === 'env';

/**
 * The labelled field for `option`, filled with `text` when that is a value it can
 * hold. Returns `{el, input}`.
 */
export function optionField(option, text = '') {
  // Prefixed: no option name can clash with the form's own fields (cw-name, cw-path…).
  const id = `cw-opt-${option.name}`;
  const helpId = `${id}-help`;
  const common = { id, required: !!option.required, attrs: { 'aria-describedby': option.help ? helpId : null } };
  // Names, paths and arguments: no spelling to check.
  const typed = { ...common, attrs: { ...common.attrs, spellcheck: 'false' } };
  const values = Array.isArray(option.values) ? option.values : [];
  let input;
  let suggestions = null;
  if (option.type === 'choice') {
    input = h('select', common,
      h('option', { value: '', text: '(default)' }),
      values.map((v) => h('option', { value: v, text: v })));
    input.value = values.includes(text) ? text : '';
  } else if (option.type === 'flag') {
    // Its `value` says whether it is on, as the other fields' text does.
    input = h('input', { ...common, type: 'checkbox' });
    input.checked = text === 'true';
    input.value = input.checked ? 'true' : '';
    input.addEventListener('change', () => { input.value = input.checked ? 'true' : ''; });
  } else if (option.type === 'env') {
    input = h('textarea', { ...typed, rows: 4, value: text });
  } else {
    // text, list, argv, and any type this page does not know yet: one line of text.
    input = h('input', { ...typed, type: 'text', value: text });
    if (values.length) {
      suggestions = h('datalist', { id: `${id}-values` }, values.map((v) => h('option', { value: v })));
      input.setAttribute('list', suggestions.id);
    }
  }
  const el = h('div', { class: isWide(option) ? 'field wide' : 'field' },
    h('label', { htmlFor: id, text: option.label || option.name }),
    input,
    suggestions,
    option.help ? h('p', { id: helpId, class: 'muted small', text: option.help }) : null);
  return { el, input };
}

/**
 * The value of `option` in the request body for what its field holds, or undefined
 * when it is empty. Throws an Error naming the field when the text does not parse.
 */
export function optionValue(option, text) {
  const label = option.label || option.name;
  switch (option.type) {
    case 'list': {
      const words = text.split(/[\s,]+/).filter(Boolean);
      return words.length ? words : undefined;
    }
    case 'argv': {
      let argv;
      try { argv = splitArgs(text); } catch (err) { throw new Error(`${label}: ${err.message}`); }
      return argv.length ? argv : undefined;
    }
    case 'env': {
      const env = {};
      text.split('\n').forEach((line, i) => {
        const t = line.trim();
        if (!t || t.startsWith('#')) return;
        const eq = t.indexOf('=');
        if (eq <= 0) throw new Error(`${label}: line ${i + 1} is not NAME=value.`);
        env[t.slice(0, eq).trim()] = t.slice(eq + 1);
      });
      return Object.keys(env).length ? env : undefined;
    }
    case 'flag':
      return text === 'true' ? true : undefined;
    default:
      return text.trim() || undefined;
  }
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
