#!/usr/bin/env node
// A scripted stand-in for Claude Code (`--claude-binary`) for the browser tests. It
// prints, in Claude Code's stream-json format, the turn a message asks for:
//
// * anything else: a turn that uses every kind of content the page must render (an
//   edit, a new file, a failing tool, a long coloured output, Markdown with a table
//   and links);
// * `slow …`: a turn that waits until it is interrupted;
// * `ask bash …`: a Bash call (`touch approved.txt`) that needs permission: it asks with
//   a `can_use_tool` control request and waits for the answer; allowed, it creates the
//   file and says so; denied, it says what it was told;
// * `ask edit …`: the same for an Edit of `src/config.py` (`ask big edit`: a long one);
// * `retry …`: the API cannot be reached: retries (`api_retry`), then Claude Code's own
//   failure text and a failed result;
// * `no key …`: Claude Code is not logged in; `bad key …`: the API refuses the key;
// * `forget me`: the process dies in its turn, in a session that cannot be resumed.
//
// As the server runs Claude Code by default, it is a live session (`--input-format
// stream-json`): one JSON message a line on stdin (control requests first: initialize,
// interrupt), the turns one after another. With the message as the last argument
// (`--session per-turn`) it runs that one turn and exits.

import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

const args = process.argv.slice(2);
if (args.includes('--version')) {
  process.stdout.write('0.0.1 (fake Claude Code for the UI tests)\n');
  process.exit(0);
}
const live = args.includes('--input-format');
const resume = args.indexOf('--resume');
let session = resume >= 0 ? args[resume + 1] : 'fake-ui-session';
// A session this fake "forgot" (see `forget me`): resuming it fails as in Claude Code.
if (session === 'forgotten-session') {
  process.stderr.write(`No conversation found with session ID: ${session}\n`);
  process.exit(1);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let n = 0;

function out(obj) {
  process.stdout.write(`${JSON.stringify({ ...obj, session_id: session })}\n`);
}
function assistant(content) {
  n++;
  out({ type: 'assistant', message: { id: `msg_${n}`, role: 'assistant', content } });
}
function toolResult(id, content, isError = false) {
  out({ type: 'user', message: { role: 'user', content: [{ type: 'tool_result', tool_use_id: id, content, is_error: isError }] } });
}
function result(text, isError = false, subtype = isError ? 'error_during_execution' : 'success') {
  out({
    type: 'result', subtype, is_error: isError, result: text,
    duration_ms: 2345, num_turns: 4, total_cost_usd: 0.0123,
    usage: { input_tokens: 1200, output_tokens: 345, cache_read_input_tokens: 800 },
  });
}

// ---- the control protocol (live sessions) ----

let requests = 0;
const waiting = new Map(); // our request id → resolve(its response)
let interrupted = null; // resolves the running turn's wait when it is interrupted

function controlResponse(requestId, response = {}) {
  process.stdout.write(`${JSON.stringify({ type: 'control_response', response: { subtype: 'success', request_id: requestId, response } })}\n`);
}

/** Asks for permission to use a tool, as Claude Code does; resolves to the answer. */
function canUseTool(toolName, input, toolUseId, suggestions) {
  requests++;
  const id = `r${requests}`;
  process.stdout.write(`${JSON.stringify({
    type: 'control_request',
    request_id: id,
    request: { subtype: 'can_use_tool', tool_name: toolName, input, tool_use_id: toolUseId, permission_suggestions: suggestions },
  })}\n`);
  return new Promise((resolve) => waiting.set(id, resolve));
}

/** Waits `ms`, or less if the turn is interrupted; resolves to whether it was. */
function wait(ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { interrupted = null; resolve(false); }, ms);
    interrupted = () => { clearTimeout(timer); interrupted = null; resolve(true); };
  });
}

// ---- the turns ----

async function askBash(message) {
  const command = 'touch approved.txt';
  assistant([{ type: 'tool_use', id: 'toolu_1', name: 'Bash', input: { command, description: 'Create the file' } }]);
  const answer = await canUseTool('Bash', { command, description: 'Create the file' }, 'toolu_1', [
    { type: 'addRules', rules: [{ toolName: 'Bash', ruleContent: 'touch:*' }], behavior: 'allow', destination: 'localSettings' },
  ]);
  if (answer.behavior === 'allow') {
    fs.writeFileSync(path.join(process.cwd(), 'approved.txt'), `${message}\n`);
    toolResult('toolu_1', '');
    assistant([{ type: 'text', text: 'I created approved.txt.' }]);
    result('I created approved.txt.');
  } else {
    toolResult('toolu_1', `Permission denied: ${answer.message || 'no reason given'}`, true);
    assistant([{ type: 'text', text: `I did not run it: ${answer.message || 'denied'}` }]);
    result(`I did not run it: ${answer.message || 'denied'}`);
  }
}

async function askEdit(message) {
  const big = message.startsWith('ask big');
  const file = path.join(process.cwd(), 'src/config.py');
  const oldString = big ? Array.from({ length: 150 }, (_, i) => `OLD_${i + 1} = ${i + 1}`).join('\n') : 'DEBUG = True\nPORT = 80';
  const newString = big ? Array.from({ length: 150 }, (_, i) => `NEW_${i + 1} = ${i + 1}`).join('\n') : 'DEBUG = False\nPORT = 8080';
  const input = { file_path: file, old_string: oldString, new_string: newString };
  assistant([{ type: 'tool_use', id: 'toolu_edit', name: 'Edit', input }]);
  const answer = await canUseTool('Edit', input, 'toolu_edit', []);
  const allowed = answer.behavior === 'allow';
  toolResult('toolu_edit', allowed ? `The file ${file} has been updated.` : `Permission denied: ${answer.message || ''}`, !allowed);
  assistant([{ type: 'text', text: allowed ? 'Edited.' : 'Not edited.' }]);
  result(allowed ? 'Edited.' : 'Not edited.');
}

async function retries() {
  for (let attempt = 1; attempt <= 3; attempt++) {
    out({ type: 'system', subtype: 'api_retry', attempt, max_retries: 10, retry_delay_ms: 1000 * 2 ** (attempt - 1), error_status: null, error: 'unknown' });
    await sleep(150);
  }
  n++;
  out({ type: 'assistant', error: 'unknown', message: { id: `msg_${n}`, model: '<synthetic>', role: 'assistant', content: [{ type: 'text', text: 'API Error: Unable to connect to API (ECONNREFUSED)' }] } });
  result('API Error: Unable to connect to API (ECONNREFUSED)', true, 'success');
}

function noKey() {
  n++;
  out({ type: 'assistant', error: 'authentication_failed', message: { id: `msg_${n}`, model: '<synthetic>', role: 'assistant', content: [{ type: 'text', text: 'Not logged in · Please run /login' }] } });
  result('Not logged in · Please run /login', true, 'success');
}

async function badKey() {
  // Claude Code retries a refused key; the server ends the turn at the first retry.
  out({ type: 'system', subtype: 'api_retry', attempt: 1, max_retries: 10, retry_delay_ms: 500, error_status: 401, error: 'authentication_failed' });
  if (!(await wait(30000))) result('gave up', true);
}

function forget() {
  session = 'forgotten-session';
  out({ type: 'system', subtype: 'status', status: 'about to die' });
  process.exit(1);
}

async function slow() {
  out({ type: 'system', subtype: 'thinking_tokens', estimated_tokens: 3 });
  assistant([{ type: 'text', text: 'Working on it slowly…' }]);
  if (!(await wait(60000))) result('slept');
}

function everything() {
  out({ type: 'system', subtype: 'thinking_tokens', estimated_tokens: 12 });
  assistant([{ type: 'thinking', thinking: 'Plan: edit the config, write a note, run the tests, then report.' }]);
  assistant([{ type: 'tool_use', id: 'tool_edit', name: 'Edit', input: { file_path: '/project/src/config.py', old_string: 'DEBUG = True\nPORT = 80', new_string: 'DEBUG = False\nPORT = 8080' } }]);
  toolResult('tool_edit', 'The file /project/src/config.py has been updated.');
  assistant([{ type: 'tool_use', id: 'tool_write', name: 'Write', input: { file_path: '/project/NOTES.md', content: '# Notes\n\nPort is now 8080.\n' } }]);
  toolResult('tool_write', 'File created successfully at: /project/NOTES.md');
  assistant([{ type: 'tool_use', id: 'tool_fail', name: 'Bash', input: { command: 'cat /missing/file', description: 'Read a file that is not there' } }]);
  toolResult('tool_fail', 'cat: /missing/file: No such file or directory', true);
  const long = Array.from({ length: 200 }, (_, i) => `\u001b[32mPASS\u001b[0m test_${String(i + 1).padStart(3, '0')}`).join('\n');
  assistant([{ type: 'tool_use', id: 'tool_tests', name: 'Bash', input: { command: ['pytest', '-q', 'tests dir'] } }]);
  toolResult('tool_tests', long);
  assistant([{ type: 'tool_use', id: 'tool_read', name: 'Read', input: { file_path: '/project/README.md', limit: 20 } }]);
  toolResult('tool_read', [{ type: 'text', text: '     1\t# Project' }]);
  assistant([{
    type: 'text',
    text: [
      '## Summary',
      '',
      'I changed **two** things and ran the tests:',
      '',
      '1. Turned `DEBUG` off',
      '2. Moved the port to 8080',
      '',
      '| file | change |',
      '| --- | --- |',
      '| config.py | edited |',
      '| NOTES.md | new |',
      '',
      'See [the docs](https://example.com/docs) and [this](javascript:alert(1)).',
      '',
      '> All 200 tests pass.',
      '',
      '```python',
      'PORT = 8080',
      '```',
    ].join('\n'),
  }]);
  result('done');
}

async function turn(message) {
  out({ type: 'system', subtype: 'init', model: 'fake-model', tools: ['Bash', 'Edit', 'Write', 'Read'], cwd: process.cwd(), permissionMode: 'default' });
  if (message.startsWith('slow')) await slow();
  else if (message.startsWith('ask bash')) await askBash(message);
  else if (message.startsWith('ask edit') || message.startsWith('ask big edit')) await askEdit(message);
  else if (message.startsWith('retry')) await retries();
  else if (message.startsWith('no key')) noKey();
  else if (message.startsWith('bad key')) await badKey();
  else if (message.startsWith('forget me')) forget();
  else everything();
}

if (!live) {
  process.on('SIGINT', () => process.exit(130));
  await turn(args[args.length - 1] || '');
  process.exit(0);
}

// A live session: messages wait for the turn before them, as in Claude Code.
let turns = Promise.resolve();
const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  let msg;
  try { msg = JSON.parse(line); } catch { return; }
  if (msg.type === 'control_request') {
    const subtype = msg.request && msg.request.subtype;
    controlResponse(msg.request_id);
    if (subtype === 'interrupt' && interrupted) {
      interrupted();
      result('interrupted', true);
    }
  } else if (msg.type === 'control_response') {
    const r = msg.response || {};
    const resolve = waiting.get(r.request_id);
    if (resolve) {
      waiting.delete(r.request_id);
      resolve(r.response || {});
    }
  } else if (msg.type === 'user') {
    const content = msg.message && msg.message.content;
    const text = typeof content === 'string' ? content : Array.isArray(content) ? content.map((b) => b.text || '').join('') : '';
    turns = turns.then(() => turn(text));
  }
});
lines.on('close', () => turns.then(() => process.exit(0)));
