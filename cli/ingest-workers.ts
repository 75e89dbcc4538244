// `cdp start` with CDP_INGEST_WORKERS above 1: the ingest edge runs in that many processes
// sharing its port (node:cluster hands each new connection to the next worker), so it can
// use more than one core. One Node process tops out at one core of HTTP, JSON and Kafka
// encoding: in the ingest bench it runs at 105% of a core while the machine is a third idle.
// The primary process runs the other services named, starts a worker again when one dies,
// and on shutdown asks every worker to stop; each flushes what it accepted into Kafka
// before it exits, as a single ingest process does.
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../runtime/log.ts';

/** The message a worker stops on (cli/main.ts onShutdown). */
export const STOP_MESSAGE = 'cdp:stop';

/** A worker that died is started again after this long (not in a tight loop). */
const RESTART_DELAY_MS = 1000;

export const isIngestWorker = (): boolean => cluster.isWorker;

export function startIngestWorkers(count: number, log: Logger): { stop(): Promise<void> } {
  const workers = new Set<Worker>();
  const listening = new WeakSet<Worker>();
  let stopping = false;
  const fork = () => {
    const w = cluster.fork();
    workers.add(w);
    w.once('listening', () => listening.add(w));
    w.on('exit', (code, signal) => {
      workers.delete(w);
      if (stopping) return;
      log.error({ pid: w.process.pid, code, signal }, 'ingest_worker_exited: starting another');
      setTimeout(() => {
        if (!stopping) fork();
      }, RESTART_DELAY_MS);
    });
  };
  for (let i = 0; i < count; i++) fork();
  log.info({ workers: count }, 'ingest_workers_started');
  return {
    async stop() {
      stopping = true;
      await Promise.all(
        [...workers].map(
          (w) =>
            new Promise<void>((resolve) => {
              if (w.isDead()) return resolve();
              w.once('exit', () => resolve());
              // one still starting has taken nothing yet (and may not listen for the message)
              if (!listening.has(w)) return void w.process.kill('SIGTERM');
              try {
                w.send(STOP_MESSAGE);
              } catch {
                w.process.kill('SIGTERM'); // its channel is gone already
              }
            }),
        ),
      );
    },
  };
}
