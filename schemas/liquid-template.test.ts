import { describe, expect, it } from 'vitest';
import { renderTemplate, templateError } from './liquid-template.ts';

describe('Liquid templates, sandboxed', () => {
  it('renders traits and filters', async () => {
    expect(
      await renderTemplate('Hi {{ traits.name | upcase }}{% if traits.vip %}!{% endif %}', {
        traits: { name: 'ada', vip: true },
      }),
    ).toBe('Hi ADA!');
  });

  it('reports syntax errors', () => {
    expect(templateError('{{ traits.name ')).toMatch(/not closed|output/i);
    expect(templateError('{% if x %}no end')).toBeDefined();
    expect(templateError('fine {{ x }}')).toBeUndefined();
  });

  it('refuses unknown filters', () => {
    expect(templateError('{{ x | no_such_filter }}')).toMatch(/undefined filter/);
  });

  it('reads nothing from the file system', async () => {
    await expect(renderTemplate("{% include '/etc/passwd' %}", {})).rejects.toThrow();
    await expect(renderTemplate("{% render '../../package.json' %}", {})).rejects.toThrow();
  });

  it('sees own properties only', async () => {
    expect(await renderTemplate('{{ traits.constructor }}{{ traits.__proto__ }}', { traits: { a: 1 } })).toBe(
      '',
    );
  });

  it('bounds render time and output size', async () => {
    await expect(
      renderTemplate(
        '{% for a in (1..100000) %}{% for b in (1..100000) %}{{ b }}{% endfor %}{% endfor %}',
        {},
      ),
    ).rejects.toThrow();
    await expect(renderTemplate("{{ 'x' | append: big }}", { big: 'y'.repeat(300 * 1024) })).rejects.toThrow(
      /over/,
    );
  });
});
