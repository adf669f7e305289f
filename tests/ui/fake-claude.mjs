#!/usr/bin/env node
// A scripted stand-in for Claude Code (`--claude-binary`), for the page's rendering
// test: it prints, in Claude Code's stream-json format, a turn that uses every kind of
// content the page must render (an edit, a new file, a failing tool, a long coloured
// output, Markdown with a table and links), or, for "slow", a turn that waits until it
// is interrupted. The message (the last argument) picks the turn.

const args = process.argv.slice(2);
if (args.includes('--version')) {
  process.stdout.write('0.0.1 (fake Claude Code for the UI tests)\n');
  process.exit(0);
}
const message = args[args.length - 1] || '';
const resume = args.indexOf('--resume');
const session = resume >= 0 ? args[resume + 1] : 'fake-ui-session';
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
function result(text, isError = false) {
  out({
    type: 'result', subtype: isError ? 'error_during_execution' : 'success', is_error: isError, result: text,
    duration_ms: 2345, num_turns: 4, total_cost_usd: 0.0123,
    usage: { input_tokens: 1200, output_tokens: 345, cache_read_input_tokens: 800 },
  });
}

out({ type: 'system', subtype: 'init', model: 'fake-model', tools: ['Bash', 'Edit', 'Write', 'Read'], cwd: process.cwd(), permissionMode: 'default' });

if (message.startsWith('slow')) {
  out({ type: 'system', subtype: 'thinking_tokens', estimated_tokens: 3 });
  assistant([{ type: 'text', text: 'Working on it slowly…' }]);
  // Until interrupted (SIGINT) or killed.
  process.on('SIGINT', () => process.exit(130));
  setTimeout(() => { result('slept'); process.exit(0); }, 60000);
} else {
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
