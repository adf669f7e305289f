// The agent protocol on /ws (docs/PROTOCOL.md) as the page uses it: the list of workers
// and the server's status, pushed by the server instead of polled. Every message is an
// envelope {id, type, timestamp, payload, correlation_id?}. On every (re)connection the
// page asks for the whole list and the status; after that the server pushes changes.

import { LiveSocket, wsUrl } from './socket.js';

export class AgentSocket extends LiveSocket {
  /**
   * @param {object} handlers onState(state, info); onAgents(workers): the whole list;
   *   onPush(type, payload, timestamp): `agent:status` or `agent:stopped` of one worker;
   *   onSystem(status): as GET /api/status; lost(info): as LiveSocket's
   */
  constructor(handlers) {
    super(handlers.onState);
    this.h = handlers;
    this.sent = 0;
  }

  url() {
    return wsUrl('/ws');
  }

  /** A message to the server: each has an id of its own, which its answer carries. */
  envelope(type, payload = {}) {
    this.sent++;
    return { id: `page-${this.sent}`, type, payload };
  }

  /** Sends a request; its answer comes as a message like any other. */
  request(type, payload) {
    return this.send(this.envelope(type, payload));
  }

  ping() {
    return this.envelope('connection:ping');
  }

  opened() {
    this.request('agent:list');
    this.request('system:status');
  }

  received(msg) {
    const payload = msg.payload || {};
    switch (msg.type) {
      case 'agent:status':
        // The answer to agent:list carries every worker; a push, one worker's status.
        if (Array.isArray(payload.agents)) this.h.onAgents(payload.agents);
        else if (payload.worker_id) this.h.onPush(msg.type, payload, msg.timestamp);
        break;
      case 'agent:stopped':
        if (payload.worker_id) this.h.onPush(msg.type, payload, msg.timestamp);
        break;
      case 'system:status':
        this.h.onSystem(payload);
        break;
      default:
        // connection:ack and :pong, tasks and commands: nothing the page shows from here.
    }
  }

  lost(info) {
    return this.h.lost(info);
  }
}
