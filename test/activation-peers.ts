// Real peers on loopback for activation tests: an SMTP server that keeps every message and a
// producer of segment changes. Provider APIs have their own contract-checking servers
// (twilio.ts, push-providers.ts, email-providers.ts).
import { Kafka, logLevel } from 'kafkajs';
import { SMTPServer } from 'smtp-server';
import type { SegmentChange } from '../schemas/segment-change.ts';

export interface Mail {
  from: string;
  to: string[];
  raw: string;
  headers: Map<string, string>;
  body: string;
}

export async function startSmtpServer() {
  const mails: Mail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const [head = '', ...rest] = raw.split(/\r?\n\r?\n/);
        const headers = new Map<string, string>();
        for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
          const i = line.indexOf(':');
          if (i > 0) headers.set(line.slice(0, i).toLowerCase(), line.slice(i + 1).trim());
        }
        mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          headers,
          body: rest.join('\n\n'),
        });
        callback();
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Publishes segment changes as the processor would (key workspace:profileId). */
export async function segmentChangeProducer(brokers: string[], topic: string) {
  const producer = new Kafka({ brokers, logLevel: logLevel.NOTHING }).producer();
  await producer.connect();
  return {
    send: (changes: SegmentChange[]) =>
      producer.send({
        topic,
        acks: -1,
        messages: changes.map((c) => ({ key: `${c.workspaceId}:${c.profileId}`, value: JSON.stringify(c) })),
      }),
    close: () => producer.disconnect(),
  };
}

export function change(
  ws: string,
  segmentId: string,
  profileId: string,
  traits: Record<string, unknown>,
  epoch = 1,
): SegmentChange {
  return {
    workspaceId: ws,
    profileId,
    segmentId,
    segmentVersion: 1,
    type: epoch % 2 === 1 ? 'entered' : 'exited',
    epoch,
    messageId: `m-${profileId}-${epoch}`,
    occurredAt: new Date().toISOString(),
    userId: `u-${profileId}`,
    traits,
  };
}
