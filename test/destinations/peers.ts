// Peers of the destination tests: receivers that answer 200, 500 or never, and a producer of
// events as ingest writes them to cdp.events.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Producer as KafkaProducer } from 'kafkajs';
import { uniqueId } from '../harness.ts';

export interface Arrival {
  at: number;
  id: string;
  body: string;
  headers: IncomingMessage['headers'];
}

/**
 * A receiver on loopback: answers `mode` (a status) at once, or never ('hang'), or the status
 * `mode(body)` picks for each request (a receiver that refuses what is in a body).
 */
export async function receiver(mode: number | 'hang' | ((body: string) => number)) {
  const arrivals: Arrival[] = [];
  const open = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      arrivals.push({ at: Date.now(), id: String(req.headers['webhook-id']), body, headers: req.headers });
      if (mode === 'hang') {
        open.add(res);
        return;
      }
      res.statusCode = typeof mode === 'function' ? mode(body) : mode;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    arrivals,
    close: () =>
      new Promise<void>((r) => {
        for (const res of open) res.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Produces track events as ingest does (key workspace:userId, the normalised event as value). */
export async function produceEvents(
  producer: KafkaProducer,
  topic: string,
  workspaceId: string,
  events: Array<{ user: string; event: string; properties: Record<string, unknown> }>,
): Promise<string[]> {
  const ids: string[] = [];
  await producer.send({
    topic,
    acks: -1,
    messages: events.map((e) => {
      const now = new Date().toISOString();
      const messageId = uniqueId('msg-');
      ids.push(messageId);
      return {
        key: `${workspaceId}:${e.user}`,
        value: JSON.stringify({
          workspaceId,
          type: 'track',
          event: e.event,
          messageId,
          userId: e.user,
          anonymousId: null,
          properties: { ...e.properties, messageId },
          traits: {},
          context: {},
          integrations: {},
          timestamp: now,
          receivedAt: now,
        }),
      };
    }),
  });
  return ids;
}
