export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Sleeps that tests can replace. */
export type Sleep = (ms: number) => Promise<void>;
export const realSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Wait before retry `attempt` (0-based): `baseMs` doubling up to `maxDoublings` times, at most 5 s. */
export function backoffDelayMs(attempt: number, baseMs = 100, maxDoublings = 6): number {
  return Math.min(5000, baseMs * 2 ** Math.min(attempt, maxDoublings));
}
