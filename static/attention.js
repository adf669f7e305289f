// Tool approvals that wait for a person, on every worker the page knows. The tab's
// title counts them, and one that arrives while the tab is hidden becomes a browser
// notification saying which worker waits and for what; clicking it opens that worker.
// Permission is asked at the first request, and again at the next click or key press
// for browsers that only ask from a gesture; a refusal is never asked again.

import { pendingApprovals } from './list.js';
import { setWaiting } from './title.js';

const MAX_KNOWN = 2000; // approval ids remembered, so that none is announced twice

const supported = () => typeof window.Notification === 'function';

export class Attention {
  /** @param {object} hooks openWorker(id) */
  constructor({ openWorker }) {
    this.openWorker = openWorker;
    this.known = new Set(); // approval ids already seen
    this.shown = new Map(); // approval id → its notification
    this.gestureArmed = false;
  }

  /** The workers as the page knows them now. */
  update(workers) {
    const now = new Map();
    for (const w of workers) {
      for (const a of pendingApprovals(w)) now.set(a.approval_id, { worker: w, approval: a });
    }
    setWaiting(now.size);
    for (const [id, item] of now) {
      if (this.known.has(id)) continue;
      this.known.add(id);
      this.arrived(item);
    }
    if (this.known.size > MAX_KNOWN) this.known = new Set(Array.from(this.known).slice(-MAX_KNOWN / 2));
    // Answered meanwhile (here or elsewhere): its notification has nothing left to say.
    for (const [id, note] of this.shown) {
      if (now.has(id)) continue;
      this.shown.delete(id);
      try { note.close(); } catch { /* already gone */ }
    }
  }

  /** A request nobody here has seen yet. */
  arrived({ worker, approval }) {
    if (!supported()) return;
    this.askPermission();
    if (!document.hidden || Notification.permission !== 'granted') return;
    const name = worker.name || worker.id;
    const what = [approval.tool_name, approval.summary].filter(Boolean).join(': ');
    let note;
    try {
      note = new Notification(`${name} waits for your approval`, {
        body: what || 'A tool call waits for an answer.',
        tag: `approval-${approval.approval_id}`,
        icon: 'favicon.svg',
      });
    } catch {
      return; // this browser shows notifications only from a service worker
    }
    this.shown.set(approval.approval_id, note);
    note.addEventListener('click', () => {
      window.focus();
      this.openWorker(worker.id);
      note.close();
    });
  }

  /** Asks to show notifications, once: now, and at the next gesture if the browser
   * wants one. */
  askPermission() {
    if (!supported() || Notification.permission !== 'default') return;
    const ask = () => {
      try {
        const asked = Notification.requestPermission();
        if (asked && asked.catch) asked.catch(() => {});
      } catch { /* an old browser's callback form: nothing to do */ }
    };
    ask();
    if (this.gestureArmed) return;
    this.gestureArmed = true;
    const onGesture = () => {
      document.removeEventListener('pointerdown', onGesture, true);
      document.removeEventListener('keydown', onGesture, true);
      if (Notification.permission === 'default') ask();
    };
    document.addEventListener('pointerdown', onGesture, true);
    document.addEventListener('keydown', onGesture, true);
  }
}
