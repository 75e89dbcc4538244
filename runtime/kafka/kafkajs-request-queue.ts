// kafkajs 2.2.4 keeps a 1 ms timer running on every broker connection for its whole life.
// Its request queue re-arms a check of pending requests after every response and every
// check, whether or not anything is pending: with no throttle (`throttledUntil` = -1) the
// delay is negative, which Node runs after 1 ms, and the check arms the next one. So each
// connection wakes the event loop 1,000 times a second, busy or idle (kafkajs issues 1556,
// 1604, 1704; unfixed upstream). In the e2e bench's idle window the loop was 45% of the
// processor process's samples.
//
// The check is only needed while requests wait: behind a broker's throttle (the timer
// fires when it ends) or behind the in-flight limit (also re-checked on every response).
// This wraps the queue's scheduling so it arms a timer only then. Every other path is
// kafkajs's own: a request pushed while it cannot be sent schedules the check, a response
// or a timed-out request checks at once.
import { createRequire } from 'node:module';

interface QueueState {
  pending: unknown[];
  throttledUntil: number;
  scheduleCheckPendingRequests(): void;
}

const require = createRequire(import.meta.url);

/** kafkajs's RequestQueue class (the module kafkajs's connections load: same file, same class). */
export function kafkajsRequestQueue(): { prototype: QueueState } {
  return require('kafkajs/src/network/requestQueue/index.js') as { prototype: QueueState };
}

const PATCHED = Symbol.for('cdp.kafkajs.requestQueue.idleTimerFix');

/** Installs the fix once per process; later calls do nothing. */
export function fixKafkajsIdleTimer(): void {
  const proto = kafkajsRequestQueue().prototype as QueueState & { [PATCHED]?: true };
  if (proto[PATCHED]) return;
  const schedule = proto.scheduleCheckPendingRequests;
  if (typeof schedule !== 'function') return; // another kafkajs: leave it as it is
  proto.scheduleCheckPendingRequests = function (this: QueueState) {
    if (this.pending.length === 0 && !(this.throttledUntil > Date.now())) return;
    schedule.call(this);
  };
  proto[PATCHED] = true;
}
