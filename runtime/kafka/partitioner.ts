// The partitioner of our kafkajs producers: kafkajs's default (Kafka's Java client's:
// murmur2 of the key's bytes, positive, modulo the partition count; round robin without a
// key), with the same results computed in 32-bit integer arithmetic. kafkajs computes the
// hash with a 64-bit Long object per step and filters the partition list for every
// message: 3-5% of the CPU of a process that produces a message per event (processor,
// ingest). Only the low 32 bits of its products and xors reach the result, and Math.imul
// gives exactly those, so every key lands on the partition it always did.
import { randomBytes } from 'node:crypto';
import type { ICustomPartitioner } from 'kafkajs';

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Kafka's murmur2 of a key (its UTF-8 bytes for a string), as a signed 32-bit integer. */
export function murmur2(key: Buffer | string): number {
  const data = typeof key === 'string' ? Buffer.from(key) : key;
  const length = data.length;
  let h = (SEED ^ length) | 0;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const tail = length & 3;
  if (tail > 0) {
    if (tail === 3) h ^= data[whole + 2]! << 16;
    if (tail >= 2) h ^= data[whole + 1]! << 8;
    h ^= data[whole]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

const toPositive = (x: number) => x & 0x7fffffff;

/** kafkajs's DefaultPartitioner, partition for partition. */
export const defaultPartitioner: ICustomPartitioner = () => {
  const counters = new Map<string, number>();
  return ({ topic, partitionMetadata, message }) => {
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    const numPartitions = partitionMetadata.length;
    if (message.key !== null && message.key !== undefined)
      return toPositive(murmur2(message.key)) % numPartitions;
    let n = counters.get(topic) ?? randomBytes(4).readUInt32BE(0);
    n = toPositive(n + 1);
    counters.set(topic, n);
    const available = partitionMetadata.filter((p) => p.leader >= 0);
    if (available.length > 0) return available[n % available.length]!.partitionId;
    // none available: a partition all the same (the send is retried until one is)
    return n % numPartitions;
  };
};
