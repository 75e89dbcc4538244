import { describe, expect, it } from 'vitest';
import { renderTemplate, templateError, templateFormat } from './liquid-template.ts';

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

describe('HTML templates escape their outputs', () => {
  const scope = { traits: { name: '<script>x</script> & "q"', tags: ['<b>'] } };

  it('escapes every output, once, and | raw opts out', async () => {
    const html = (t: string) => renderTemplate(t, scope, 'html');
    expect(await html('<p>{{ traits.name }}</p>')).toBe(
      '<p>&lt;script&gt;x&lt;/script&gt; &amp; &#34;q&#34;</p>',
    );
    expect(await html('{{ traits.name | upcase }}')).toBe('&lt;SCRIPT&gt;X&lt;/SCRIPT&gt; &amp; &#34;Q&#34;');
    expect(await html('{% for t in traits.tags %}{{ t }}{% endfor %}')).toBe('&lt;b&gt;');
    // an explicit escape is not escaped a second time
    expect(await html('{{ traits.name | escape }}')).toBe(await html('{{ traits.name }}'));
    expect(await html('{{ traits.name | raw }}')).toBe('<script>x</script> & "q"');
    // plain text stays plain
    expect(await renderTemplate('{{ traits.name }}', scope)).toBe('<script>x</script> & "q"');
  });

  it('knows which template fields are HTML', () => {
    expect(templateFormat('email', 'html')).toBe('html');
    expect(templateFormat('email', 'subject')).toBe('text');
    expect(templateFormat('email', 'text')).toBe('text');
    expect(templateFormat('sms', 'body')).toBe('text');
  });
});
