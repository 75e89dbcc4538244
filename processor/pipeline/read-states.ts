// Profiles' current states, read again: for a profile the batch's script calls left
// incomplete, for one whose recorded membership raced another writer, and for reevaluate.

import { type ProfileState, parseApplyResult, queueReadProfile } from '../../profiles/apply-event.ts';
import type { ProcessorDeps } from '../pipeline.ts';
import { type Recheck, type SettleItem, tagOf } from './shared.ts';

/** Profiles' current states, in one round trip (null: erased or merged away). */
export async function readStates(
  deps: Pick<ProcessorDeps, 'redis' | 'redisPrefix'>,
  list: ReadonlyArray<{ ws: string; profileId: string }>,
): Promise<Array<ProfileState | null>> {
  const pipe = deps.redis.pipeline();
  for (const r of list) queueReadProfile(pipe, tagOf(deps.redisPrefix, r.ws), r.profileId);
  const replies = (await pipe.exec()) ?? [];
  return list.map((_, i) => {
    const [err, raw] = replies[i] ?? [null, null];
    if (err) throw err;
    return parseApplyResult(raw);
  });
}

/** The profiles to evaluate again, on a fresh read (those erased or merged away meanwhile left out). */
export async function readAgain(
  deps: Pick<ProcessorDeps, 'redis' | 'redisPrefix'>,
  stale: Recheck[],
): Promise<SettleItem[]> {
  const fresh = await readStates(deps, stale);
  const again: SettleItem[] = [];
  stale.forEach((r, i) => {
    const state = fresh[i];
    if (state) again.push({ ws: r.ws, state, event: r.event, touched: r.touched });
  });
  return again;
}
