// The forms and landing-page editors' model against the server's own checks: what the
// editors send is accepted (only the settings of each field's type, options trimmed), a
// definition read back edits to the same body, and every 400 the server gives for a bad
// definition names a control the editor has, so the message is shown next to it.
import { describe, expect, it } from 'vitest';
import { DefinitionInputError } from '../../schemas/definition-input.ts';
import { checkFormInput } from '../../schemas/form.ts';
import { checkPageInput } from '../../schemas/page.ts';
import {
  blank,
  blankConsent,
  blankField,
  errorTarget,
  type FormState,
  formBody,
  formKeys,
  formState,
  moved,
  type PageState,
  pageBody,
  pageKeys,
  pageState,
  parseApiError,
  refinePageError,
} from './form-model.js';

/** The full form the editor can make: one field of each type, a consent box, a redirect. */
function fullForm(): FormState {
  const s = formState(null);
  s.name = 'Everything';
  const add = (over: Partial<FormState['fields'][number]>) =>
    s.fields.push({ ...blankField(s.fields.length), ...over });
  add({
    name: 'company',
    label: 'Company',
    type: 'text',
    trait: 'company_name',
    maxLength: '80',
    pattern: '[A-Za-z ]+',
  });
  add({ name: 'phone', label: 'Phone', type: 'tel', pattern: '\\+?[0-9 ]{6,20}' });
  add({
    name: 'seats',
    label: 'Seats',
    type: 'number',
    min: '1',
    max: '500',
    pattern: 'left over',
    maxLength: '9',
  });
  add({ name: 'terms', label: 'Terms', type: 'checkbox', required: true });
  add({ name: 'role', label: 'Role', type: 'select', options: ' Marketing \n\nSales\n' });
  add({ name: 'source', label: 'Source', type: 'hidden', value: 'webinar' });
  s.consents.push({ ...blankConsent(0), text: 'Email me the newsletter.', required: true });
  s.successKind = 'redirect';
  s.redirect = ' https://example.com/thanks ';
  return s;
}

/** The server's 400 for a body, as the console reads it: the control it belongs to, and why. */
function serverError(check: () => unknown, keys: string[]) {
  try {
    check();
  } catch (err) {
    if (!(err instanceof DefinitionInputError)) throw err;
    const p = parseApiError({ status: 400, message: err.message });
    expect(p, err.message).not.toBeNull();
    return { key: errorTarget(p!.path, keys), message: p!.message };
  }
  throw new Error('accepted');
}

describe('the form editor model', () => {
  it('sends what the server accepts, with only the settings of each type', () => {
    expect(checkFormInput(formBody({ ...formState(null), name: 'Newsletter' }))).toBeTruthy();
    const body = formBody(fullForm()) as { fields: Array<Record<string, unknown>>; success: unknown };
    expect(checkFormInput(body)).toBeTruthy();
    expect(body.fields.find((f) => f.name === 'seats')).toEqual({
      name: 'seats',
      label: 'Seats',
      type: 'number',
      min: 1,
      max: 500,
    });
    expect(body.fields.find((f) => f.name === 'role')!.options).toEqual(['Marketing', 'Sales']);
    expect(body.fields.find((f) => f.name === 'company')).toMatchObject({
      trait: 'company_name',
      maxLength: 80,
    });
    expect(body.fields.find((f) => f.name === 'terms')).toEqual({
      name: 'terms',
      label: 'Terms',
      type: 'checkbox',
      required: true,
    });
    expect(body.success).toEqual({ redirect: 'https://example.com/thanks' });
  });

  it('reads a definition back into the same body', () => {
    const body = formBody(fullForm());
    const def = { ...checkFormInput(body), id: 'frm_1', version: 3, status: 'active' };
    expect(formBody(formState(def))).toEqual(body);
  });

  it('maps every server 400 to the control that caused it', () => {
    const cases: Array<[string, (s: FormState) => void, string]> = [
      ['a nested quantifier', (s) => (s.fields[1]!.pattern = '(a+)+'), 'fields[1].pattern'],
      ['an invalid regular expression', (s) => (s.fields[2]!.pattern = '[a-'), 'fields[2].pattern'],
      ['a name used twice', (s) => (s.fields[2]!.name = 'company'), 'fields[2].name'],
      ['a name starting with a digit', (s) => (s.fields[1]!.name = '1company'), 'fields[1].name'],
      ['a reserved name', (s) => (s.fields[1]!.name = 'anonymousId'), 'fields[1].name'],
      ['a trait set twice', (s) => (s.fields[2]!.trait = 'company_name'), 'fields[2].trait'],
      ['a bad trait name', (s) => (s.fields[1]!.trait = 'company-name'), 'fields[1].trait'],
      ['an empty label', (s) => (s.fields[0]!.label = ''), 'fields[0].label'],
      ['a select without options', (s) => (s.fields[5]!.options = '\n \n'), 'fields[5].options'],
      ['a consent box named as a field', (s) => (s.consents[0]!.name = 'phone'), 'consents[0].name'],
      ['a bad purpose', (s) => (s.consents[0]!.purpose = 'Big News'), 'consents[0].purpose'],
      ['an empty consent text', (s) => (s.consents[0]!.text = ''), 'consents[0].text'],
      ['a redirect that is no http(s) URL', (s) => (s.redirect = 'javascript:alert(1)'), 'success.redirect'],
      ['an empty name', (s) => (s.name = ''), 'name'],
    ];
    for (const [what, spoil, key] of cases) {
      const s = fullForm();
      spoil(s);
      expect(serverError(() => checkFormInput(formBody(s)), formKeys(s)).key, what).toBe(key);
    }
  });

  it('names nothing it does not have, and moves items', () => {
    expect(errorTarget('fields[9].name', formKeys(formState(null)))).toBe('fields');
    expect(errorTarget('body', ['name'])).toBeNull();
    expect(parseApiError({ status: 409, message: 'slug: taken' })).toBeNull();
    expect(parseApiError({ status: 400, message: 'fields.2.name: bad' })).toEqual({
      path: 'fields[2].name',
      message: 'bad',
    });
    expect(moved([1, 2, 3], 0, -1)).toEqual([1, 2, 3]);
    expect(moved([1, 2, 3], 0, 1)).toEqual([2, 1, 3]);
    expect(moved([1, 2, 3], 1, 0)).toEqual([1, 3]);
  });
});

describe('the landing page editor model', () => {
  const forms = new Set(['frm_1']);
  const exists = async (id: string) => forms.has(id);
  function abPage(): PageState {
    const s = pageState(null);
    s.name = 'Spring';
    s.slug = 'spring-offer';
    s.blocks = [
      { ...blank.heading(), text: 'Spring', level: '2' },
      { ...blank.text(), text: 'Line one.\n\nLine two.' },
      { ...blank.image(), url: 'https://cdn.example.com/a.png', alt: 'A', width: '640' },
      { ...blank.form(), formId: 'frm_1' },
      { ...blank.button(), label: 'More', url: 'https://example.com/more' },
    ];
    s.ab = true;
    s.variants = [
      { id: 'a', weight: '70', blocks: s.blocks.map((b) => ({ ...b })) },
      { id: 'b', weight: '30', blocks: s.blocks.map((b) => ({ ...b })) },
    ];
    return s;
  }

  it('sends what the server accepts and reads it back the same', async () => {
    const one = { ...abPage(), ab: false };
    const single = pageBody(one);
    expect(await checkPageInput(single, exists)).toBeTruthy();
    expect(single).not.toHaveProperty('variants');
    expect((single.blocks as unknown[])[0]).toEqual({ type: 'heading', text: 'Spring', level: 2 });
    expect((single.blocks as unknown[])[2]).toEqual({
      type: 'image',
      url: 'https://cdn.example.com/a.png',
      alt: 'A',
      width: 640,
    });
    const ab = pageBody(abPage());
    expect(await checkPageInput(ab, exists)).toBeTruthy();
    expect(ab).not.toHaveProperty('blocks');
    expect(pageBody(pageState(ab))).toEqual(ab);
    expect(pageBody(pageState(single))).toEqual(single);
  });

  it('maps every server 400 to the control that caused it', async () => {
    const cases: Array<[string, (s: PageState) => void, string]> = [
      ['an upper-case slug', (s) => (s.slug = 'Spring'), 'slug'],
      [
        'a javascript: image',
        (s) => (s.variants[1]!.blocks[2]!.url = 'javascript:alert(1)'),
        'variants[1].blocks[2].url',
      ],
      [
        'a button link with credentials',
        (s) => (s.variants[0]!.blocks[4]!.url = 'https://u:p@example.com/'),
        'variants[0].blocks[4].url',
      ],
      [
        'a form of another workspace',
        (s) => (s.variants[1]!.blocks[3]!.formId = 'frm_other'),
        'variants[1].blocks[3].formId',
      ],
      ['a variant id used twice', (s) => (s.variants[1]!.id = 'a'), 'variants[1].id'],
      ['a bad variant id', (s) => (s.variants[0]!.id = 'a b'), 'variants[0].id'],
      [
        'no weight at all',
        (s) => {
          for (const v of s.variants) v.weight = '0';
        },
        'variants',
      ],
      // a block is one of several shapes: the server names only the block, the console finds the control
      ['an empty heading', (s) => (s.variants[0]!.blocks[0]!.text = ''), 'variants[0].blocks[0].text'],
      ['a width too large', (s) => (s.variants[0]!.blocks[2]!.width = '9000'), 'variants[0].blocks[2].width'],
      [
        'a long button label on a page without variants',
        (s) => {
          s.ab = false;
          s.blocks[4]!.label = 'x'.repeat(101);
        },
        'blocks[4].label',
      ],
    ];
    for (const [what, spoil, key] of cases) {
      const s = abPage();
      spoil(s);
      let got: { key: string | null } | undefined;
      try {
        await checkPageInput(pageBody(s), exists);
      } catch (err) {
        if (!(err instanceof DefinitionInputError)) throw err;
        const p = parseApiError({ status: 400, message: err.message });
        got = { key: p && errorTarget(refinePageError(p, s).path, pageKeys(s)) };
      }
      expect(got?.key, what).toBe(key);
    }
  });
});
