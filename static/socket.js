// A WebSocket that stays up. It reconnects by itself with back-off (at once after a
// "too slow" close, which asks the client to catch up), pings after a quiet spell to
// find a connection that died without a close, tries again at once when the browser is
// back online, and reports its state: connecting, live, reconnecting (with the attempt
// and when the next one is due), or the final state that `lost` decides.
//
// A subclass says where to connect (`url`), how to ask for an answer (`ping`), what to
// do once connected (`opened`) and with each message (`received`), and what a failed
// attempt means (`lost`).

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
const PING_EVERY_MS = 25000;
const PONG_WITHIN_MS = 10000;
const STABLE_AFTER_MS = 3000;

/** The address of a WebSocket path on this page's server. */
export function wsUrl(path) {
  const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${window.location.host}${path}`;
}

export class LiveSocket {
  /** @param {function} onState (state, info) */
  constructor(onState) {
    this.onState = onState;
    this.ws = null;
    this.stopped = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.stableTimer = null;
    this.state = 'idle';
    this.onOnline = () => this.retryNow();
    window.addEventListener('online', this.onOnline);
  }

  /** Where to connect (asked again for every attempt). */
  url() {
    throw new Error('a LiveSocket needs a url');
  }

  /** The message that asks the server for an answer. */
  ping() {
    throw new Error('a LiveSocket needs a ping');
  }

  /** Connected. */
  opened() {}

  /** One message from the server, parsed. */
  received() {}

  /**
   * An attempt failed (`info.attempt` in a row, `info.code` the close code). Resolves
   * to a state to stay in (the attempts end), or null to try again.
   */
  async lost() {
    return null;
  }

  setState(state, info = {}) {
    this.state = state;
    this.onState(state, info);
  }

  start() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting', { attempt: this.attempt, connecting: true });
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.scheduleRetry(null);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.setState('live');
      this.stableTimer = setTimeout(() => { this.attempt = 0; }, STABLE_AFTER_MS);
      this.schedulePing();
      this.opened();
    };
    ws.onmessage = (msg) => {
      if (ws !== this.ws) return;
      this.schedulePing();
      let data;
      try {
        data = JSON.parse(msg.data);
      } catch {
        return;
      }
      this.received(data);
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

  /** Sends `message` as JSON if the connection is open; returns whether it went out. */
  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    try {
      this.ws.send(JSON.stringify(message));
      return true;
    } catch {
      return false; // closing: onclose follows
    }
  }

  clearTimers() {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    clearTimeout(this.stableTimer);
    this.pingTimer = this.pongTimer = this.stableTimer = null;
  }

  /** A ping after a quiet spell; no answer means the connection is dead. */
  schedulePing() {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pongTimer = null;
    this.pingTimer = setTimeout(() => {
      const ws = this.ws;
      if (!this.send(this.ping())) return;
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
    const final = await this.lost(info);
    // Stopped, or already reconnected ("Retry now") while `lost` looked into it.
    if (this.stopped || this.ws) return;
    if (final) {
      this.setState(final, info);
      return;
    }
    info.retryAt = Date.now() + delay;
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
