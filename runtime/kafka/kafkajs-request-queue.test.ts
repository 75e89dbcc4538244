// The kafkajs request-queue fix (kafkajs-request-queue.ts): no timer while nothing waits,
// against the real broker; and requests that do wait (a broker's throttle, the in-flight
// limit) still go out, on kafkajs's own queue.
import { afterEach, describe, expect, inject, it } from 'vitest';
import { eventually, uniqueId } from '../../test/harness.ts';
import { createLogger } from '../log.ts';
import { createKafka } from './index.ts';
import { fixKafkajsIdleTimer, kafkajsRequestQueue } from './kafkajs-request-queue.ts';

const log = createLogger({ level: 'silent', name: 'test' });
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

interface Queue {
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  push(r: unknown): void;
  maybeThrottle(ms: number): void;
  fulfillRequest(r: { correlationId: number; payload: Buffer; size: number }): void;
  checkPendingRequests(): void;
  destroy(): void;
}
const RequestQueue = kafkajsRequestQueue() as unknown as {
  new (o: Record<string, unknown>): Queue;
  prototype: Queue;
};

const queues: Queue[] = [];
const queue = (maxInFlightRequests?: number) => {
  fixKafkajsIdleTimer();
  const q = new RequestQueue({
    maxInFlightRequests,
    requestTimeout: 10_000,
    enforceRequestTimeout: false,
    clientId: 'test',
    broker: 'test:9092',
    logger: quiet,
  });
  queues.push(q);
  return q;
};
const request = (correlationId: number, sent: number[], answered: number[]) => ({
  entry: {
    correlationId,
    apiKey: 0,
    apiName: 'Produce',
    apiVersion: 3,
    resolve: () => answered.push(correlationId),
    reject: () => {},
  },
  expectResponse: true,
  sendRequest: () => sent.push(correlationId),
});

afterEach(() => {
  for (const q of queues.splice(0)) {
    if (q.throttleCheckTimeoutId) clearTimeout(q.throttleCheckTimeoutId);
    q.destroy();
  }
});

describe('kafkajs request queue without its idle 1 ms timer', () => {
  it('a connected producer checks its queue only when a response comes, not every millisecond', async () => {
    const kafka = createKafka(
      { brokers: inject('kafkaBrokers').split(','), driver: 'kafkajs', clientId: 'test' },
      log,
    );
    const topic = uniqueId('idle-timer-');
    const admin = kafka.admin();
    await admin.ensureTopics([{ topic, partitions: 1 }]);
    const producer = kafka.producer();
    await producer.connect();
    await producer.send(topic, [{ key: 'k', value: 'v' }]);
    const proto = RequestQueue.prototype;
    const check = proto.checkPendingRequests;
    let checks = 0;
    proto.checkPendingRequests = function (this: Queue) {
      checks++;
      check.call(this);
    };
    try {
      // idle for half a second: unfixed, each connection (producer, admin) checks ~500 times
      await new Promise((r) => setTimeout(r, 500));
      const idle = checks;
      // a send is still answered (its response runs a check)
      await producer.send(topic, [{ key: 'k', value: 'w' }]);
      expect(idle).toBeLessThan(25);
      expect(checks).toBeGreaterThan(idle);
    } finally {
      proto.checkPendingRequests = check;
      await producer.disconnect();
      await admin.disconnect();
    }
  });

  it('arms no timer when nothing waits', () => {
    const q = queue();
    q.checkPendingRequests();
    expect(q.throttleCheckTimeoutId).toBeNull();
  });

  it('a request pushed during a broker throttle is sent when the throttle ends', async () => {
    const q = queue();
    const sent: number[] = [];
    const answered: number[] = [];
    q.maybeThrottle(80);
    q.push(request(1, sent, answered));
    expect(sent).toEqual([]);
    expect(q.throttleCheckTimeoutId).not.toBeNull();
    await eventually('the throttled request sent', () => sent.length === 1, 5000);
    expect(sent).toEqual([1]);
    q.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 });
    expect(answered).toEqual([1]);
    // the throttle is over and nothing waits: no timer left behind
    expect(q.throttleCheckTimeoutId).toBeNull();
  });

  it('a request over the in-flight limit goes when an answer frees a slot', async () => {
    const q = queue(1);
    const sent: number[] = [];
    const answered: number[] = [];
    q.push(request(1, sent, answered));
    q.push(request(2, sent, answered));
    expect(sent).toEqual([1]);
    q.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 });
    expect(sent).toEqual([1, 2]);
    q.fulfillRequest({ correlationId: 2, payload: Buffer.alloc(0), size: 0 });
    expect(answered).toEqual([1, 2]);
    // the check kafkajs armed when request 2 had to wait runs once (10 ms) and is not re-armed
    await eventually('the queue without a timer', () => q.throttleCheckTimeoutId === null, 2000);
    await new Promise((r) => setTimeout(r, 30));
    expect(q.throttleCheckTimeoutId).toBeNull();
  });
});
