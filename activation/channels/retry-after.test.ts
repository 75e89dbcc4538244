import { describe, expect, it } from 'vitest';
import { MAX_RETRY_AFTER_MS, parseRetryAfter } from './channel.ts';

const NOW = Date.parse('2026-12-05T12:00:00Z');

describe('parseRetryAfter', () => {
  it('reads delay-seconds', () => {
    expect(parseRetryAfter('30', NOW)).toBe(30_000);
    expect(parseRetryAfter(' 0 ', NOW)).toBe(0);
  });

  it('reads an HTTP-date as the time left until it', () => {
    expect(parseRetryAfter('Sat, 05 Dec 2026 12:01:30 GMT', NOW)).toBe(90_000);
    // a date already past: no wait
    expect(parseRetryAfter('Sat, 05 Dec 2026 11:00:00 GMT', NOW)).toBe(0);
  });

  it('caps a wait asked for days ahead', () => {
    expect(parseRetryAfter('86400000', NOW)).toBe(MAX_RETRY_AFTER_MS);
    expect(parseRetryAfter('Fri, 01 Jan 2100 00:00:00 GMT', NOW)).toBe(MAX_RETRY_AFTER_MS);
  });

  it('ignores what is absent or unreadable', () => {
    for (const v of [undefined, null, '', 'soon', '-5', '1.5', '12345678901', 'Mon, 99 Foo'])
      expect(parseRetryAfter(v, NOW), String(v)).toBeUndefined();
  });
});
