/** A started service: what `cdp start` keeps and stops, in reverse order of starting. */
export interface RunningService {
  name: string;
  /** URL of its HTTP port, for services that have one. */
  url?: string;
  stop(): Promise<void>;
}
