// moto's S3-compatible server (PyPI, installed by setup-moto.sh) as a test peer. With `auth`,
// after the first few unauthenticated calls (an IAM user, its access key, its S3 policy, the
// bucket) every request must carry a valid SigV4 signature of that key. moto 5.1.18 checks
// S3 signatures over the URL-decoded path, so it refuses any correctly signed request whose
// key has a character S3 encodes (the AWS SDK in chDB is refused the same way): keys with
// `=` (the dt= day partitions) can only be stored and read on a server without `auth`.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { signRequest } from '../../activation/channels/sigv4.ts';
import { eventually } from '../harness.ts';

const HERE = new URL('.', import.meta.url).pathname;
const VENV = `${process.env.CDP_CACHE_DIR ?? `${HERE}../../.cache`}/moto/venv`;

/** Installs moto if needed; the reason it cannot be, or undefined when it is there. */
export function ensureMoto(): string | undefined {
  try {
    execFileSync('bash', [`${HERE}setup-moto.sh`], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
  } catch (err) {
    return `moto could not be installed: ${(err as Error).message.slice(0, 300)}`;
  }
  return existsSync(`${VENV}/bin/moto_server`) ? undefined : 'moto_server missing after install';
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });

export interface Moto {
  url: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  stop(): Promise<void>;
}

const DUMMY = { accessKeyId: 'AKIDBOOTSTRAP', secretAccessKey: 'bootstrap' };

async function call(url: string, method: string, path: string, service: string, body: string) {
  const u = new URL(path, url);
  const headers = signRequest(
    {
      method,
      url: u,
      headers: {
        ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        'x-amz-content-sha256': (await import('node:crypto')).createHash('sha256').update(body).digest('hex'),
      },
      body,
      service,
      region: 'us-east-1',
      nowMs: Date.now(),
    },
    DUMMY,
  );
  const res = await fetch(u, { method, headers, ...(body ? { body } : {}) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${service} ${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
  return text;
}

const iam = (url: string, params: Record<string, string>) =>
  call(url, 'POST', '/', 'iam', new URLSearchParams({ ...params, Version: '2010-05-08' }).toString());

export async function startMoto(bucket: string, opts: { auth: boolean }): Promise<Moto> {
  const port = await freePort();
  const child: ChildProcess = spawn(`${VENV}/bin/moto_server`, ['-H', '127.0.0.1', '-p', String(port)], {
    // with auth: signatures and IAM policies enforced after the four setup calls
    env: { ...process.env, ...(opts.auth ? { INITIAL_NO_AUTH_ACTION_COUNT: '4' } : {}) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    if (stderr.length < 20_000) stderr += c.toString();
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await eventually(
      'moto listening',
      async () => {
        if (child.exitCode !== null) throw new Error(`moto exited: ${stderr.slice(-500)}`);
        const r = await fetch(`${url}/moto-api/`).catch(() => undefined);
        return r !== undefined;
      },
      60_000,
      200,
    );
    await iam(url, { Action: 'CreateUser', UserName: 'exporter' });
    const key = await iam(url, { Action: 'CreateAccessKey', UserName: 'exporter' });
    await iam(url, {
      Action: 'PutUserPolicy',
      UserName: 'exporter',
      PolicyName: 's3',
      PolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }],
      }),
    });
    await call(url, 'PUT', `/${bucket}`, 's3', '');
    const accessKeyId = /<AccessKeyId>([^<]+)</.exec(key)?.[1];
    const secretAccessKey = /<SecretAccessKey>([^<]+)</.exec(key)?.[1];
    if (!accessKeyId || !secretAccessKey) throw new Error(`no access key in ${key.slice(0, 300)}`);
    return {
      url,
      bucket,
      accessKeyId,
      secretAccessKey,
      stop: async () => {
        if (child.exitCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      },
    };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}
