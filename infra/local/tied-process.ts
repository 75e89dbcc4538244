// Child processes of the local stack (the Kafka JVM, redis-server) are tied to this
// Node process through a pipe on their wrapper's stdin: when this process exits for any
// reason, even SIGKILL, the pipe closes and the wrapper terminates the child. So a killed
// `npm start` never leaves a JVM or redis-server behind.
import { type ChildProcess, spawn } from 'node:child_process';
import { openSync } from 'node:fs';

const WRAPPER = `
exec 3<&0
"$@" </dev/null &
child=$!
trap 'kill -TERM $child 2>/dev/null' TERM INT
( while read -r _; do :; done; kill -TERM $child 2>/dev/null ) <&3 &
watcher=$!
exec 3<&-
wait $child
wait $child 2>/dev/null
rc=$?
kill $watcher 2>/dev/null
exit $rc
`;

export interface TiedProcess {
  readonly pid: number;
  readonly exited: Promise<number | null>;
  /** Asks the child to stop (SIGTERM), waits up to `graceMs`, then kills the whole group. */
  stop(graceMs?: number): Promise<void>;
}

export function spawnTied(
  cmd: string,
  args: string[],
  opts: { logFile: string; cwd?: string; env?: NodeJS.ProcessEnv },
): TiedProcess {
  const out = openSync(opts.logFile, 'a');
  const child: ChildProcess = spawn('/bin/sh', ['-c', WRAPPER, 'tied', cmd, ...args], {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['pipe', out, out],
    detached: true, // own process group: Ctrl-C reaches us, and we stop children in order
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
  const pid = child.pid;
  return {
    pid,
    exited,
    async stop(graceMs = 20_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
      if ((await Promise.race([exited, timer])) === 'timeout') {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {}
        await exited;
      }
      child.stdin?.destroy();
    },
  };
}
