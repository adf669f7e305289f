// One worker's live events over `/ws/{id}?since=N`. Keeps the last seq it handed on,
// drops anything at or below it (so a replay after a reconnect never shows a line
// twice), and reconnects by itself (socket.js), asking for what came after that seq
// (so nothing is missed).

import { LiveSocket, wsUrl } from './socket.js';

export class WorkerStream extends LiveSocket {
  /**
   * @param {string} workerId
   * @param {number} since the last seq the page already has
   * @param {object} handlers onEvent(event), onClientError(msg), onState(state, info),
   *   probe() -> Promise<'ok'|'gone'|'unauthorized'|'unreachable'>
   */
  constructor(workerId, since, handlers) {
    super(handlers.onState);
    this.workerId = workerId;
    this.lastSeq = since;
    this.h = handlers;
  }

  url() {
    return wsUrl(`/ws/${encodeURIComponent(this.workerId)}?since=${this.lastSeq}`);
  }

  ping() {
    return { type: 'ping' };
  }

  received(event) {
    if (typeof event.seq !== 'number') {
      if (event.type === 'pong') return;
      this.h.onClientError(event);
      return;
    }
    if (event.seq <= this.lastSeq) return; // already have it
    this.lastSeq = event.seq;
    this.h.onEvent(event);
  }

  /** After a couple of failures, asks over HTTP why: the worker may be gone, or the
   * server may want its token. */
  async lost({ attempt, code }) {
    if (attempt < 2 || code === 1013) return null;
    const verdict = await this.h.probe();
    return verdict === 'gone' || verdict === 'unauthorized' ? verdict : null;
  }
}
