// Errors as ClickHouse reports them over HTTP: a code, `Code: N. DB::Exception: …` in the
// body, the code again in X-ClickHouse-Exception-Code, and the HTTP status ClickHouse uses.

export const ErrorCode = {
  UNKNOWN_TABLE: 60,
  SYNTAX_ERROR: 62,
  UNKNOWN_FORMAT: 73,
  UNKNOWN_DATABASE: 81,
  READONLY: 164,
  TOO_MANY_SIMULTANEOUS_QUERIES: 202,
  QUERY_IS_TOO_LARGE: 393,
  TOO_MANY_ROWS_OR_BYTES: 396,
  FUNCTION_NOT_ALLOWED: 446,
  UNKNOWN_QUERY_PARAMETER: 456,
  ACCESS_DENIED: 497,
  AUTHENTICATION_FAILED: 516,
} as const;

const NAMES: Record<number, string> = Object.fromEntries(Object.entries(ErrorCode).map(([k, v]) => [v, k]));

/** The HTTP status ClickHouse's HTTP handler answers for an error code. */
export function httpStatusOf(code: number): 400 | 403 | 404 | 413 | 429 | 500 {
  switch (code) {
    case ErrorCode.AUTHENTICATION_FAILED:
    case ErrorCode.ACCESS_DENIED:
    case ErrorCode.READONLY:
    case ErrorCode.FUNCTION_NOT_ALLOWED:
      return 403;
    case ErrorCode.UNKNOWN_TABLE:
    case ErrorCode.UNKNOWN_DATABASE:
    case 46: // UNKNOWN_FUNCTION
    case 47: // UNKNOWN_IDENTIFIER
      return 404;
    case ErrorCode.QUERY_IS_TOO_LARGE:
      return 413;
    case ErrorCode.TOO_MANY_SIMULTANEOUS_QUERIES:
      return 429;
    case ErrorCode.SYNTAX_ERROR:
    case ErrorCode.UNKNOWN_FORMAT:
    case ErrorCode.UNKNOWN_QUERY_PARAMETER:
    case 6: // CANNOT_PARSE_TEXT
    case 26: // CANNOT_PARSE_QUOTED_STRING
    case 27: // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    case 36: // BAD_ARGUMENTS
    case 42: // NUMBER_OF_ARGUMENTS_DOESNT_MATCH
    case 43: // ILLEGAL_TYPE_OF_ARGUMENT
    case 44: // ILLEGAL_COLUMN
    case 53: // TYPE_MISMATCH
    case 215: // NOT_AN_AGGREGATE
    case 352: // AMBIGUOUS_COLUMN_NAME
    case 457: // BAD_QUERY_PARAMETER
      return 400;
    default:
      return 500;
  }
}

export class BiSqlError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly type: string = NAMES[code] ?? 'UNKNOWN',
  ) {
    super(message);
    this.name = 'BiSqlError';
  }

  /** An error the engine raised, with its own code and text (`… (TYPE)` stripped). */
  static fromEngine(err: unknown, fallback: string): BiSqlError {
    const e = err as { code?: string | number; type?: string; message?: string };
    const code = Number(e.code);
    const msg = (e.message ?? fallback)
      .replace(/^Code: \d+\. DB::Exception: /, '')
      .replace(/ \(([A-Z_]+)\)\.?\s*$/, '')
      .replace(/\.\s*$/, '');
    if (Number.isInteger(code) && code > 0)
      return new BiSqlError(code, msg, e.type ?? NAMES[code] ?? 'UNKNOWN');
    return new BiSqlError(1000, msg, 'UNKNOWN');
  }

  /** The body ClickHouse sends: clients parse the code and the text from it. */
  body(version: string): string {
    return `Code: ${this.code}. DB::Exception: ${this.message}. (${this.type}) (version ${version})\n`;
  }
}
