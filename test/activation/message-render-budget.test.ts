// One render budget per message: an email's subject, text and html (an SMS body, a push title
// and body) share MESSAGE_RENDER_BUDGET_MS of Liquid rendering, each field at most
// RENDER_LIMIT_MS; a message that runs out is refused (a permanent failure, never retried)
// naming the field that ran out. Pure logic (no Kafka, no Redis).
import { describe, expect, it } from 'vitest';
import { renderTemplates, type SendRequest } from '../../activation/channels/channel.ts';
import {
  MESSAGE_RENDER_BUDGET_MS,
  RENDER_LIMIT_MS,
  RenderBudgetError,
  renderBudget,
} from '../../schemas/liquid-template.ts';

/** A loop that renders for far longer than any limit (a million iterations of three filters: ~3 s unlimited here; little memory). */
const SLOW =
  '{% for i in (1..1000) %}{% for j in (1..1000) %}{% assign x = j | plus: 1 | times: 2 | minus: 3 %}{% endfor %}{% endfor %}';

const req = {
  campaign: { id: 'c1', name: 'Welcome' },
  change: {
    type: 'entered',
    profileId: 'p1',
    userId: 'u1',
    segmentId: 's1',
    occurredAt: '2026-05-01T10:00:00Z',
    messageId: 'm1',
    traits: { firstName: 'Ada' },
  },
  sendKey: 'k1',
  recipient: 'ada@example.com',
  unsubscribeUrl: 'https://example.invalid/u',
  nowMs: 0,
} as unknown as SendRequest;

/** A clock that moves `step` ms each time it is read (a render reads it twice). */
function steppingClock(step: number) {
  let clock = 0;
  return () => {
    clock += step;
    return clock;
  };
}

describe('the render budget of one message', () => {
  it('renders a normal email as before', async () => {
    const r = await renderTemplates(
      { subject: 'Hi {{ traits.firstName }}', text: '{{ campaign.name }}', html: '<p>{{ "<b>" }}</p>' },
      req,
      { html: 'html' },
    );
    expect(r).toEqual({ text: { subject: 'Hi Ada', text: 'Welcome', html: '<p>&lt;b&gt;</p>' } });
  });

  it('shares one budget among the fields and refuses the send naming the first one past it', async () => {
    // each render "takes" 100 ms on this clock (read twice, 100 ms apart): subject and text spend 200 of 250, html gets
    // the last 50 and spends 100 more, so preheader finds nothing left and is not rendered
    const templates = { subject: 's', text: 't', html: 'h', preheader: 'p' };
    const r = await renderTemplates(templates, req, {}, { now: steppingClock(100) });
    expect('refused' in r).toBe(true);
    if (!('refused' in r)) return;
    expect(r.refused.retriable).toBe(false);
    expect(r.refused.ok).toBe(false);
    expect(r.refused.error).toBe(
      `template preheader: over the Liquid render time limit (${RENDER_LIMIT_MS} ms a field, ${MESSAGE_RENDER_BUDGET_MS} ms for all the fields of one message)`,
    );
    // the same message with time to spare renders in full
    expect(await renderTemplates(templates, req, {}, { budgetMs: 1000, now: steppingClock(100) })).toEqual({
      text: templates,
    });
  });

  it('bounds an email of three slow fields to about one budget, not three render limits', async () => {
    const started = performance.now();
    const r = await renderTemplates({ subject: 'Hi', text: SLOW, html: SLOW }, req, { html: 'html' });
    const took = performance.now() - started;
    expect('refused' in r && r.refused.error).toMatch(/^template text: over the Liquid render time limit/);
    expect('refused' in r && r.refused.retriable).toBe(false);
    // unbounded this was 2 × 200 ms; generous slack for a loaded machine
    expect(took).toBeLessThan(MESSAGE_RENDER_BUDGET_MS + 1500);
  });

  it('gives a slow field only what the fields before it left', async () => {
    // on this clock the subject spends 240 of 250 ms: the slow text gets 10 ms of real time
    let calls = 0;
    const now = () => {
      calls++;
      return calls === 2 ? 240 : calls === 1 ? 0 : performance.now();
    };
    const started = performance.now();
    const r = await renderTemplates({ subject: 'x', text: SLOW }, req, {}, { now });
    expect('refused' in r && r.refused.error).toMatch(/^template text: over the Liquid render time limit/);
    // far less than the 200 ms a field alone may take (slack for a loaded machine)
    expect(performance.now() - started).toBeLessThan(150);
  });

  it('keeps a template error a template error (not a budget error)', async () => {
    const r = await renderTemplates({ subject: '{{ x | nosuchfilter }}' }, req);
    expect('refused' in r && r.refused.error).toMatch(/^template: /);
    expect('refused' in r && r.refused.retriable).toBe(false);
  });

  it('renderBudget counts only the time spent in renders and throws RenderBudgetError', async () => {
    const budget = renderBudget(250, { now: steppingClock(50) });
    expect(await budget.render('a', '{{ v }}', { v: 1 })).toBe('1');
    expect(budget.spentMs).toBe(50);
    const err = await budget.render('b', SLOW, {}).catch((e) => e);
    expect(err).toBeInstanceOf(RenderBudgetError);
    expect((err as RenderBudgetError).field).toBe('b');
  });
});
