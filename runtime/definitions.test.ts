// The definitions watcher: a batch's check is never answered by a revision read before it
// began, and loads never overlap.
import { describe, expect, it } from 'vitest';
import { type DefinitionStore, watchDefinitions } from './definitions.ts';
import { createLogger } from './log.ts';

function fakeStore() {
  const state = { rev: '1', reads: 0, gate: undefined as Promise<void> | undefined };
  const store = {
    async revision() {
      state.reads++;
      const rev = state.rev; // read now, answered after the gate: a slow GET
      if (state.gate) await state.gate;
      return rev;
    },
  } as unknown as DefinitionStore;
  return { store, state };
}

const log = createLogger({ level: 'silent', name: 'definitions-test' });

describe('watchDefinitions', () => {
  it('current() after a change loads it, even while an older check is still under way', async () => {
    const { store, state } = fakeStore();
    const loadedAt: string[] = [];
    let loading = 0;
    let overlapped = false;
    const w = watchDefinitions({
      store,
      log,
      intervalMs: 3_600_000,
      load: async () => {
        if (loading++ > 0) overlapped = true;
        await new Promise((r) => setTimeout(r, 5));
        loadedAt.push(state.rev);
        loading--;
      },
    });
    await w.ready;
    await w.current(); // the start-up check has settled
    expect(loadedAt).toEqual(['1']);
    state.reads = 0;

    // a slow check reads revision 1; then a definition is saved (rev 2) and a batch asks
    let release!: () => void;
    state.gate = new Promise<void>((r) => {
      release = r;
    });
    const early = w.current();
    state.rev = '2';
    const afterSave = w.current();
    const joined = w.current(); // a third caller joins the queued check, no extra GET
    state.gate = undefined;
    release();
    await Promise.all([early, afterSave, joined]);
    expect(loadedAt).toEqual(['1', '2']);
    expect(state.reads).toBe(2); // the slow check, then one queued check for both later callers
    expect(overlapped).toBe(false);

    // nothing moved: one GET, no load
    await w.current();
    expect(loadedAt).toEqual(['1', '2']);
    w.stop();
  });

  it('a failed check rejects its callers, and the next one tries again', async () => {
    const { store, state } = fakeStore();
    let fail = false;
    const w = watchDefinitions({
      store,
      log,
      intervalMs: 3_600_000,
      load: async () => {
        if (fail) throw new Error('redis down');
      },
    });
    await w.ready;
    fail = true;
    state.rev = '2';
    await expect(w.current()).rejects.toThrow('redis down');
    fail = false;
    await expect(w.current()).resolves.toBeUndefined();
    w.stop();
  });
});
