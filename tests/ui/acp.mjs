// Agent Client Protocol agents in the page, against the real server running `acp`
// workers: the scripted agent tests/fake_cli/acp-agent.mjs, and acp-steps-agent.mjs (a
// plan that changes and a tool call that goes on for a while):
//
// * a plan is a checklist (✓ done, ◐ in progress, ○ pending, priority in small print),
//   a labelled list whose entries say their status in words;
// * a tool call's card shows its kind, title, status, files and its diff (the approvals
//   card's rendering), and its text output; thinking and the answer show as they do for
//   every CLI;
// * an `ask` turn shows the approval card with the diff; Allow writes the file;
// * a plan changed within a turn shows once, its latest state, the earlier ones folded
//   away (shown with "All events"); a call's status follows its updates live; a long
//   diff is cut with "Show all"; a reload shows the same;
// * nothing overflows sideways at phone width (390 px); no serious accessibility problem.
//
// Environment (besides lib.mjs's): WH_PROJECT (a folder for the workers' projects).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openPage, audit, launch, run, check, checkEqual, waitFor, shot, sendMessage, waitConn, pageState, api, history, required, sleep } from './lib.mjs';

const PROJECT = required('WH_PROJECT');
const here = path.dirname(fileURLToPath(import.meta.url));
const FAKE_AGENT = path.resolve(here, '../fake_cli/acp-agent.mjs');
const STEPS_AGENT = path.resolve(here, 'acp-steps-agent.mjs');

/** Creates an `acp` worker running `agent` in `dir` and opens it in the page. */
async function openAgent(page, name, agent, dir) {
  fs.mkdirSync(dir, { recursive: true });
  const worker = await api('POST', '/api/workers', { name, ai_cli_type: 'acp', project_path: dir, command: ['node', agent] });
  await page.evaluate((id) => { window.location.hash = `#/w/${encodeURIComponent(id)}`; }, worker.id);
  await waitFor(async () => (await pageState(page)).id === worker.id, `the page to open ${name}`);
  await waitConn(page, 'live');
  return worker.id;
}

/** The plans in the conversation: the shown ones, and the superseded ones. */
const plans = (page) => page.$$eval('#rows .row.plan-row', (rows) => rows.map((r) => ({
  superseded: r.classList.contains('superseded'),
  visible: r.offsetParent !== null,
  label: r.querySelector('.plan-list').getAttribute('aria-label'),
  entries: Array.from(r.querySelectorAll('.plan-entry'), (e) => ({
    status: e.dataset.status,
    mark: e.querySelector('.plan-mark').textContent,
    text: e.querySelector('.plan-text').textContent,
    priority: e.querySelector('.plan-priority') && e.querySelector('.plan-priority').textContent,
    spoken: e.querySelector('.plan-text').textContent + e.querySelector('.visually-hidden').textContent,
  })),
})));

/** What a tool call's card shows. */
const toolCard = (page, id) => page.$eval(`#rows .card.tool[data-tool-id="${id}"]`, (c) => ({
  kind: c.querySelector('.tool-kind') && !c.querySelector('.tool-kind').hidden ? c.querySelector('.tool-kind').textContent : null,
  title: c.querySelector('.tool-title').textContent,
  state: c.querySelector('.tool-state').textContent,
  locations: Array.from(c.querySelectorAll('.tool-locations li'), (l) => l.textContent),
  diff: Array.from(c.querySelectorAll('.tool-diff > span'), (l) => [l.className, l.textContent]),
  diffLabel: c.querySelector('.tool-diff') && c.querySelector('.tool-diff').getAttribute('aria-label'),
  more: c.querySelector('.tool-diffs .collapse-note button') && c.querySelector('.tool-diffs .collapse-note button').textContent,
  output: c.querySelector('.tool-output') && c.querySelector('.tool-output').textContent,
  cmd: c.querySelector('.cmd') && c.querySelector('.cmd').textContent,
  summary: c.querySelector('summary').textContent,
})).catch(() => null);

/** Horizontal overflow of the page and the conversation, in pixels. */
const overflow = (page) => page.evaluate(() => {
  const conv = document.getElementById('conv');
  return { page: document.documentElement.scrollWidth - window.innerWidth, conv: conv.scrollWidth - conv.clientWidth };
});

run(async () => {
  const { page, close, assertClean } = await launch({ viewport: { width: 1100, height: 900 } });
  try {
    await openPage(page);
    await waitConn(page, 'live');

    // ---- 1. a plan, thinking, an edit with its diff, the answer ----
    const dir = path.join(PROJECT, 'typo');
    const id = await openAgent(page, 'acp-typo', FAKE_AGENT, dir);
    await sendMessage(page, 'plan fix the typo');
    await waitFor(() => page.$('#rows .row.result'), 'the plan turn to end');

    const [plan] = await plans(page);
    checkEqual(plan.entries.map(({ status, mark, text, priority }) => [status, mark, text, priority]),
      [['completed', '✓', 'Read the file', 'high'], ['in_progress', '◐', 'Fix the typo', 'medium']],
      'the plan is a checklist with a mark for each status and the priority');
    checkEqual(plan.label, 'Plan: 1 of 2 done, 1 in progress', 'the list is labelled with its progress');
    checkEqual(plan.entries.map((e) => e.spoken), ['Read the file: done, high priority', 'Fix the typo: in progress, medium priority'],
      'each entry says its status in words');
    check(plan.visible && !plan.superseded, 'the plan shows');

    const edit = await toolCard(page, 'call_edit');
    checkEqual({ kind: edit.kind, title: edit.title, state: edit.state, locations: edit.locations },
      { kind: 'edit', title: 'Edit notes.txt', state: 'completed', locations: ['notes.txt'] },
      'the tool card shows the kind, the title, the status and the file');
    checkEqual(edit.diff, [['hdr', '--- notes.txt'], ['hdr', '+++ notes.txt'], ['hunk', '@@ -1,1 +1,1 @@'], ['del', '-helo'], ['add', '+hello']],
      'the edit shows its diff');
    checkEqual(edit.diffLabel, 'Change to notes.txt', 'the diff is labelled');
    checkEqual(edit.output, 'edited', 'the text the call returned shows as its output');
    const diffStyle = await page.$eval('#rows .card.tool[data-tool-id="call_edit"] .tool-diff', (box) => {
      const style = (sel) => { const s = getComputedStyle(box.querySelector(sel)); return [s.color, s.backgroundColor]; };
      return { mono: getComputedStyle(box).fontFamily, add: style('.add'), del: style('.del') };
    });
    check(/mono/i.test(diffStyle.mono) && diffStyle.add.join() !== diffStyle.del.join(), `the diff is monospace and coloured (${JSON.stringify(diffStyle)})`);

    const thinking = await page.$eval('#rows details.thinking', (d) => d.textContent);
    check(thinking.includes('Let me think.'), `the thoughts show as thinking (${thinking})`);
    checkEqual(await page.$$eval('#rows .row.assistant .md', (els) => els.map((e) => e.textContent.trim())), ['Fixed the typo.'], 'the answer shows');
    const order = await page.$$eval('#rows .row', (rows) => rows.map((r) => (r.classList.contains('thinking-row') ? 'thinking'
      : r.classList.contains('plan-row') ? 'plan' : r.classList.contains('tool-row') ? 'tool' : r.classList.contains('assistant') ? 'text' : null)).filter(Boolean));
    checkEqual(order, ['thinking', 'plan', 'tool', 'text'], 'in the order the agent said them');
    const result = await page.$eval('#rows .row.result', (e) => e.textContent);
    check(result.includes('10 in') && result.includes('5 out'), `the result line shows the tokens (${result})`);
    checkEqual(await page.$eval('#rows .row.system-init', (e) => e.textContent), 'Session started · acp-agent 1.0.0', 'the session line names the agent');
    await audit(page, 'a plan and an ACP tool call');
    await shot(page, '40-acp-plan-and-edit');

    // ---- 2. an approval with its diff; Allow writes the file ----
    await sendMessage(page, 'ask to write the file');
    await waitFor(() => page.$('#rows .approval-card[data-state="pending"]'), 'the approval card');
    const ask = await page.$eval('#rows .approval-card[data-state="pending"]', (c) => ({
      tool: c.querySelector('.tool-name').textContent,
      summary: c.querySelector('.tool-summary').textContent,
      path: c.querySelector('.edit-path') && c.querySelector('.edit-path').textContent,
      diff: Array.from(c.querySelectorAll('.approval-diff > span'), (l) => [l.className, l.textContent]),
      buttons: Array.from(c.querySelectorAll('button[data-decision]'), (b) => b.textContent),
    }));
    checkEqual({ tool: ask.tool, summary: ask.summary, path: ask.path, buttons: ask.buttons },
      { tool: 'edit', summary: 'Write acp-approved.txt', path: 'acp-approved.txt', buttons: ['Allow', 'Allow for this session', 'Deny'] },
      'the approval card shows the kind, the call and the answers');
    check(ask.diff.some(([cls, line]) => cls === 'add' && line === '+yes') && ask.diff.some(([cls]) => cls === 'hunk'), `the approval shows the diff (${JSON.stringify(ask.diff)})`);
    checkEqual((await toolCard(page, 'call_write')).state, 'needs approval', 'the tool card says it waits for approval');
    await audit(page, 'an ACP approval');
    await shot(page, '41-acp-approval');
    check(!fs.existsSync(path.join(dir, 'acp-approved.txt')), 'nothing is written before the answer');
    await page.click('#rows .approval-card[data-state="pending"] button[data-decision="allow"]');
    await waitFor(async () => (await page.$eval('#rows .approval-card', (c) => c.dataset.state)) === 'allow', 'the card to resolve');
    await waitFor(() => page.$('#rows .row.assistant >> text=Wrote it (allow-once).'), 'the agent to go on');
    await waitFor(async () => (await toolCard(page, 'call_write')).state === 'completed', 'the tool card to say completed');
    const events = await history(id);
    check(events.some((e) => e.type === 'approval_resolved' && e.decision === 'allow')
      && events.some((e) => e.type === 'output' && e.content.kind === 'tool_result' && e.content.tool_use_id === 'call_write' && !e.content.is_error),
    'the worker\'s events say the call was allowed and completed');
    checkEqual(fs.readFileSync(path.join(dir, 'acp-approved.txt'), 'utf8'), 'yes\n', 'Allow let the agent write the file');

    // A request the page's server does not offer is said in words.
    await sendMessage(page, 'unknown requests');
    await waitFor(() => page.$('#rows .row.assistant >> text=client said: -32601'), 'the unknown turn');
    checkEqual(await page.$eval('#rows .row.unknown-request', (e) => [e.textContent, e.offsetParent !== null]),
      ['The agent asked for fs/read_text_file, which workerhub does not offer; it was told so', true], 'an unknown request is a visible notice');

    // ---- 3. a plan that changes, a call that goes on, a long diff ----
    const stepsDir = path.join(PROJECT, 'steps');
    const steps = await openAgent(page, 'acp-steps', STEPS_AGENT, stepsDir);
    await sendMessage(page, 'go');
    await waitFor(async () => ((await toolCard(page, 'call_tests')) || {}).state === 'in progress', 'the call to be in progress');
    const running = await toolCard(page, 'call_tests');
    checkEqual({ kind: running.kind, title: running.title, cmd: running.cmd }, { kind: 'execute', title: 'npm test', cmd: 'npm test' }, 'a command call shows its command');
    checkEqual((await plans(page)).map((p) => p.label), ['Plan: 0 of 3 done, 1 in progress'], 'the first plan');
    fs.writeFileSync(path.join(stepsDir, '.acp-go'), '');
    await waitFor(() => page.$('#rows .row.result'), 'the steps turn to end');

    const check3 = async (what) => {
      const all = await plans(page);
      checkEqual(all.map((p) => [p.superseded, p.visible]), [[true, false], [true, false], [false, true]],
        `${what}: the earlier plans of the turn are superseded and folded away, the latest shows`);
      checkEqual(all[2].entries.map((e) => [e.mark, e.text, e.priority]), [['✓', 'Run the tests', 'high'], ['✓', 'Rename the helper', 'medium'], ['✓', 'Update the docs', 'low']],
        `${what}: the latest plan is all done`);
      checkEqual(all[2].label, 'Plan: 3 of 3 done', `${what}: and says so`);
      const tests = await toolCard(page, 'call_tests');
      checkEqual([tests.state, tests.output], ['completed', '12 passing'], `${what}: the call completed with its output`);
      const rename = await toolCard(page, 'call_rename');
      checkEqual([rename.kind, rename.state, rename.locations], ['edit', 'completed', ['src/util.js:1']], `${what}: the edit, its file and line`);
      check(rename.diff.length === 40 && /^Show all \d+ lines$/.test(rename.more), `${what}: a long diff is cut (${rename.diff.length} lines, ${rename.more})`);
    };
    await check3('live');
    await page.click('#rows .card.tool[data-tool-id="call_rename"] .tool-diffs .collapse-note button');
    const whole = await toolCard(page, 'call_rename');
    check(whole.diff.length > 100 && whole.more === 'Show less', `"Show all" shows the whole diff (${whole.diff.length} lines)`);
    check(whole.diff.some(([cls, l]) => cls === 'del' && l === '-const value0 = helper(0);') && whole.diff.some(([cls, l]) => cls === 'add' && l === '+const value0 = assist(0);'), 'with what changed');
    // "All events" shows the earlier plans, folded.
    await page.check('#show-quiet');
    const shownAll = await plans(page);
    checkEqual(shownAll.map((p) => p.visible), [true, true, true], 'All events shows the earlier plans');
    checkEqual(await page.$$eval('#rows .row.plan-row.superseded summary', (s) => s.map((e) => e.textContent)),
      ['Earlier plan — 0 of 3 done, 1 in progress; superseded by a later one', 'Earlier plan — 1 of 3 done, 1 in progress; superseded by a later one'], 'each says what it was');
    await audit(page, 'plans with All events');
    await page.uncheck('#show-quiet');
    await shot(page, '42-acp-steps');
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.$eval('#rows .row.plan-row:not(.superseded)', (e) => e.scrollIntoView({ block: 'center' }));
    await shot(page, '43-acp-steps-dark');
    await audit(page, 'plans and ACP tool calls, dark');
    await page.emulateMedia({ colorScheme: 'light' });

    // The same from the history.
    await page.reload();
    await waitConn(page, 'live');
    await waitFor(() => page.$('#rows .row.result'), 'the conversation after a reload');
    await check3('after a reload');

    // ---- 4. phone width ----
    await page.setViewportSize({ width: 390, height: 844 });
    await sleep(400); // the sidebar slides away at this width
    for (const [worker, sel, name] of [[steps, '#rows .card.tool[data-tool-id="call_rename"]', '44-acp-phone-390-steps'], [id, '#rows .row.plan-row', '45-acp-phone-390-plan']]) {
      await page.evaluate((w) => { window.location.hash = `#/w/${encodeURIComponent(w)}`; }, worker);
      await waitFor(async () => (await pageState(page)).id === worker, 'the worker at phone width');
      await waitFor(() => page.$(sel), `${sel} at phone width`);
      await page.$eval(sel, (el) => el.scrollIntoView({ block: 'start' }));
      await shot(page, name);
      const over = await overflow(page);
      check(over.page <= 0 && over.conv <= 0, `nothing overflows sideways at 390 px (${JSON.stringify(over)})`);
      const boxes = await page.$$eval('#rows .card.plan, #rows .card.tool', (cards) => cards.map((c) => { const r = c.getBoundingClientRect(); return [Math.round(r.left), Math.round(r.right)]; }));
      for (const [left, right] of boxes) check(left >= 0 && right <= 390, `a card fits the screen (${left}..${right})`);
    }
    await audit(page, 'ACP at phone width');
    assertClean();
  } finally {
    await close();
  }
});
