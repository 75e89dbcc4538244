// Our partitioner must put every key where kafkajs's default (Kafka's Java client's) does:
// a key's partition decides the order its events are handled in.
import { createRequire } from 'node:module';
import { Partitioners } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { rng } from '../../test/analytics-dataset.ts';
import { defaultPartitioner, murmur2 } from './partitioner.ts';

const require = createRequire(import.meta.url);
const kafkajsMurmur2 = require('kafkajs/src/producer/partitioners/default/murmur2') as (
  key: Buffer | string,
) => number;

const meta = (n: number, down: number[] = []) =>
  Array.from({ length: n }, (_, i) => ({
    partitionErrorCode: 0,
    partitionId: i,
    leader: down.includes(i) ? -1 : 1,
    replicas: [1],
    isr: [1],
  }));

describe('partitioner', () => {
  it("hashes like Kafka's murmur2 (known values from the Java client's tests)", () => {
    // org.apache.kafka.common.utils.UtilsTest#testMurmur2
    const cases: Array<[string, number]> = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [key, hash] of cases) {
      expect(murmur2(key)).toBe(hash);
      expect(kafkajsMurmur2(key)).toBe(hash);
    }
  });

  it('agrees with kafkajs on 10,000 generated keys of every length and byte', () => {
    const rand = rng(7);
    for (let n = 0; n < 10_000; n++) {
      const length = Math.floor(rand() * 130);
      const bytes = Buffer.alloc(length);
      for (let i = 0; i < length; i++) bytes[i] = Math.floor(rand() * 256);
      expect(murmur2(bytes)).toBe(kafkajsMurmur2(bytes));
      // as strings too: workspace ids and user ids with non-ASCII characters
      const s = `ws-${n}/${bytes.toString('latin1')}é😀`;
      expect(murmur2(s)).toBe(kafkajsMurmur2(s));
    }
  });

  it('chooses the partition kafkajs chooses for keyed messages, and honours an explicit one', () => {
    const ours = defaultPartitioner();
    const theirs = Partitioners.DefaultPartitioner();
    for (const partitions of [1, 4, 8, 13]) {
      const partitionMetadata = meta(partitions);
      for (let i = 0; i < 2000; i++) {
        const message = { key: `ws_${i % 7}/user-${i}`, value: 'x' };
        expect(ours({ topic: 't', partitionMetadata, message })).toBe(
          theirs({ topic: 't', partitionMetadata, message }),
        );
      }
      expect(ours({ topic: 't', partitionMetadata, message: { key: 'k', value: 'x', partition: 0 } })).toBe(
        0,
      );
    }
  });

  it('spreads keyless messages over the partitions that have a leader', () => {
    const ours = defaultPartitioner();
    const partitionMetadata = meta(4, [1]);
    const seen = new Map<number, number>();
    for (let i = 0; i < 300; i++) {
      const p = ours({ topic: 't', partitionMetadata, message: { key: null, value: 'x' } });
      seen.set(p, (seen.get(p) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual([0, 2, 3]);
    for (const count of seen.values()) expect(count).toBe(100);
  });
});
