// The page definition's checks and the variant choice: a visitor's variant depends only on
// their anonymousId, the page and the weights, and new visitors split by the weights.
import { describe, expect, it } from 'vitest';
import { DefinitionInputError } from './definition-input.ts';
import { checkPageInput, chooseVariant, linkError, type PageVariant, pageVariants, SLUG } from './page.ts';

const v = (id: string, weight: number): PageVariant => ({ id, weight, blocks: [{ type: 'text', text: id }] });

describe('chooseVariant', () => {
  it('gives a visitor the same variant every time, and splits visitors by the weights', () => {
    const variants = [v('a', 1), v('b', 2), v('c', 0), v('d', 1)];
    const n = 20_000;
    const count = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const chosen = chooseVariant(variants, `anon-${i}`, 'pg_1').id;
      expect(chooseVariant(variants, `anon-${i}`, 'pg_1').id).toBe(chosen);
      count.set(chosen, (count.get(chosen) ?? 0) + 1);
    }
    expect(count.get('c')).toBeUndefined(); // weight 0: nobody
    // within 5 standard deviations of the expected shares
    for (const [id, share] of [
      ['a', 0.25],
      ['b', 0.5],
      ['d', 0.25],
    ] as const) {
      const sd = Math.sqrt(n * share * (1 - share));
      expect(Math.abs((count.get(id) ?? 0) - n * share), id).toBeLessThan(5 * sd);
    }
  });

  it('places a visitor independently on each page', () => {
    const variants = [v('a', 1), v('b', 1)];
    let differ = 0;
    for (let i = 0; i < 1000; i++)
      if (chooseVariant(variants, `anon-${i}`, 'pg_1').id !== chooseVariant(variants, `anon-${i}`, 'pg_2').id)
        differ++;
    // independent halves disagree about half of the time
    expect(differ).toBeGreaterThan(400);
    expect(differ).toBeLessThan(600);
  });

  it('serves a page without variants as its one variant "default"', () => {
    const [only] = pageVariants({ name: 'x', slug: 'x', blocks: [{ type: 'text', text: 't' }] });
    expect(only).toMatchObject({ id: 'default', weight: 1 });
    expect(chooseVariant([only!], 'anyone', 'pg')).toBe(only);
  });
});

describe('checkPageInput', () => {
  const noForms = async () => false;
  const error = async (body: unknown, forms = noForms) => {
    try {
      await checkPageInput(body, forms);
    } catch (err) {
      expect(err).toBeInstanceOf(DefinitionInputError);
      return (err as Error).message;
    }
    return undefined;
  };

  it('takes URL-safe slugs only', () => {
    for (const ok of ['a', 'spring-offer', '2026-q1', 'a1-b2-c3']) expect(SLUG.test(ok), ok).toBe(true);
    for (const bad of ['', '-a', 'a-', 'A', 'a_b', 'a/b', '..', 'a.b', 'é', 'a b', 'x'.repeat(81)])
      expect(SLUG.test(bad), bad).toBe(false);
  });

  it('refuses links that are not http(s)', () => {
    expect(linkError('https://example.com/x?y=1')).toBeUndefined();
    expect(linkError('javascript:alert(1)')).toMatch(/http or https/);
    expect(linkError('JAVASCRIPT:alert(1)')).toMatch(/http or https/);
    expect(linkError(' https://example.com')).toMatch(/spaces/);
    expect(linkError('/relative')).toMatch(/absolute/);
    expect(linkError('vbscript:x')).toMatch(/http or https/);
  });

  it('names the field that is wrong', async () => {
    expect(await error({ name: 'x', slug: 'ok', blocks: [{ type: 'form', formId: 'frm_x' }] })).toBe(
      'blocks[0].formId: no form frm_x in this workspace',
    );
    expect(
      await error(
        {
          name: 'x',
          slug: 'ok',
          variants: [
            v('a', 1),
            { ...v('b', 1), blocks: [{ type: 'image', url: 'ftp://x.example/a.png', alt: '' }] },
          ],
        },
        noForms,
      ),
    ).toMatch(/^variants\[1\]\.blocks\[0\]\.url: must be http or https/);
    expect(await error({ name: 'x', slug: 'ok', variants: [v('a', 1)] })).toMatch(/^variants/);
    expect(
      await error({ name: 'x', slug: 'ok', blocks: [{ type: 'heading', text: 'h', level: 4 }] }),
    ).toMatch(/^blocks\.0/);
  });

  it('checks each form of a page once', async () => {
    const asked: string[] = [];
    const input = await checkPageInput(
      {
        name: 'x',
        slug: 'ok',
        variants: [
          { id: 'a', weight: 1, blocks: [{ type: 'form', formId: 'frm_1' }] },
          { id: 'b', weight: 1, blocks: [{ type: 'form', formId: 'frm_1' }] },
        ],
      },
      async (id) => {
        asked.push(id);
        return true;
      },
    );
    expect(input.variants).toHaveLength(2);
    expect(asked).toEqual(['frm_1']);
  });
});
