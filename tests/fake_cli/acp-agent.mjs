#!/usr/bin/env node
// A scripted Agent Client Protocol agent for what real agents won't do on demand. It
// speaks JSON-RPC 2.0 on stdio, one message a line; the prompt's text picks the
// behaviour:
//   "plan ..."     thought and message chunks, a plan, an edit tool call with a diff,
//                  its completion
//   "ask ..."      asks permission to write acp-approved.txt in its folder; writes it
//                  when allowed, ends "cancelled" when the turn is cancelled
//   "unknown ..."  an update kind and a notification no client knows, and a request
//                  the client does not offer (fs/read_text_file), then an answer
//   "crash ..."    a chunk, then exits 3 in the middle of the turn
//   "slow ..."     a chunk, then waits until the turn is cancelled
//   "flood ..."    70 permission requests at once; says how each was answered
//   "huge ..."     a permission request whose diff is 2 MB (one 2 MB line)
//   anything else  "echo: " and the text
// Sessions it opened are listed in .acp-sessions in its folder, so that a new process
// can `session/load` them (and refuses ids it never opened).
import { createInterface } from 'node:readline';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const send = (msg) => process.stdout.write(JSON.stringify({ jsonrpc: '2.0', ...msg }) + '\n');
const update = (sessionId, u) => send({ method: 'session/update', params: { sessionId, update: u } });
const chunk = (sessionId, text, kind = 'agent_message_chunk') =>
  update(sessionId, { sessionUpdate: kind, content: { type: 'text', text } });

let cwd = process.cwd();
let nextId = 1000;
const waiting = new Map(); // our request id -> resolve
let cancelled = null; // resolves the running prompt's cancel

const ask = (method, params) =>
  new Promise((resolve) => {
    const id = nextId++;
    waiting.set(id, resolve);
    send({ id, method, params });
  });

const sessionsFile = () => join(cwd, '.acp-sessions');
const known = () => (existsSync(sessionsFile()) ? readFileSync(sessionsFile(), 'utf8').split('\n') : []);

async function prompt(id, params) {
  const s = params.sessionId;
  const text = (params.prompt || []).map((p) => p.text || '').join('');
  let stopReason = 'end_turn';
  const cancel = new Promise((resolve) => (cancelled = resolve));
  if (text.startsWith('plan')) {
    chunk(s, 'Let me ', 'agent_thought_chunk');
    chunk(s, 'think.', 'agent_thought_chunk');
    update(s, {
      sessionUpdate: 'plan',
      entries: [
        { content: 'Read the file', priority: 'high', status: 'completed' },
        { content: 'Fix the typo', priority: 'medium', status: 'in_progress' },
      ],
    });
    update(s, {
      sessionUpdate: 'tool_call', toolCallId: 'call_edit', title: 'Edit notes.txt', kind: 'edit', status: 'pending',
      locations: [{ path: join(cwd, 'notes.txt') }],
      content: [{ type: 'diff', path: join(cwd, 'notes.txt'), oldText: 'helo\n', newText: 'hello\n' }],
      rawInput: { path: 'notes.txt' },
    });
    update(s, { sessionUpdate: 'tool_call_update', toolCallId: 'call_edit', status: 'completed',
      content: [{ type: 'content', content: { type: 'text', text: 'edited' } }] });
    chunk(s, 'Fixed ');
    chunk(s, 'the typo.');
    update(s, { sessionUpdate: 'usage_update', usage: { inputTokens: 10, outputTokens: 5 } });
  } else if (text.startsWith('ask')) {
    update(s, { sessionUpdate: 'tool_call', toolCallId: 'call_write', title: 'Write acp-approved.txt', kind: 'edit', status: 'pending',
      rawInput: { path: 'acp-approved.txt', content: 'yes\n' } });
    const answer = await Promise.race([
      ask('session/request_permission', {
        sessionId: s,
        toolCall: { toolCallId: 'call_write', title: 'Write acp-approved.txt', kind: 'edit', rawInput: { path: 'acp-approved.txt' },
          content: [{ type: 'diff', path: join(cwd, 'acp-approved.txt'), oldText: null, newText: 'yes\n' }] },
        options: [
          { optionId: 'allow-once', name: 'Allow', kind: 'allow_once' },
          { optionId: 'allow-always', name: 'Always allow', kind: 'allow_always' },
          { optionId: 'reject-once', name: 'Reject', kind: 'reject_once' },
        ],
      }),
      cancel.then(() => new Promise((r) => setTimeout(() => r({ outcome: { outcome: 'late' } }), 2000))),
    ]);
    const outcome = answer.outcome || {};
    if (outcome.outcome === 'selected' && outcome.optionId.startsWith('allow')) {
      writeFileSync(join(cwd, 'acp-approved.txt'), 'yes\n');
      update(s, { sessionUpdate: 'tool_call_update', toolCallId: 'call_write', status: 'completed' });
      chunk(s, `Wrote it (${outcome.optionId}).`);
    } else if (outcome.outcome === 'selected') {
      update(s, { sessionUpdate: 'tool_call_update', toolCallId: 'call_write', status: 'failed',
        content: [{ type: 'content', content: { type: 'text', text: 'rejected by the user' } }] });
      chunk(s, 'I did not write it.');
    } else {
      stopReason = 'cancelled';
      chunk(s, `permission outcome: ${outcome.outcome}`);
    }
  } else if (text.startsWith('unknown')) {
    update(s, { sessionUpdate: 'brand_new_kind', detail: 42 });
    send({ method: 'agent/whatever', params: { x: 1 } });
    const reply = await ask('fs/read_text_file', { sessionId: s, path: join(cwd, 'x') });
    chunk(s, `client said: ${reply.error ? reply.error.code : 'ok'}`);
  } else if (text.startsWith('crash')) {
    chunk(s, 'about to crash');
    setTimeout(() => process.exit(3), 50);
    return;
  } else if (text.startsWith('huge')) {
    const big = 'x'.repeat(2 * 1024 * 1024) + '\n';
    const answer = await ask('session/request_permission', {
      sessionId: s,
      toolCall: { toolCallId: 'call_huge', title: 'Write big.txt', kind: 'edit',
        content: [{ type: 'diff', path: join(cwd, 'big.txt'), oldText: null, newText: big }] },
      options: [
        { optionId: 'allow-once', name: 'Allow', kind: 'allow_once' },
        { optionId: 'reject-once', name: 'Reject', kind: 'reject_once' },
      ],
    });
    chunk(s, `huge answered: ${(answer.outcome || {}).optionId || (answer.outcome || {}).outcome}`);
  } else if (text.startsWith('flood')) {
    const asks = [];
    for (let i = 0; i < 70; i++) {
      asks.push(ask('session/request_permission', {
        sessionId: s,
        toolCall: { toolCallId: `flood_${i}`, title: `touch flood-${i}`, kind: 'execute' },
        options: [
          { optionId: 'allow-once', name: 'Allow', kind: 'allow_once' },
          { optionId: 'reject-once', name: 'Reject', kind: 'reject_once' },
        ],
      }));
    }
    const answers = await Promise.all(asks);
    const count = (what) => answers.filter((a) => (a.outcome || {}).optionId === what || (a.outcome || {}).outcome === what).length;
    chunk(s, `rejected ${count('reject-once')}, cancelled ${count('cancelled')}`);
  } else if (text.startsWith('slow')) {
    chunk(s, 'working slowly');
    await cancel;
    stopReason = 'cancelled';
  } else {
    chunk(s, `echo: ${text}`);
  }
  cancelled = null;
  send({ id, result: { stopReason } });
}

function handle(msg) {
  if (msg.method === undefined && msg.id !== undefined) {
    const resolve = waiting.get(msg.id);
    waiting.delete(msg.id);
    if (resolve) resolve(msg.error ? { error: msg.error } : msg.result || {});
    return;
  }
  const { id, method, params = {} } = msg;
  switch (method) {
    case 'initialize':
      return send({ id, result: { protocolVersion: 1, agentCapabilities: { loadSession: true }, agentInfo: { name: 'acp-agent', version: '1.0.0' } } });
    case 'session/new': {
      cwd = params.cwd || cwd;
      const sessionId = `sess-${process.pid}-${Date.now()}`;
      appendFileSync(sessionsFile(), sessionId + '\n');
      return send({ id, result: { sessionId } });
    }
    case 'session/load':
      cwd = params.cwd || cwd;
      if (!known().includes(params.sessionId)) {
        return send({ id, error: { code: -32002, message: `no session ${params.sessionId}` } });
      }
      update(params.sessionId, { sessionUpdate: 'user_message_chunk', content: { type: 'text', text: '(history)' } });
      return send({ id, result: null });
    case 'session/prompt':
      prompt(id, params);
      return;
    case 'session/cancel':
      if (cancelled) cancelled();
      return;
    default:
      if (id !== undefined) send({ id, error: { code: -32601, message: `unknown method ${method}` } });
  }
}

createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  try {
    handle(JSON.parse(line));
  } catch (e) {
    process.stderr.write(`bad line: ${e}\n`);
  }
});
