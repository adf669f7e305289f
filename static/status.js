// The status footer: the server's version and uptime, its workers, connections, tasks
// and memory, as `system:status` (the same as GET /api/status) says. The server pushes
// it every 30 s; in between the uptime counts up here, so it never looks stale.

import { $ } from './dom.js';
import { bytes, duration, plural } from './format.js';

// Statuses as words: `waiting_approval` reads "waiting for approval".
const STATUS_WORDS = { waiting_approval: 'waiting for approval' };
const tally = (byStatus) => Object.entries(byStatus || {}).map(([k, v]) => `${v} ${STATUS_WORDS[k] || k.replace(/_/g, ' ')}`).join(', ');

export class StatusFooter {
  constructor() {
    this.status = null;
    this.at = 0; // when it came
    this.timer = null;
  }

  show(status) {
    this.status = status;
    this.at = Date.now();
    this.render();
    if (!this.timer) this.timer = setInterval(() => this.render(), 1000);
  }

  /** Says `text` instead of the status (until the next one comes). */
  note(text) {
    clearInterval(this.timer);
    this.timer = null;
    $('status-line').textContent = text;
  }

  render() {
    const s = this.status;
    const up = (s.uptime_seconds || 0) + Math.floor((Date.now() - this.at) / 1000);
    const total = s.workers ? s.workers.total : 0;
    const byStatus = s.workers ? tally(s.workers.by_status) : '';
    const parts = [
      `workerhub ${s.version || ''}`.trim(),
      `up ${up < 60 ? `${up} s` : duration(up * 1000)}`,
      `${plural(total, 'worker')}${byStatus ? ` (${byStatus})` : ''}`,
      plural(s.connections ?? 0, 'connection'),
    ];
    if (s.tasks && s.tasks.total) {
      const t = tally(s.tasks.by_status);
      parts.push(`${plural(s.tasks.total, 'task')}${t ? ` (${t})` : ''}`);
    }
    if (s.process && s.process.rss_bytes) parts.push(`${bytes(s.process.rss_bytes)} memory`);
    $('status-line').textContent = parts.join(' · ');
  }
}
