// The webhook deadline bounds the whole attempt, not only the socket's idle time: real
// loopback receivers that trickle their answer (headers or body) a few bytes at a time,
// each gap shorter than the idle timeout, are cut off at the deadline.
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { sendWebhook } from './send-webhook.ts';

const DEADLINE_MS = 1000;
/** A byte every 100 ms: well inside the idle timeout (the deadline), for 3 s in all. */
const TRICKLE_GAP_MS = 100;
const TRICKLE_BYTES = 30;

const policy = { allowLoopback: true, allowPrivate: false, timeoutMs: DEADLINE_MS };
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function listen(server: Server | TcpServer, sockets: Set<Socket>): Promise<string> {
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const addr = server.address();
  return `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/hook`;
}

/** Writes `text` a byte at a time; resolves when all is written or the peer went away. */
function trickle(socket: { write(b: string): boolean; destroyed: boolean }, text: string): Promise<void> {
  return new Promise((resolve) => {
    let i = 0;
    const timer = setInterval(() => {
      if (socket.destroyed || i >= text.length) {
        clearInterval(timer);
        resolve();
        return;
      }
      socket.write(text[i++]!);
    }, TRICKLE_GAP_MS);
  });
}

/** An HTTP receiver that answers 200 at once, then its body a byte at a time. */
async function bodyTrickler() {
  const sockets = new Set<Socket>();
  const state = { bodyDone: false };
  const server = createHttpServer((req, res) => {
    req.resume();
    req.on('end', async () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(TRICKLE_BYTES) });
      res.flushHeaders();
      await trickle(res.socket ?? { write: () => true, destroyed: true }, 'x'.repeat(TRICKLE_BYTES));
      if (!res.destroyed) {
        state.bodyDone = true;
        res.end();
      }
    });
  });
  return { url: await listen(server, sockets), state };
}

/** A raw TCP receiver that sends its status line and headers a byte at a time. */
async function headerTrickler() {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => {
      void trickle(
        socket,
        `HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-pad: ${'y'.repeat(TRICKLE_BYTES)}\r\n\r\n`,
      );
    });
  });
  return { url: await listen(server, sockets) };
}

const request = (url: string) => ({
  url,
  secret: `whsec_${Buffer.from('deadline-test-secret').toString('base64')}`,
  id: 'send-key-1',
  body: '{"type":"segment.entered"}',
  timestampSeconds: Math.floor(Date.now() / 1000),
});

describe('webhook deadline', () => {
  it('cuts off a body trickled slower than the deadline allows, as a retriable failure', async () => {
    const receiver = await bodyTrickler();
    const started = performance.now();
    const r = await sendWebhook(request(receiver.url), policy);
    const took = performance.now() - started;
    expect(r).toMatchObject({ ok: false, retriable: true, error: `deadline of ${DEADLINE_MS} ms passed` });
    expect(took).toBeGreaterThanOrEqual(DEADLINE_MS - 50);
    // the receiver never finished: the attempt ended long before the 3 s trickle would
    expect(took).toBeLessThan(DEADLINE_MS + 1500);
    expect(receiver.state.bodyDone).toBe(false);
  });

  it('cuts off status line and headers trickled slower than the deadline allows', async () => {
    const receiver = await headerTrickler();
    const started = performance.now();
    const r = await sendWebhook(request(receiver.url), policy);
    const took = performance.now() - started;
    expect(r).toMatchObject({ ok: false, retriable: true, error: `deadline of ${DEADLINE_MS} ms passed` });
    expect(took).toBeLessThan(DEADLINE_MS + 1500);
  });

  it('still delivers to a receiver that answers within the deadline', async () => {
    const sockets = new Set<Socket>();
    const server = createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    const url = await listen(server, sockets);
    expect(await sendWebhook(request(url), policy)).toMatchObject({ ok: true, status: 200 });
  });
});
