// A real HTTP receiver on loopback that records every webhook delivery it gets.
import { createServer, type IncomingHttpHeaders } from 'node:http';

export interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  /** Path and query the request was sent to. */
  url?: string;
  /** When it arrived (epoch ms). */
  at?: number;
}

/** `respond` answers a status, or a status with headers (e.g. Retry-After). */
export async function startWebhookReceiver(
  respond: (n: number) => number | { status: number; headers: Record<string, string> } = () => 200,
) {
  const deliveries: Delivery[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      deliveries.push({
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        url: req.url,
        at: Date.now(),
      });
      const out = respond(deliveries.length);
      if (typeof out === 'number') res.statusCode = out;
      else {
        res.statusCode = out.status;
        for (const [k, v] of Object.entries(out.headers)) res.setHeader(k, v);
      }
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    deliveries,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
