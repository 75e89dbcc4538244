// The forms scenario's inputs and figures: what it posts is a valid submission of its form
// (so it measures the success path: two events produced, not a 400), one lead per request,
// and every form figure is set beside the tracking call's in the same run.
import { describe, expect, it } from 'vitest';
import { checkSubmission, type Posted } from '../ingest/form-submission.ts';
import { checkFormToken, signFormToken } from '../ingest/form-token.ts';
import { fillSlots, ID_SLOT } from './events.ts';
import type { Measurement } from './scenario.ts';
import { figures, formBodies, leadForm } from './scenarios/forms.ts';

const posted = (body: string): Posted => new Map(new URLSearchParams(body));

describe('bench forms scenario', () => {
  it('posts valid submissions of its form, each a different lead, consent ticked or not', () => {
    const form = leadForm();
    const token = signFormToken('s'.repeat(20), form.workspaceId, form.id, 1_000);
    for (const consent of [false, true]) {
      const bodies = formBodies(8, token, 'n1', consent);
      for (const [i, body] of bodies.entries()) {
        expect(body).toContain(ID_SLOT);
        const c = checkSubmission(form, posted(fillSlots(body, String(i).padStart(ID_SLOT.length, '0'))));
        expect(c.errors).toEqual({});
        expect(c.honeypot).toBe(false);
        expect(c.consents).toHaveLength(consent ? 1 : 0);
        expect(c.traits).toMatchObject({ lead_source: 'report', team_size: 10 + i });
        expect(
          checkFormToken(c.token, {
            secret: 's'.repeat(20),
            ws: form.workspaceId,
            formId: form.id,
            nowMs: 2_000,
            minFillMs: 0,
            maxAgeMs: 60_000,
          }),
        ).toEqual({ ok: true });
      }
      const emails = bodies.map(
        (b, i) => checkSubmission(form, posted(fillSlots(b, String(i).padStart(16, '0')))).traits.email,
      );
      expect(new Set(emails).size).toBe(bodies.length);
    }
  });

  it('sets each form figure beside the tracking call of the same run', () => {
    const m = (load: string, opsPerSec: number, cpuUs: number, errors = 0): Measurement => ({
      scenario: 'forms',
      load,
      run: 1,
      opsPerSec,
      eventsPerSec: opsPerSec,
      p50Ms: 1,
      p99Ms: 2,
      maxMs: 3,
      errors,
      errorSamples: [],
      abandoned: 0,
      serverCpuPct: 50,
      generatorCpuPct: 5,
      cpuUsPerEvent: cpuUs,
      machineBusyPct: 60,
      jitterPct: 5,
    });
    const fs = figures([m('form post', 500, 300), m('form+consent', 400, 320, 2), m('track', 1000, 150)]);
    const tp = fs.find((f) => f.figure === 'form post: throughput')!;
    expect(tp.compareTo).toEqual({ scenario: 'forms', figure: 'track: throughput' });
    expect(fs.find((f) => f.figure === 'form+consent: CPU per request')!.compareTo).toEqual({
      scenario: 'forms',
      figure: 'track: CPU per request',
    });
    expect(fs.filter((f) => f.figure.startsWith('track:')).every((f) => f.compareTo === undefined)).toBe(
      true,
    );
    expect(fs.find((f) => f.figure === 'form+consent: errors')).toMatchObject({
      runs: [2],
      target: { kind: 'atMost', value: 0 },
    });
    // without the tracking call measured, nothing to compare with
    expect(figures([m('form post', 500, 300)]).every((f) => f.compareTo === undefined)).toBe(true);
  });
});
