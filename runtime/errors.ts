export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Sleeps that tests can replace. */
export type Sleep = (ms: number) => Promise<void>;
export const realSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
