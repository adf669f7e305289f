#!/usr/bin/env node
// A scripted Agent Client Protocol agent for what the page does with a plan that
// changes and a tool call that goes on for a while (tests/fake_cli/acp-agent.mjs covers
// the rest). JSON-RPC 2.0 on stdio, one message a line. Every prompt runs one turn:
//
//   plan v1 (1 of 3 in progress), `npm test` (execute) pending, then in progress;
//   waits until the file `.acp-go` is in its folder (the test says when);
//   `npm test` completed with its output, plan v2, an edit of src/util.js with a long
//   diff, completed, plan v3 (all done), "All done."
import { createInterface } from 'node:readline';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const send = (msg) => process.stdout.write(JSON.stringify({ jsonrpc: '2.0', ...msg }) + '\n');
const update = (sessionId, u) => send({ method: 'session/update', params: { sessionId, update: u } });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let cwd = process.cwd();

const plan = (s, statuses) => update(s, {
  sessionUpdate: 'plan',
  entries: [
    { content: 'Run the tests', priority: 'high', status: statuses[0] },
    { content: 'Rename the helper', priority: 'medium', status: statuses[1] },
    { content: 'Update the docs', priority: 'low', status: statuses[2] },
  ],
});

// A file of 120 lines in which every third line changes: a diff far over 40 lines.
const before = Array.from({ length: 120 }, (_, i) => `const value${i} = helper(${i});`).join('\n') + '\n';
const after = before.split('\n').map((l, i) => (i % 3 === 0 ? l.replace('helper', 'assist') : l)).join('\n');

async function prompt(id, params) {
  const s = params.sessionId;
  plan(s, ['in_progress', 'pending', 'pending']);
  update(s, { sessionUpdate: 'tool_call', toolCallId: 'call_tests', title: 'npm test', kind: 'execute', status: 'pending', rawInput: { command: 'npm test' } });
  update(s, { sessionUpdate: 'tool_call_update', toolCallId: 'call_tests', status: 'in_progress' });
  while (!existsSync(join(cwd, '.acp-go'))) await sleep(50);
  update(s, { sessionUpdate: 'tool_call_update', toolCallId: 'call_tests', status: 'completed',
    content: [{ type: 'content', content: { type: 'text', text: '12 passing' } }] });
  plan(s, ['completed', 'in_progress', 'pending']);
  const file = join(cwd, 'src/util.js');
  update(s, { sessionUpdate: 'tool_call', toolCallId: 'call_rename', title: 'Rename helper in src/util.js', kind: 'edit', status: 'in_progress',
    locations: [{ path: file, line: 1 }], content: [{ type: 'diff', path: file, oldText: before, newText: after }] });
  update(s, { sessionUpdate: 'tool_call_update', toolCallId: 'call_rename', status: 'completed' });
  plan(s, ['completed', 'completed', 'completed']);
  update(s, { sessionUpdate: 'agent_message_chunk', content: { type: 'text', text: 'All done.' } });
  send({ id, result: { stopReason: 'end_turn' } });
}

createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  let msg;
  try { msg = JSON.parse(line); } catch { return; }
  const { id, method, params = {} } = msg;
  if (method === 'initialize') send({ id, result: { protocolVersion: 1, agentCapabilities: {}, agentInfo: { name: 'steps-agent', version: '1.0.0' } } });
  else if (method === 'session/new') {
    cwd = params.cwd || cwd;
    send({ id, result: { sessionId: `steps-${process.pid}` } });
  } else if (method === 'session/prompt') prompt(id, params);
  else if (id !== undefined && method) send({ id, error: { code: -32601, message: `unknown method ${method}` } });
});
