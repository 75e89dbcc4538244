import { type Logger, pino } from 'pino';

export type { Logger };

/** JSON logs with stable snake_case messages; secrets are redacted wherever they appear. */
export function createLogger(opts: { level: string; name: string }): Logger {
  return pino({
    level: opts.level,
    base: { app: opts.name },
    redact: {
      paths: ['*.password', '*.secret', '*.writeKey', '*.adminKey', 'authorization', '*.authorization'],
      censor: '[redacted]',
    },
  });
}
