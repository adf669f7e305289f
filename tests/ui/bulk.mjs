// 10,000 events: streamed live into an open page, then opened from history. The page
// must stay responsive (input keeps working, no long freeze) and hold every event once,
// while keeping only a window of rows in the document.

import { URL, openPage, launch, run, log, check, checkEqual, waitFor, shot, createWorker, sendMessage, waitConn, pageState, api, required } from './lib.mjs';

const PROJECT = required('WH_PROJECT');
const N = 10000;
// Loose bounds: this checks that the page does not freeze, not how fast it is.
const MAX_TASK_MS = 1500;
const MAX_FRAME_GAP_MS = 2000;

// Long tasks and gaps between animation frames, recorded in the page.
const MONITOR = `
  window.__perf = { longest: 0, longTasks: 0, maxGap: 0, last: 0, running: false };
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        window.__perf.longTasks++;
        window.__perf.longest = Math.max(window.__perf.longest, e.duration);
      }
    }).observe({ type: 'longtask', buffered: true });
  } catch (e) {}
  window.__perfStart = () => {
    const p = window.__perf;
    p.longest = 0; p.longTasks = 0; p.maxGap = 0; p.running = true; p.last = performance.now();
    const frame = (t) => {
      if (!p.running) return;
      p.maxGap = Math.max(p.maxGap, t - p.last);
      p.last = t;
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  };
  window.__perfStop = () => { window.__perf.running = false; return window.__perf; };
`;

run(async () => {
  const { context, page, close, assertClean } = await launch();
  await context.addInitScript(MONITOR);
  try {
    await openPage(page);
    await waitConn(page, 'live');
    const id = await createWorker(page, { kind: 'command', name: 'firehose', path: PROJECT, options: { command: `sh -c 'while read n; do seq -f "row %g" 1 $n; done'` } });
    await waitFor(async () => (await page.textContent('#w-badge')) === 'running', 'the worker to run');

    // Live: 10,000 lines as fast as the program can print them.
    await page.evaluate(() => window.__perfStart());
    const t0 = Date.now();
    await sendMessage(page, String(N));
    // Type while the lines pour in: the input must keep up.
    await page.click('#composer-input');
    const typed = 'typing while ten thousand lines arrive';
    const typeStart = Date.now();
    await page.keyboard.type(typed, { delay: 15 });
    const typeMs = Date.now() - typeStart;
    const last = await waitFor(async () => {
      const w = await api('GET', `/api/workers/${id}`);
      const st = await pageState(page);
      return st.lastSeq === w.last_seq && w.last_seq >= N + 3 ? w.last_seq : null;
    }, 'the page to receive all 10,000 lines', 90000, 200);
    const liveMs = Date.now() - t0;
    const perf = await page.evaluate(() => window.__perfStop());
    log(`live: ${N} lines in ${liveMs} ms; typing took ${typeMs} ms; longest task ${Math.round(perf.longest)} ms (${perf.longTasks} long tasks); longest gap between frames ${Math.round(perf.maxGap)} ms`);
    checkEqual(await page.inputValue('#composer-input'), typed, 'what was typed during the stream is all there');
    check(perf.longest < MAX_TASK_MS, `no task blocked the page for long (longest ${Math.round(perf.longest)} ms)`);
    check(perf.maxGap < MAX_FRAME_GAP_MS, `the page kept painting (longest gap ${Math.round(perf.maxGap)} ms)`);

    let st = await pageState(page);
    const expected = Array.from({ length: last }, (_, i) => i + 1);
    checkEqual(st.seqs, expected, 'the page holds every event once, in order');
    check(st.domSeqs.length <= 3000, `only a window of rows is in the document (${st.domSeqs.length})`);
    const domTail = expected.slice(expected.length - st.domSeqs.length);
    checkEqual(st.domSeqs, domTail, 'the rows on the page are the latest events, in order');
    checkEqual(await page.$eval('#rows .row.out:last-of-type', (e) => e.textContent), `row ${N}`, 'the last line is shown');
    const atEnd = await page.evaluate(() => { const c = document.getElementById('conv'); return c.scrollHeight - c.scrollTop - c.clientHeight < 40; });
    check(atEnd, 'the view followed the stream to the end');
    await page.fill('#composer-input', '');
    await shot(page, '14-ten-thousand-lines');

    // From history: open the worker in a fresh page load, and scroll back to the start.
    await page.reload();
    await waitConn(page, 'live');
    await page.evaluate(() => window.__perfStart());
    const t1 = Date.now();
    await waitFor(async () => (await pageState(page)).lastSeq === last, 'the history to load');
    log(`history: the end of ${last} events shown in ${Date.now() - t1} ms`);
    st = await pageState(page);
    check(st.domSeqs.length <= 3000, `a window of rows after the reload (${st.domSeqs.length})`);
    const t2 = Date.now();
    let steps = 0;
    while (!(await page.isVisible('#history-start'))) {
      check(steps++ < 200, 'reached the start of the history by scrolling up');
      await page.$eval('#conv', (c) => { c.scrollTop = 0; });
      await page.waitForTimeout(60);
    }
    const perf2 = await page.evaluate(() => window.__perfStop());
    log(`history: scrolled back to the first of ${last} events in ${Date.now() - t2} ms (${steps} steps); longest task ${Math.round(perf2.longest)} ms; longest gap between frames ${Math.round(perf2.maxGap)} ms`);
    check(perf2.longest < MAX_TASK_MS, `no task blocked the page while loading history (longest ${Math.round(perf2.longest)} ms)`);
    st = await pageState(page);
    checkEqual(st.seqs, expected, 'after scrolling back, the page holds every event once, in order');
    check(st.domSeqs[0] === 1, `the first event is on the page (${st.domSeqs[0]})`);
    check(st.domSeqs.length <= 3000, `still only a window of rows (${st.domSeqs.length})`);
    checkEqual(st.domSeqs, expected.slice(0, st.domSeqs.length), 'the rows are the first events, in order');
    await shot(page, '15-ten-thousand-lines-start');

    // And back to the end.
    await page.click('#jump-latest');
    await waitFor(async () => (await page.$eval('#rows .row:last-child', (e) => e.textContent)) === `row ${N}`, 'the end after jumping');
    // The composer works with all this on the page.
    await sendMessage(page, '3');
    await waitFor(async () => (await page.$eval('#rows .row:last-child', (e) => e.textContent)) === 'row 3', 'a new message after the big history');
    assertClean();
  } finally {
    await close();
  }
});
