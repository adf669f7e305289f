// The status footer: the server's version and uptime, its workers, connections, tasks
// and memory (GET /api/status).

import { $ } from './dom.js';
import { bytes, duration } from './format.js';
import { get } from './api.js';

export async function loadStatus() {
  try {
    const s = await get('/api/status');
    const byStatus = s.workers && s.workers.by_status ? Object.entries(s.workers.by_status).map(([k, v]) => `${v} ${k}`).join(', ') : '';
    const parts = [
      `workerhub ${s.version || ''}`.trim(),
      `up ${s.uptime_seconds < 60 ? `${s.uptime_seconds || 0} s` : duration(s.uptime_seconds * 1000)}`,
      `${s.workers ? s.workers.total : 0} worker${s.workers && s.workers.total === 1 ? '' : 's'}${byStatus ? ` (${byStatus})` : ''}`,
      `${s.connections ?? 0} connection${s.connections === 1 ? '' : 's'}`,
    ];
    if (s.tasks && s.tasks.total) {
      const t = Object.entries(s.tasks.by_status || {}).map(([k, v]) => `${v} ${k}`).join(', ');
      parts.push(`${s.tasks.total} task${s.tasks.total === 1 ? '' : 's'}${t ? ` (${t})` : ''}`);
    }
    if (s.process && s.process.rss_bytes) parts.push(`${bytes(s.process.rss_bytes)} memory`);
    $('status-line').textContent = parts.join(' · ');
  } catch (err) {
    $('status-line').textContent = err.status === 401 ? 'Not signed in.' : `Status unavailable: ${err.message}`;
  }
}
