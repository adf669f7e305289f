// One worker's live events over `/ws/{id}?since=N`. Keeps the last seq it handed on,
// drops anything at or below it (so a replay after a reconnect never shows a line
// twice), and reconnects by itself with back-off, asking for what came after that seq
// (so nothing is missed). Close 1013 (too slow) and 1001 (server going away) are
// reconnected the same way.

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
const PING_EVERY_MS = 25000;
const PONG_WITHIN_MS = 10000;
const STABLE_AFTER_MS = 3000;

export class WorkerStream {
  /**
   * @param {string} workerId
   * @param {number} since the last seq the page already has
   * @param {object} handlers onEvent(event), onClientError(msg), onState(state, info),
   *   probe() -> Promise<'ok'|'gone'|'unauthorized'|'unreachable'>
   */
  constructor(workerId, since, handlers) {
    this.workerId = workerId;
    this.lastSeq = since;
    this.h = handlers;
    this.ws = null;
    this.stopped = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.stableTimer = null;
    this.retryAt = 0;
    this.state = 'idle';
    this.onOnline = () => this.retryNow();
    window.addEventListener('online', this.onOnline);
  }

  setState(state, info = {}) {
    this.state = state;
    this.h.onState(state, info);
  }

  url() {
    const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${window.location.host}/ws/${encodeURIComponent(this.workerId)}?since=${this.lastSeq}`;
  }

  start() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting', { attempt: this.attempt, connecting: true });
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (err) {
      this.scheduleRetry(null);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.setState('live', { since: this.lastSeq });
      this.stableTimer = setTimeout(() => { this.attempt = 0; }, STABLE_AFTER_MS);
      this.schedulePing();
    };
    ws.onmessage = (msg) => {
      if (ws !== this.ws) return;
      this.schedulePing();
      let event;
      try {
        event = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (typeof event.seq !== 'number') {
        if (event.type === 'pong') return;
        this.h.onClientError(event);
        return;
      }
      if (event.seq <= this.lastSeq) return; // already have it
      this.lastSeq = event.seq;
      this.h.onEvent(event);
    };
    ws.onclose = (close) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.clearTimers();
      if (this.stopped) return;
      this.scheduleRetry(close);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  clearTimers() {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    clearTimeout(this.stableTimer);
    this.pingTimer = this.pongTimer = this.stableTimer = null;
  }

  /** An application ping after a quiet spell; no answer means the connection is dead. */
  schedulePing() {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pongTimer = null;
    this.pingTimer = setTimeout(() => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      try { ws.send(JSON.stringify({ type: 'ping' })); } catch { /* closing */ }
      this.pongTimer = setTimeout(() => {
        if (ws === this.ws) {
          // Silent for too long: treat as gone and reconnect.
          this.ws = null;
          try { ws.close(4000, 'no pong'); } catch { /* already closed */ }
          this.clearTimers();
          this.scheduleRetry({ code: 4000, reason: 'no answer to ping' });
        }
      }, PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  async scheduleRetry(close) {
    if (this.stopped) return;
    const code = close ? close.code : 0;
    let delay;
    if (code === 1013) {
      delay = 250; // too slow: catch up at once from where we are
    } else {
      delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
      delay = Math.round(delay * (0.8 + Math.random() * 0.4));
    }
    this.attempt++;
    const info = { code, reason: close ? close.reason : '', attempt: this.attempt, delay };
    // After a couple of failures, ask over HTTP why: the worker may be gone, or the
    // server may want its token.
    if (this.attempt >= 2 && code !== 1013 && this.h.probe) {
      const verdict = await this.h.probe();
      if (this.stopped) return;
      if (verdict === 'gone') {
        this.setState('gone', info);
        return;
      }
      if (verdict === 'unauthorized') {
        this.setState('unauthorized', info);
        return;
      }
      info.serverReachable = verdict === 'ok';
    }
    this.retryAt = Date.now() + delay;
    this.setState('reconnecting', info);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.start(), delay);
  }

  /** Reconnects now instead of waiting for the back-off. */
  retryNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.start();
  }

  /** Whether a message can go out now. */
  isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.clearTimers();
    window.removeEventListener('online', this.onOnline);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try { ws.close(1000, 'bye'); } catch { /* already closed */ }
    }
  }
}
