// ClickHouse's block compression as the JDBC driver reads it: CityHash128 v1.0.2 checksums
// (the expected values are the driver's own implementation's, com.clickhouse.data.
// ClickHouseCityHash, on the same bytes) and LZ4 blocks that decode to the input.
import { describe, expect, it } from 'vitest';
import { cityHash128, compressNative } from './native-compression.ts';

const bytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) % 251));

/** Decodes an LZ4 block (literals and matches), enough to read back what was written. */
function lz4Decode(src: Buffer, size: number): Buffer {
  const out = Buffer.alloc(size);
  let i = 0;
  let o = 0;
  const len = (n: number) => {
    if (n !== 15) return n;
    let b: number;
    do {
      b = src[i++]!;
      n += b;
    } while (b === 255);
    return n;
  };
  while (i < src.length) {
    const token = src[i++]!;
    const lit = len(token >> 4);
    src.copy(out, o, i, i + lit);
    i += lit;
    o += lit;
    if (i >= src.length) break;
    const offset = src.readUInt16LE(i);
    i += 2;
    const m = len(token & 15) + 4;
    for (let k = 0; k < m; k++, o++) out[o] = out[o - offset]!;
  }
  return out;
}

describe('ClickHouse native compression', () => {
  it('checksums with CityHash128 v1.0.2 as the ClickHouse JDBC driver does', () => {
    const expected: [number, string, string][] = [
      [0, '3df09dfc64c09a2b', '3cb540c392e51e29'],
      [17, 'cd5bb13faea6e4c', '32bf719178f6bbfe'],
      [129, 'e4eb2372cb5800f1', '5a6882435a0aa0f'],
      [300, '499b9ee6cc46f477', '8e409f5e6d0786ea'],
      [5000, 'f874e67cbe9eef32', '10ee22a9f296d128'],
    ];
    for (const [n, lo, hi] of expected) {
      const [l, h] = cityHash128(bytes(n));
      expect([n, l.toString(16), h.toString(16)]).toEqual([n, lo, hi]);
    }
  });

  it('writes blocks of at most 1 MiB that decode to the body and carry their checksum', async () => {
    for (const n of [0, 14, 15, 270, 3 * 1024 * 1024 + 5]) {
      const body = bytes(n);
      const packed = await compressNative(body);
      const parts: Buffer[] = [];
      for (let at = 0; at < packed.length; ) {
        const sum = packed.subarray(at, at + 16);
        expect(packed[at + 16]).toBe(0x82);
        const compressed = packed.readUInt32LE(at + 17);
        const plain = packed.readUInt32LE(at + 21);
        expect(plain).toBeLessThanOrEqual(1 << 20);
        const block = packed.subarray(at + 16, at + 16 + compressed);
        const [lo, hi] = cityHash128(block);
        expect([sum.readBigUInt64LE(0), sum.readBigUInt64LE(8)]).toEqual([lo, hi]);
        parts.push(lz4Decode(block.subarray(9), plain));
        at += 16 + compressed;
      }
      expect(Buffer.concat(parts).equals(body)).toBe(true);
    }
  });
});
