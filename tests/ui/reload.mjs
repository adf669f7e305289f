// Reload the page in the middle of a fast stream: afterwards the conversation has every
// event exactly once, in order (the page's seqs and texts are compared with the
// server's history). Then: the scroll position and the selected worker survive a
// reload, and "jump to latest" brings the end back.

import { URL, openPage, launch, run, log, check, checkEqual, waitFor, shot, createWorker, sendMessage, waitConn, pageState, api, history, required } from './lib.mjs';

const PROJECT = required('WH_PROJECT');
const LINES = 1500;

function textOf(ev) {
  if (ev.type === 'output') return ev.content.text;
  if (ev.type === 'user_message') return ev.content;
  return null;
}

run(async () => {
  const { page, close, assertClean } = await launch();
  try {
    await openPage(page);
    await waitConn(page, 'live');
    // Bursts of 10 lines, 20 ms apart: a stream of a few seconds.
    const script = 'while read n; do i=0; while [ $i -lt $n ]; do i=$((i+1)); echo "line $i"; if [ $((i % 10)) -eq 0 ]; then sleep 0.02; fi; done; echo "done $n"; done';
    const id = await createWorker(page, { kind: 'command', name: 'streamer', path: PROJECT, options: { command: `sh -c '${script}'` } });
    await waitFor(async () => (await page.textContent('#w-badge')) === 'running', 'the worker to run');
    await sendMessage(page, String(LINES));
    await waitFor(async () => (await pageState(page)).lastSeq > 200, 'the stream to be under way');
    const before = (await api('GET', `/api/workers/${id}`)).last_seq;
    log('reloading at server seq', before);
    await page.reload();
    await waitConn(page, 'live');
    const final = await waitFor(async () => {
      const w = await api('GET', `/api/workers/${id}`);
      const events = await api('GET', `/api/workers/${id}/events?since=${Math.max(0, w.last_seq - 1)}`);
      const last = events.events[events.events.length - 1];
      return last && last.type === 'output' && last.content.text === `done ${LINES}` ? w.last_seq : null;
    }, 'the stream to end', 60000);
    check(before < final - 100, `the reload happened in the middle of the stream (at ${before} of ${final})`);
    await waitFor(async () => (await pageState(page)).lastSeq === final, 'the page to reach the last event');

    const server = await history(id);
    const seqs = server.map((e) => e.seq);
    checkEqual((await pageState(page)).seqs, seqs, 'the page holds every event of the history exactly once, in order');

    // On the page too: scroll to the start of the history, then compare every row.
    for (let i = 0; i < 40; i++) {
      if (await page.isVisible('#history-start')) break;
      await page.$eval('#conv', (c) => { c.scrollTop = 0; });
      await page.waitForTimeout(150);
    }
    check(await page.isVisible('#history-start'), 'the page reaches the beginning of the history');
    const rows = await page.$$eval('#rows .row', (els) => els.map((e) => ({ seq: Number(e.dataset.seq), type: e.dataset.type, text: e.classList.contains('out') ? e.textContent : null })));
    checkEqual(rows.map((r) => r.seq), seqs, 'the rows on the page are the history, once each, in order');
    const outputs = server.filter((e) => e.type === 'output').map((e) => [e.seq, textOf(e)]);
    const shown = rows.filter((r) => r.type === 'output').map((r) => [r.seq, r.text]);
    checkEqual(shown, outputs, 'each output row shows its line');

    // Scroll to the middle, reload: the same place comes back.
    await page.$eval('#rows', (rowsEl) => {
      const row = rowsEl.querySelector('.row[data-seq="700"]');
      document.getElementById('conv').scrollTop = row.offsetTop - 20;
    });
    await page.waitForTimeout(500);
    check(await page.isVisible('#jump-latest'), 'scrolled up, the page offers to jump to the latest');
    const anchor = await page.evaluate(() => {
      const conv = document.getElementById('conv');
      const row = Array.from(document.querySelectorAll('#rows .row')).find((r) => r.offsetParent && r.offsetTop + r.offsetHeight > conv.scrollTop);
      return Number(row.dataset.seq);
    });
    await shot(page, '11-scrolled-up-jump-to-latest');
    await page.reload();
    await waitConn(page, 'live');
    checkEqual(await page.evaluate(() => window.location.hash), `#/w/${id}`, 'the selected worker survives the reload');
    const again = await waitFor(() => page.evaluate(() => {
      const conv = document.getElementById('conv');
      const row = Array.from(document.querySelectorAll('#rows .row')).find((r) => r.offsetParent && r.offsetTop + r.offsetHeight > conv.scrollTop);
      return row ? Number(row.dataset.seq) : null;
    }), 'rows after the reload');
    check(Math.abs(again - anchor) <= 1, `the scroll position survives the reload (row ${anchor} at the top before, ${again} after)`);

    await page.click('#jump-latest');
    await waitFor(() => page.evaluate(() => {
      const c = document.getElementById('conv');
      return c.scrollHeight - c.scrollTop - c.clientHeight < 40;
    }), 'the view to be at the end');
    const lastRow = await page.$eval('#rows .row:last-child', (e) => e.textContent);
    checkEqual(lastRow, `done ${LINES}`, 'the last line is on screen');
    check(await page.isHidden('#jump-latest'), 'following again, the jump button is gone');

    // A new line arrives while following: the view stays at the end.
    await sendMessage(page, '3');
    await waitFor(async () => (await page.$eval('#rows .row:last-child', (e) => e.textContent)) === 'done 3', 'the new lines');
    const atEnd = await page.evaluate(() => { const c = document.getElementById('conv'); return c.scrollHeight - c.scrollTop - c.clientHeight < 40; });
    check(atEnd, 'the view sticks to the end while following');
    assertClean();
  } finally {
    await close();
  }
});
