import { describe, expect, it } from 'vitest';
import { clusterId, kafkaVersion } from './kafka.ts';

describe('local Kafka', () => {
  it('makes cluster ids the storage tool accepts (22 URL-safe characters, never a leading dash)', () => {
    for (let i = 0; i < 5000; i++) {
      const id = clusterId();
      expect(id).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
    }
  });

  it('reads the broker version from the pom', () => {
    expect(kafkaVersion()).toMatch(/^4\.\d+\.\d+$/);
  });
});
