// Which failed kafkajs sends runtime/kafka/kafkajs.ts tries again. kafkajs runs one attempt
// (its retries are off) and wraps what that attempt hit in KafkaJSNumberOfRetriesExceeded,
// which itself says "not retriable": the cause decides.
import {
  KafkaJSConnectionError,
  KafkaJSNonRetriableError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
} from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { retriableSendError } from './kafkajs.ts';

const protocol = (type: string, retriable: boolean) =>
  new KafkaJSProtocolError({ message: type, type, code: 0, retriable } as unknown as Error);
const wrapped = (e: Error) =>
  new KafkaJSNumberOfRetriesExceeded(e, { retryCount: 0, retryTime: 100 } as never);

describe('retriableSendError', () => {
  it('retries what the attempt hit when it was transient, wrapped or not', () => {
    expect(retriableSendError(wrapped(protocol('LEADER_NOT_AVAILABLE', true)))).toBe(true);
    expect(retriableSendError(wrapped(protocol('NOT_LEADER_OR_FOLLOWER', true)))).toBe(true);
    expect(retriableSendError(wrapped(new KafkaJSConnectionError('Connection error: ECONNREFUSED')))).toBe(
      true,
    );
    expect(retriableSendError(protocol('REQUEST_TIMED_OUT', true))).toBe(true);
  });

  it('gives up at once on what another attempt cannot change', () => {
    expect(retriableSendError(wrapped(protocol('MESSAGE_TOO_LARGE', false)))).toBe(false);
    expect(retriableSendError(protocol('INVALID_RECORD', false))).toBe(false);
    expect(retriableSendError(new KafkaJSNonRetriableError('closed'))).toBe(false);
    expect(retriableSendError(new Error('something else'))).toBe(false);
    expect(retriableSendError(undefined)).toBe(false);
  });
});
