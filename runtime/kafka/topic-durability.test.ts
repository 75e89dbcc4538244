import { describe, expect, it } from 'vitest';
import {
  creationProblem,
  durabilityShortfalls,
  resolveTopicDurability,
  TopicDurabilityError,
  topicConfig,
} from './topic-durability.ts';

describe('resolveTopicDurability', () => {
  it.each([
    { brokers: 1, replication: 1, minInsync: 1 },
    { brokers: 2, replication: 2, minInsync: 1 },
    { brokers: 3, replication: 3, minInsync: 2 },
    { brokers: 6, replication: 3, minInsync: 2 },
  ])('defaults to $replication copies, $minInsync in sync, on $brokers broker(s)', ({ brokers, ...want }) => {
    expect(resolveTopicDurability({}, brokers)).toEqual(want);
  });

  it('derives min.insync from a configured replication', () => {
    expect(resolveTopicDurability({ replication: 5 }, 6)).toEqual({ replication: 5, minInsync: 4 });
    expect(resolveTopicDurability({ replication: 1 }, 3)).toEqual({ replication: 1, minInsync: 1 });
  });

  it('takes both when configured', () => {
    expect(resolveTopicDurability({ replication: 3, minInsync: 3 }, 3)).toEqual({
      replication: 3,
      minInsync: 3,
    });
  });

  it('refuses a min.insync above the replication, naming the variables', () => {
    expect(() => resolveTopicDurability({ replication: 2, minInsync: 3 }, 3)).toThrow(TopicDurabilityError);
    // with the replication left to its default on one broker
    expect(() => resolveTopicDurability({ minInsync: 2 }, 1)).toThrow(
      /CDP_TOPIC_MIN_INSYNC=2 .*replication factor 1.*CDP_TOPIC_REPLICATION/,
    );
  });

  it('refuses a cluster without brokers', () => {
    expect(() => resolveTopicDurability({}, 0)).toThrow(TopicDurabilityError);
  });
});

describe('creationProblem', () => {
  it('names a replication the cluster cannot hold', () => {
    expect(creationProblem({ replication: 3, minInsync: 2 }, 1)).toMatch(/CDP_TOPIC_REPLICATION=3.*has 1/);
    expect(creationProblem({ replication: 3, minInsync: 2 }, 3)).toBeNull();
  });
});

describe('durabilityShortfalls', () => {
  const want = { replication: 3, minInsync: 2 };
  it('lists topics with fewer copies or a lower min.insync than wanted', () => {
    expect(
      durabilityShortfalls(
        [
          { topic: 'ok', replication: 3, minInsync: 2 },
          { topic: 'more', replication: 5, minInsync: 3 },
          { topic: 'few', replication: 1, minInsync: 1 },
          { topic: 'loose', replication: 3, minInsync: 1 },
          { topic: 'unknown', replication: 3, minInsync: null },
          { topic: 'unknown-few', replication: 2, minInsync: null },
        ],
        want,
      ).map((s) => s.topic),
    ).toEqual(['few', 'loose', 'unknown-few']);
  });

  it('carries the values for the warning', () => {
    expect(durabilityShortfalls([{ topic: 't', replication: 1, minInsync: 1 }], want)).toEqual([
      { topic: 't', replication: 1, wantedReplication: 3, minInsync: 1, wantedMinInsync: 2 },
    ]);
  });
});

describe('topicConfig', () => {
  it('adds min.insync.replicas; a spec of its own wins', () => {
    expect(topicConfig({ replication: 3, minInsync: 2 }, { 'retention.ms': '1' })).toEqual({
      'min.insync.replicas': '2',
      'retention.ms': '1',
    });
    expect(topicConfig({ replication: 3, minInsync: 2 }, { 'min.insync.replicas': '3' })).toEqual({
      'min.insync.replicas': '3',
    });
  });
});
