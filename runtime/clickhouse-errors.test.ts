// Which ClickHouse errors mean bad rows (checked one by one) and which only a bad moment
// (the insert is retried whole). The messages are as the engine and the clients give them.
import { describe, expect, it } from 'vitest';
import { clickHouseErrorCode, isBadDataError } from './clickhouse-errors.ts';

const serverError = (code: string, message: string) => Object.assign(new Error(message), { code, type: '' });
const chdbError = (message: string) => Object.assign(new Error(message), { code: 'CHDB_INSERT' });

describe('ClickHouse error classification', () => {
  const cases: Array<{ description: string; err: unknown; code: number | undefined; bad: boolean }> = [
    {
      description: 'too many parts from the server client',
      err: serverError('252', "Too many parts (300 with average size of 2.94 KiB) in table 'default.events'"),
      code: 252,
      bad: false,
    },
    {
      description: 'too many parts from chDB, code only in the message',
      err: chdbError(
        'Code: 252. DB::Exception: Too many parts (301). Merges are processing significantly slower',
      ),
      code: 252,
      bad: false,
    },
    {
      description: 'memory limit',
      err: chdbError('Code: 241. DB::Exception: Memory limit (total) exceeded: would use 3.50 GiB'),
      code: 241,
      bad: false,
    },
    {
      description: 'timeout',
      err: serverError('159', 'Timeout exceeded: elapsed 30 s'),
      code: 159,
      bad: false,
    },
    {
      description: 'socket timeout',
      err: serverError('209', 'Timeout exceeded while reading from socket'),
      code: 209,
      bad: false,
    },
    {
      description: 'a connection error without a ClickHouse code',
      err: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' }),
      code: undefined,
      bad: false,
    },
    { description: 'a client-side timeout', err: new Error('Timeout error.'), code: undefined, bad: false },
    { description: 'not an Error', err: 'boom', code: undefined, bad: false },
    {
      description: "chDB's numeric code on the error's cause",
      err: new Error('insert failed', { cause: Object.assign(new Error('x'), { clickhouseCode: 241 }) }),
      code: 241,
      bad: false,
    },
    {
      description: 'a JSON parse error',
      err: serverError('26', 'Cannot parse JSON string: expected opening quote: (at row 1)'),
      code: 26,
      bad: true,
    },
    {
      description: 'a number that is not one (chDB)',
      err: chdbError("Code: 72. DB::Exception: Unsigned type must not contain '-' symbol"),
      code: 72,
      bad: true,
    },
    {
      description: "the intake view's throwIf",
      err: serverError('395', 'event not storable: check it event by event'),
      code: 395,
      bad: true,
    },
    {
      description: 'a duplicate JSON key',
      err: serverError('117', 'Duplicate field found while parsing JSONEachRow format: messageId'),
      code: 117,
      bad: true,
    },
  ];
  for (const c of cases)
    it(c.description, () => {
      expect(clickHouseErrorCode(c.err)).toBe(c.code);
      expect(isBadDataError(c.err)).toBe(c.bad);
    });
});
