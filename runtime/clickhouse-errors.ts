// What a ClickHouse error says about the rows of an insert: only an error that names the
// data (a parse or type error, the intake views' throwIf) is a reason to look at the rows
// one by one and dead-letter the ones refused. Anything else ("too many parts", a memory
// limit, a timeout, a lost connection, a restarting server, an error we do not know) is
// about the moment: the insert is tried again, whole, after a backoff, and no row is set
// aside for it. A server error from @clickhouse/client carries the numeric code as `code`
// (a string of digits); chDB's own insert errors carry only the message, "Code: 252. …".

/** ClickHouse error codes that mean the payload itself cannot be stored. */
const DATA_CODES: ReadonlySet<number> = new Set([
  6, // CANNOT_PARSE_TEXT
  20, // NUMBER_OF_COLUMNS_DOESNT_MATCH
  25, // CANNOT_PARSE_ESCAPE_SEQUENCE
  26, // CANNOT_PARSE_QUOTED_STRING
  27, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
  32, // ATTEMPT_TO_READ_AFTER_EOF
  33, // CANNOT_READ_ALL_DATA
  38, // CANNOT_PARSE_DATE
  41, // CANNOT_PARSE_DATETIME
  53, // TYPE_MISMATCH
  69, // ARGUMENT_OUT_OF_BOUND
  70, // CANNOT_CONVERT_TYPE
  72, // CANNOT_PARSE_NUMBER
  117, // INCORRECT_DATA (duplicate or unknown JSON keys, bad JSON)
  128, // TOO_LARGE_ARRAY_SIZE
  130, // CANNOT_READ_ARRAY_FROM_TEXT
  131, // TOO_LARGE_STRING_SIZE
  190, // SIZES_OF_ARRAYS_DONT_MATCH
  321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
  349, // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
  376, // CANNOT_PARSE_UUID
  377, // CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING
  395, // FUNCTION_THROW_IF_VALUE_IS_NON_ZERO (the intake views' checks)
  407, // DECIMAL_OVERFLOW
  467, // CANNOT_PARSE_BOOL
  691, // UNKNOWN_ELEMENT_OF_ENUM
]);

/**
 * The ClickHouse error code of `err`: chDB's `clickhouseCode`, the server client's `code`,
 * or "Code: NNN" in the message; else the same of its `cause`.
 */
export function clickHouseErrorCode(err: unknown, depth = 0): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { clickhouseCode?: unknown; code?: unknown; message?: unknown; cause?: unknown };
  for (const code of [e.clickhouseCode, e.code]) {
    if (typeof code === 'number' && Number.isInteger(code)) return code;
    if (typeof code === 'string' && /^\d{1,6}$/.test(code)) return Number(code);
  }
  const m = typeof e.message === 'string' ? /\bCode: (\d{1,6})\b/.exec(e.message) : null;
  if (m) return Number(m[1]);
  return depth < 3 ? clickHouseErrorCode(e.cause, depth + 1) : undefined;
}

/**
 * True when ClickHouse refused the insert because of what it holds (some row is bad):
 * then, and only then, the rows are checked one by one. False for everything that may
 * pass on a later try.
 */
export function isBadDataError(err: unknown): boolean {
  const code = clickHouseErrorCode(err);
  return code !== undefined && DATA_CODES.has(code);
}
