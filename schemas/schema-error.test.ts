import { Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { describe, expect, it } from 'vitest';
import { fieldPath, firstSchemaError } from './schema-error.ts';

const Body = TypeCompiler.Compile(
  Type.Object(
    {
      steps: Type.Array(Type.Object({ event: Type.String({ minLength: 1 }) }), { minItems: 1 }),
      size: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, errorMessage: 'an integer from 1 to 10' })),
    },
    { additionalProperties: false },
  ),
);

describe('firstSchemaError', () => {
  it('passes a right value', () => {
    expect(firstSchemaError(Body, { steps: [{ event: 'a' }] })).toBeUndefined();
  });

  it('names the field, dotted or with brackets', () => {
    const value = { steps: [{ event: 'a' }, { event: '' }] };
    expect(firstSchemaError(Body, value)?.path).toBe('steps.1.event');
    expect(firstSchemaError(Body, value, { brackets: true })?.path).toBe('steps[1].event');
  });

  it("uses a schema's own errorMessage, also for a missing field", () => {
    expect(firstSchemaError(Body, { steps: [{ event: 'a' }], size: 11 })).toMatchObject({
      path: 'size',
      message: 'an integer from 1 to 10',
      unknownField: false,
    });
    expect(firstSchemaError(Body, {})).toMatchObject({ path: 'steps', unknownField: false });
  });

  it('tells an unknown field from a wrong value', () => {
    expect(firstSchemaError(Body, { steps: [{ event: 'a' }], extra: 1 })).toMatchObject({
      path: 'extra',
      unknownField: true,
    });
  });

  it('reads escaped pointers', () => {
    expect(fieldPath('/a~1b/c~0d')).toBe('a/b.c~d');
    expect(fieldPath('')).toBe('');
    expect(fieldPath('/0/x', { brackets: true })).toBe('[0].x');
  });
});
