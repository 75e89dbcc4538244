/** The one error type of the query API; the app maps it to `{error}` with its status. */
export class QueryError extends Error {
  constructor(
    public readonly status: 400 | 401 | 403 | 404 | 409 | 410 | 413 | 429 | 500 | 503 | 504,
    message: string,
    /** Sent as Retry-After (429, 503). */
    public readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'QueryError';
  }
}
