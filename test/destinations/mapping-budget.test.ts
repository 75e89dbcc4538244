// One render budget for the whole mapping of one event: a mapping of up to 100 Liquid fields
// costs at most MAPPING_RENDER_BUDGET_MS of rendering an event, not 100 render limits; the
// field that runs out is named. Pure logic (no Kafka, no Redis).
import { describe, expect, it } from 'vitest';
import {
  applyMapping,
  DestinationError,
  MAPPING_RENDER_BUDGET_MS,
  MAX_MAPPING_FIELDS,
} from '../../schemas/destination.ts';

/** A loop that renders for far longer than any limit (a million iterations of three filters: ~3 s unlimited here; little memory). */
const SLOW =
  '{% for i in (1..1000) %}{% for j in (1..1000) %}{% assign x = j | plus: 1 | times: 2 | minus: 3 %}{% endfor %}{% endfor %}';

describe('the render budget of a mapping', () => {
  it('renders a normal mapping of many Liquid fields as before', async () => {
    const mapping: Record<string, { liquid: string }> = {};
    for (let i = 0; i < MAX_MAPPING_FIELDS; i++) mapping[`f${i}`] = { liquid: `{{ userId }}-${i}` };
    const out = (await applyMapping(mapping, { userId: 'u1' })) as Record<string, string>;
    expect(Object.keys(out)).toHaveLength(MAX_MAPPING_FIELDS);
    expect(out.f0).toBe('u1-0');
    expect(out.f99).toBe('u1-99');
  });

  it('shares one budget among the fields and names the first one past it', async () => {
    // each render "takes" 100 ms on this clock: f0 and f1 spend 200, f2 gets the last 50
    // (and spends 100 more), so f3 finds nothing left and is not rendered
    let clock = 0;
    const now = () => {
      clock += 100;
      return clock;
    };
    const mapping = {
      a: { liquid: 'a' },
      b: { liquid: 'b' },
      user: 'userId',
      c: { liquid: 'c' },
      d: { liquid: 'd' },
    };
    const err = await applyMapping(mapping, { userId: 'u1' }, { budgetMs: 250, now }).catch((e) => e);
    expect(err).toBeInstanceOf(DestinationError);
    expect((err as Error).message).toMatch(/^mapping\.d: over the Liquid render time limit/);
    expect((err as Error).message).toContain('250 ms for all the fields of one event');
    // the same mapping with time to spare maps in full
    expect(await applyMapping(mapping, { userId: 'u1' }, { budgetMs: 1000, now })).toEqual({
      a: 'a',
      b: 'b',
      user: 'u1',
      c: 'c',
      d: 'd',
    });
  });

  it('bounds a hostile mapping of 100 slow fields to about one budget, not 100 render limits', async () => {
    const mapping: Record<string, { liquid: string }> = { fast: { liquid: '{{ userId }}' } };
    for (let i = 0; i < MAX_MAPPING_FIELDS - 1; i++) mapping[`slow${i}`] = { liquid: SLOW };
    const started = performance.now();
    const err = await applyMapping(mapping, { userId: 'u1' }).catch((e) => e);
    const took = performance.now() - started;
    expect(err).toBeInstanceOf(DestinationError);
    // the first slow field spends what a field may; the mapping stops there
    expect((err as Error).message).toMatch(/^mapping\.slow\d+: over the Liquid render time limit/);
    // unbounded, 99 fields of 200 ms would be ~20 s; generous slack for a loaded machine
    expect(took).toBeLessThan(MAPPING_RENDER_BUDGET_MS + 1500);
  });

  it('gives the slow field only what the fields before it left', async () => {
    // on this clock the first field spends 240 of 250 ms: the slow one gets 10 ms of real time
    let calls = 0;
    const now = () => {
      calls++;
      return calls === 2 ? 240 : calls === 1 ? 0 : performance.now();
    };
    const started = performance.now();
    const err = await applyMapping({ first: { liquid: 'x' }, slow: { liquid: SLOW } }, {}, { now }).catch(
      (e) => e,
    );
    expect((err as Error).message).toMatch(/^mapping\.slow: over the Liquid render time limit/);
    // far less than the 200 ms a field alone may take (slack for a loaded machine)
    expect(performance.now() - started).toBeLessThan(150);
  });
});
