/** An error that says whether trying again can help. */
export class AppError extends Error {
  readonly retriable: boolean;
  readonly code: string;
  constructor(code: string, message: string, opts: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'AppError';
    this.code = code;
    this.retriable = opts.retriable ?? false;
  }
}

export function assertNever(x: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(x)}`);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Sleeps that tests can replace. */
export type Sleep = (ms: number) => Promise<void>;
export const realSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
