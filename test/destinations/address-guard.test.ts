// A destination whose name resolves to a loopback address, in a deployment that does not
// allow loopback (production): the address guard refuses the connection at send time (the
// name passed the create-time check, only addresses are judged there), nothing reaches the
// receiver, and the delivery is dead-lettered at once as permanent, never retried.
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningDestinations, startDestinations } from '../../destinations/main.ts';
import { DESTINATION_HEADER } from '../../destinations/worker.ts';
import { type Clients, createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { type DestinationDefinition, generateDestinationSecret } from '../../schemas/destination.ts';
import { DLQ_HEADERS, topics } from '../../schemas/topics.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';
import { produceEvents, receiver } from './peers.ts';

let cfg: Config;
let clients: Clients;
let service: RunningDestinations;

beforeAll(async () => {
  cfg = testConfig({ CDP_WEBHOOK_ALLOW_LOOPBACK: 'false' });
  expect(cfg.activation.allowLoopback).toBe(false);
  clients = createClients(cfg, testLogger(cfg));
  const t = topics(cfg.kafka.topicPrefix);
  const admin = clients.kafka().admin();
  await admin.ensureTopics([
    { topic: t.events, partitions: 2 },
    { topic: t.activationLedger, partitions: 2 },
    { topic: t.deadLetter, partitions: 1 },
  ]);
  await admin.disconnect();
  service = await startDestinations(cfg, clients, testLogger(cfg), { options: { retryPollMs: 100 } });
}, 60_000);

afterAll(async () => {
  await service?.stop();
  await clients?.close();
});

describe('destination address guard at send time', () => {
  it('refuses a name resolving to loopback: nothing sent, dead-lettered as permanent', async () => {
    const r = await receiver(200);
    try {
      const port = new URL(r.url).port;
      const at = new Date().toISOString();
      const def: DestinationDefinition = {
        id: uniqueId('dst_'),
        workspaceId: cfg.keys.workspace,
        name: 'internal',
        type: 'http',
        source: { kind: 'events' },
        http: { url: `http://localhost:${port}/hook`, secret: generateDestinationSecret(), timeoutMs: 2000 },
        retry: { maxAttempts: 5, initialBackoffMs: 50 },
        status: 'active',
        version: 1,
        createdAt: at,
        updatedAt: at,
      };
      await new DefinitionStore(clients.redis(), cfg.redis.prefix).put('destinations', def);
      await eventually('consuming', () => service.worker(def.id)?.started.then(() => true), 60_000);
      const kafka = new Kafka({ brokers: cfg.kafka.brokers, logLevel: logLevel.NOTHING });
      const producer = kafka.producer();
      await producer.connect();
      const t = topics(cfg.kafka.topicPrefix);
      const [eventId] = await produceEvents(producer, t.events, cfg.keys.workspace, [
        { user: 'u1', event: 'Anything', properties: {} },
      ]);
      await producer.disconnect();
      const letters: Array<{ headers: Record<string, string>; value: string }> = [];
      const consumer = kafka.consumer({ groupId: uniqueId('dlq-read-') });
      await consumer.connect();
      await consumer.subscribe({ topic: t.deadLetter, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
          letters.push({ headers, value: message.value?.toString() ?? '' });
        },
      });
      const letter = await eventually('the dead letter', () =>
        letters.find((l) => l.headers[DESTINATION_HEADER] === def.id),
      );
      await consumer.disconnect();
      expect(letter.headers[DLQ_HEADERS.reason]).toMatch(
        /^permanent: destination refused: localhost resolves to a loopback address/,
      );
      expect(letter.headers['cdp-attempt']).toBe('1');
      expect(JSON.parse(letter.value)).toMatchObject({ destinationId: def.id, item: { id: eventId } });
      await new Promise((res) => setTimeout(res, 500));
      expect(r.arrivals).toHaveLength(0);
    } finally {
      await r.close();
    }
  });
});
