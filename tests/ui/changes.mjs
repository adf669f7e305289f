// The Changes view of a worker in a git worktree of its own: its files and their diff,
// side by side at desktop width and unified at phone width, following each turn of the
// agent without a reload (the server's `diff` event after every turn), and a long diff
// drawn a page at a time.

import { openPage, launch, run, log, check, waitFor, shot, sendMessage, waitConn, api, required } from './lib.mjs';

const REPO = required('WH_REPO');

run(async () => {
  const { page, close, assertClean } = await launch();
  try {
    await openPage(page);
    await waitConn(page, 'live');
    const worker = await api('POST', '/api/workers', {
      name: 'changer', ai_cli_type: 'claude', project_path: REPO, isolation: 'worktree', approval: 'auto',
    });
    check(worker.worktree && worker.worktree.branch.startsWith('workerhub/changer-'), 'the worker has its own branch');
    await page.goto(page.url().replace(/#.*$/, '') + `#/w/${worker.id}`);
    await waitFor(async () => page.isVisible('#changes-toggle'), 'the Changes button of a worktree worker');
    await page.click('#changes-toggle');
    await waitFor(async () => (await page.textContent('#changes')).includes('No changes'), 'the empty Changes view');
    // Marks this page: a reload would lose it.
    await page.evaluate(() => { window.__notReloaded = true; });

    await sendMessage(page, 'ask bash one');
    await waitFor(async () => (await page.textContent('#changes')).includes('ask bash one'), 'the first turn\'s file in the Changes view', 30000);
    check(await page.isVisible('.changes-file.status-new'), 'the file is listed as new');
    check(await page.isVisible('#changes .diff-split'), 'side by side at desktop width');
    await shot(page, 'changes-desktop');

    await sendMessage(page, 'ask bash two');
    await waitFor(async () => {
      const text = await page.textContent('#changes');
      return text.includes('ask bash two') && !text.includes('ask bash one');
    }, 'the second turn\'s change in the Changes view', 30000);
    check(await page.evaluate(() => window.__notReloaded === true), 'the view followed the turns without a reload');
    check((await page.$$('#rows .diff-event')).length >= 2, 'each turn\'s diff event is in the conversation');

    await page.setViewportSize({ width: 390, height: 800 });
    await waitFor(async () => (await page.$('#changes .changes-unified')) !== null, 'the unified diff at phone width');
    check((await page.$('#changes .diff-split')) === null, 'no side-by-side table on a phone');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `the page fits a phone's width (${overflow}px too wide)`);
    await page.waitForTimeout(500); // the sidebar's slide out, for the screenshot
    await shot(page, 'changes-phone');

    // A long change is drawn a page at a time.
    const long = await api('POST', '/api/workers', {
      name: 'long', command: ['sh', '-c', 'i=0; while [ $i -lt 1000 ]; do i=$((i+1)); echo "line $i"; done > long.txt'],
      project_path: REPO, isolation: 'worktree',
    });
    await waitFor(async () => (await api('GET', `/api/workers/${long.id}`)).status === 'exited', 'the long writer to end');
    await page.goto(page.url().replace(/#.*$/, '') + `#/w/${long.id}`);
    await waitFor(async () => page.isVisible('#changes'), 'the Changes view stays open for the next worker');
    await waitFor(async () => page.isVisible('#changes .changes-more'), 'a "Show more" button for a long file', 15000);
    const before = (await page.$$('#changes .changes-unified span')).length;
    await page.click('#changes .changes-more');
    const after = (await page.$$('#changes .changes-unified span')).length;
    log(`lines drawn: ${before} then ${after}`);
    check(before <= 300 && after > before, 'the next page of the diff is drawn on request');
    assertClean();
  } finally {
    await close();
  }
});
