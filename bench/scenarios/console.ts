// Console: how much JavaScript the marketer console ships (gzipped, every module it can
// load) and how long a cold load takes to show its first screen (the sign-in form) in
// headless Chromium, against the query service on the benchmark's stack. Issue #9's
// targets: ≤ 250 KB gzipped, first screen < 1 s. Skipped (no rows) without /usr/bin/chromium.
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { startServices } from '../../cli/services.ts';
import { loadConfig } from '../../runtime/config.ts';
import { buildRows, type Target } from '../report.ts';
import type { ScenarioContext, ScenarioResult } from '../scenario.ts';

const CHROMIUM = '/usr/bin/chromium';
export const TARGETS = {
  gzipKb: { kind: 'atMost', value: 250 } as Target,
  firstScreenMs: { kind: 'atMost', value: 1000 } as Target,
};

export async function consoleScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  if (!existsSync(CHROMIUM))
    return { rows: [], measurements: [], notes: [`console: skipped, no ${CHROMIUM}`] };
  const loads = ctx.settings.mode === 'quick' ? 3 : 10;
  const cfg = loadConfig({
    NODE_ENV: 'development',
    LOG_LEVEL: ctx.log.level as string,
    REDIS_URL: ctx.redisUrl,
    KAFKA_BROKERS: ctx.kafkaBrokers,
    CDP_REDIS_PREFIX: `bench-${ctx.nonce}-console`,
    CDP_DATA_DIR: `${ctx.dataDir}/console`,
    CDP_QUERY_HOST: '127.0.0.1',
    CDP_QUERY_PORT: '0',
  });
  const services = await startServices(cfg, ['query'], ctx.log.child({ bench: 'console' }));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
    ],
  });
  try {
    const url = services.urls.query!;
    const own = readdirSync(fileURLToPath(new URL('../../query/console/', import.meta.url))).filter((f) =>
      f.endsWith('.js'),
    );
    let gz = 0;
    for (const path of [
      ...own.map((f) => `/console/app/${f}`),
      '/console/vendor/preact.mjs',
      '/console/vendor/hooks.mjs',
      '/console/vendor/htm.mjs',
    ]) {
      const res = await fetch(`${url}${path}`);
      if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`);
      gz += gzipSync(Buffer.from(await res.arrayBuffer()), { level: 9 }).length;
    }
    const times: number[] = [];
    for (let i = 0; i < loads; i++) {
      // a new context each time: nothing cached
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await context.newPage();
      const t0 = performance.now();
      await page.goto(`${url}/console`);
      await page.getByLabel('Admin key', { exact: true }).waitFor();
      times.push(performance.now() - t0);
      await context.close();
    }
    ctx.progress(
      `  console: ${(gz / 1024).toFixed(1)} KB of JavaScript gzipped; first screen ${times.map((t) => t.toFixed(0)).join(', ')} ms`,
    );
    return {
      rows: buildRows([
        {
          scenario: 'console',
          figure: 'JavaScript, gzipped',
          unit: 'KB',
          runs: [gz / 1024],
          target: TARGETS.gzipKb,
        },
        {
          scenario: 'console',
          figure: 'first screen, cold load',
          unit: 'ms',
          runs: times,
          target: TARGETS.firstScreenMs,
        },
      ]),
      measurements: [],
      notes: [
        `console: every module it can load, gzip -9; first screen = navigation start to the sign-in form visible in headless Chromium, a new browser context per load (${loads} loads, median)`,
      ],
    };
  } finally {
    await browser.close();
    await services.stop();
  }
}
