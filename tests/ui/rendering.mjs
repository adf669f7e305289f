// Every kind of content rendered for what it is, from a scripted agent (fake-claude.mjs
// as `--claude-binary`, parsed by the real server): an edit as path and change, a new
// file, a failing tool marked as an error, a long coloured output collapsed with a way
// to expand it, Markdown (heading, ordered list, table, quote, code, links, and a
// javascript: link that must not become one), thinking collapsed, the result line.
// Then the buttons on a busy AI worker: Interrupt, and Stop dropping the queue.

import { openPage, audit, launch, run, check, checkEqual, waitFor, shot, createWorker, sendMessage, waitConn, pageState, history, required } from './lib.mjs';

const PROJECT = required('WH_PROJECT');

const card = (page, id) => page.$eval(`#rows .card[data-tool-id="${id}"]`, (c) => ({
  name: c.querySelector('.tool-name').textContent,
  summary: c.querySelector('.tool-summary').textContent,
  state: c.querySelector('.tool-state').textContent,
  error: c.classList.contains('error'),
  path: c.querySelector('.edit-path') && c.querySelector('.edit-path').textContent,
  del: Array.from(c.querySelectorAll('.diff .del'), (e) => e.textContent),
  add: Array.from(c.querySelectorAll('.diff .add'), (e) => e.textContent),
  cmd: c.querySelector('.cmd') && c.querySelector('.cmd').textContent,
  output: c.querySelector('.tool-output') && c.querySelector('.tool-output').textContent,
  label: c.querySelector('.section-label') && c.querySelector('.section-label').textContent,
  more: c.querySelector('.collapse-note button') && c.querySelector('.collapse-note button').textContent,
}));

run(async () => {
  const { page, close, assertClean } = await launch({ viewport: { width: 1100, height: 900 } });
  try {
    await openPage(page);
    await waitConn(page, 'live');
    const id = await createWorker(page, { kind: 'claude', name: 'scripted', path: PROJECT });
    await sendMessage(page, 'show everything');
    await waitFor(() => page.$('#rows .row.result'), 'the turn to end');

    const edit = await card(page, 'tool_edit');
    checkEqual({ name: edit.name, summary: edit.summary, path: edit.path, del: edit.del, add: edit.add, error: edit.error },
      { name: 'Edit', summary: '/project/src/config.py', path: '/project/src/config.py', del: ['- DEBUG = True', '- PORT = 80'], add: ['+ DEBUG = False', '+ PORT = 8080'], error: false },
      'an edit is shown as the path and the change');
    const write = await card(page, 'tool_write');
    check(write.path.startsWith('/project/NOTES.md') && write.add.includes('+ Port is now 8080.'), `a new file shows its path and content (${JSON.stringify(write)})`);
    const fail = await card(page, 'tool_fail');
    checkEqual({ error: fail.error, state: fail.state, label: fail.label, cmd: fail.cmd },
      { error: true, state: 'error', label: 'Error', cmd: 'cat /missing/file' }, 'a failing tool is marked as an error');
    const tests = await card(page, 'tool_tests');
    checkEqual(tests.cmd, "pytest -q 'tests dir'", 'a command given as argv is shown as a command line');
    check(tests.output.split('\n').length === 12 && tests.more === 'Show all', `a long output is collapsed (${tests.output.split('\n').length} lines shown)`);
    check(!tests.output.includes('\u001b') && !tests.output.includes('[32m'), 'no escape code is shown');
    checkEqual(await page.$eval('#rows .card[data-tool-id="tool_tests"] .tool-output span', (s) => [s.className, s.textContent]), ['ansi-fg-2', 'PASS'], 'ANSI colours in tool output are rendered');
    await page.click('#rows .card[data-tool-id="tool_tests"] .collapse-note button');
    const expanded = await card(page, 'tool_tests');
    check(expanded.output.split('\n').length === 200 && expanded.output.endsWith('PASS test_200'), 'expanding shows all 200 lines');
    checkEqual(expanded.more, 'Show less', 'and can collapse again');
    const read = await card(page, 'tool_read');
    checkEqual(read.summary, '/project/README.md', 'a read shows the path');

    const md = await page.evaluate(() => {
      const el = document.querySelector('#rows .row.assistant .md');
      return {
        h2: el.querySelector('h2') && el.querySelector('h2').textContent,
        ol: Array.from(el.querySelectorAll('ol li'), (li) => li.textContent),
        code: Array.from(el.querySelectorAll('li code'), (c) => c.textContent),
        cells: Array.from(el.querySelectorAll('table td'), (td) => td.textContent),
        links: Array.from(el.querySelectorAll('a'), (a) => [a.textContent, a.getAttribute('href'), a.rel]),
        quote: el.querySelector('blockquote') && el.querySelector('blockquote').textContent,
        block: el.querySelector('.codeblock code') && el.querySelector('.codeblock code').textContent,
        lang: el.querySelector('.codeblock-head span') && el.querySelector('.codeblock-head span').textContent,
        text: el.textContent,
      };
    });
    checkEqual(md.h2, 'Summary', 'heading');
    checkEqual(md.ol, ['Turned DEBUG off', 'Moved the port to 8080'], 'ordered list');
    checkEqual(md.code, ['DEBUG'], 'inline code');
    checkEqual(md.cells, ['config.py', 'edited', 'NOTES.md', 'new'], 'table');
    checkEqual(md.links, [['the docs', 'https://example.com/docs', 'noopener noreferrer nofollow']], 'only the https link is a link');
    check(md.text.includes('[this](javascript:alert(1))'), 'the javascript: link stays text');
    checkEqual(md.quote, 'All 200 tests pass.', 'block quote');
    checkEqual([md.block, md.lang], ['PORT = 8080', 'python'], 'fenced code block with its language');
    const thinking = await page.$eval('#rows details.thinking', (d) => d.open);
    check(!thinking, 'thinking is collapsed');
    const result = await page.$eval('#rows .row.result', (e) => e.textContent);
    check(result.includes('2.3 s') && result.includes('$0.0123') && result.includes('1,200 in · 345 out · 800 cached') && result.includes('4 turns'), `the result line (${result})`);

    // Quiet events (system details, status changes) are there, hidden until asked for.
    const hiddenQuiet = await page.$$eval('#rows .row.quiet', (els) => els.filter((e) => e.offsetParent === null).length);
    check(hiddenQuiet > 0, 'quiet events are hidden by default');
    await page.check('#show-quiet');
    const shownQuiet = await page.$$eval('#rows .row.quiet', (els) => els.filter((e) => e.offsetParent !== null).length);
    check(shownQuiet === hiddenQuiet, 'the "All events" box shows them');
    await page.uncheck('#show-quiet');
    checkEqual((await pageState(page)).domSeqs, (await history(id)).map((e) => e.seq), 'every event has its row');
    await page.$eval('#rows .card[data-tool-id="tool_edit"]', (e) => e.scrollIntoView());
    await shot(page, '19-rendering-tools');
    await audit(page, 'tool cards and Markdown');
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.$eval('#rows .row.assistant', (e) => e.scrollIntoView());
    await shot(page, '20-rendering-markdown-dark');
    await audit(page, 'tool cards and Markdown, dark');
    await page.emulateMedia({ colorScheme: 'light' });

    // Interrupt a running turn with the button.
    await sendMessage(page, 'slow one');
    await waitFor(async () => (await page.textContent('#w-badge')) === 'busy', 'the slow turn to run');
    await waitFor(() => page.isVisible('#working'), 'the working indicator');
    check(!(await page.isDisabled('#act-interrupt')), 'Interrupt is offered while busy');
    await page.click('#act-interrupt');
    await waitFor(() => page.$('#rows .row.status.notice >> text=Turn interrupted'), 'the turn to be interrupted');
    await waitFor(async () => (await page.textContent('#w-badge')) === 'idle', 'the worker to be idle again');
    check(await page.isHidden('#working'), 'the working indicator is gone');

    // Stop: ends the turn and drops the queue; the dropped message says so.
    await sendMessage(page, 'slow two');
    await waitFor(async () => (await page.textContent('#w-badge')) === 'busy', 'the second slow turn');
    await sendMessage(page, 'never runs');
    await waitFor(async () => (await page.$$eval('#rows .row.user .state', (els) => els.map((e) => e.textContent))).includes('queued #1'), 'the queued message');
    await page.click('#act-stop');
    await waitFor(() => page.$('#rows .row.status.notice >> text=Turn stopped'), 'the turn to be stopped');
    await waitFor(async () => {
      const bubbles = await page.$$eval('#rows .row.user', (els) => els.map((e) => [e.querySelector('.body').textContent, e.querySelector('.state').textContent]));
      return bubbles.some(([text, state]) => text === 'never runs' && state === 'dropped');
    }, 'the queued message to show as dropped');
    await shot(page, '21-interrupt-and-stop');
    assertClean();
  } finally {
    await close();
  }
});
