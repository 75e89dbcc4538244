// A webhook receiver in its own process for the activation benchmark (so its CPU is not
// counted as activation's). It answers 200 at once and records, per delivery, receipt time
// − the produce time carried in the body's traits. The parent asks over IPC:
//   { take: true } → { latencies: number[], received: number[] (receipt times), stamped: number[]
//   (the sender's webhook-timestamp, s) } since the last take.
import { createServer } from 'node:http';

const latencies: number[] = [];
const received: number[] = [];
const stamped: number[] = [];
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const at = Date.now();
    res.end();
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { traits: { producedAt: number } };
      latencies.push(at - body.traits.producedAt);
      received.push(at);
      stamped.push(Number(req.headers['webhook-timestamp']));
    } catch {}
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as { port: number }).port });
});
process.on('message', (m: { take?: boolean; count?: boolean }) => {
  if (m.count) process.send?.({ count: latencies.length });
  if (m.take)
    process.send?.({
      latencies: latencies.splice(0),
      received: received.splice(0),
      stamped: stamped.splice(0),
    });
});
process.on('disconnect', () => process.exit(0));
