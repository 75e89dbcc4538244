import { describe, expect, it } from 'vitest';
import { childTraceparent, validTraceparent } from './trace.ts';

const P = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('traceparent', () => {
  it('takes a valid version-00 header, lowercased', () => {
    expect(validTraceparent(P)).toBe(P);
    expect(validTraceparent(P.toUpperCase())).toBe(P);
  });

  it('refuses malformed, all-zero, other-version and oversized values', () => {
    for (const v of [
      undefined,
      '',
      'garbage',
      `${P}-extra`,
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01',
    ])
      expect(validTraceparent(v), String(v)).toBeUndefined();
  });

  it('a child keeps the trace and flags, with a new span', () => {
    const c = childTraceparent(P);
    expect(validTraceparent(c)).toBe(c);
    expect(c.slice(0, 36)).toBe(P.slice(0, 36));
    expect(c.slice(-3)).toBe('-01');
    expect(c.slice(36, 52)).not.toBe(P.slice(36, 52));
  });
});
