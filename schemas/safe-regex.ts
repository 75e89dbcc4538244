// Regular expressions that come from definitions (form field patterns, tracking-plan `pattern`
// and `patternProperties`) run on RE2, Google's linear-time engine (as WebAssembly: re2-wasm),
// never on V8's backtracking one. Whatever the pattern, matching a visitor's or an event's value
// takes time proportional to its length: `(\w|\d)*` or `\d*\d*\d*x` cannot hold the ingest edge's
// event loop for seconds. RE2 has no backreferences and no lookaround; a pattern using them is
// refused when it is saved, with a message that says so.
//
// A call into RE2 costs about 1.5 µs (V8: tens of ns), so the simplest patterns, which no
// input can make V8 backtrack on (backtrackSafe: anchored at the start, no alternation, no
// repeated group, at most one quantifier that may vary), run on V8: `^ord_[0-9]+$`,
// `^[A-Z]{3}$`, the ids and codes plans mostly check.
import { RE2 } from 're2-wasm';

/** Compiled patterns kept per process; past this the oldest is freed (a definition's are few). */
const MAX_COMPILED = 1000;
const compiledPatterns = new Map<string, RE2 | RegExp>();

/** Frees an RE2's WebAssembly memory (re2-wasm keeps it until asked: no finalizer). */
function free(re: RE2 | RegExp): void {
  (re as unknown as { wrapper?: { delete?: () => void } }).wrapper?.delete?.();
}

function compiled(source: string, flags: string): RE2 | RegExp {
  const key = `${flags}/${source}`;
  let re = compiledPatterns.get(key);
  if (re) return re;
  re =
    !flags.includes('m') && backtrackSafe(source)
      ? new RegExp(source, `${flags}u`)
      : new RE2(source, `${flags}u`);
  if (compiledPatterns.size >= MAX_COMPILED) {
    const oldest = compiledPatterns.entries().next().value;
    if (oldest) {
      compiledPatterns.delete(oldest[0]);
      free(oldest[1]);
    }
  }
  compiledPatterns.set(key, re);
  return re;
}

/**
 * Why a pattern cannot be used, or undefined: JavaScript's syntax (unicode mode), minus what a
 * linear-time engine cannot do. Checked when a definition is saved.
 */
export function patternError(source: string): string | undefined {
  const unsupported = unsupportedConstruct(source);
  if (unsupported)
    return `${unsupported} is not supported (patterns run on a linear-time engine, RE2: no backreferences, no lookaround)`;
  try {
    new RegExp(source, 'u');
  } catch (err) {
    return `not a valid regular expression: ${(err as Error).message}`;
  }
  try {
    free(new RE2(source, 'u'));
  } catch (err) {
    // RE2's own limits, e.g. a repeat count over 1000 or a class it lacks
    return `not supported by the linear-time engine (RE2): ${(err as Error).message.replace(/^Invalid regular expression: /, '')}`;
  }
  return undefined;
}

/**
 * Whether V8's backtracking engine runs this pattern in time linear in the input: it is
 * anchored at the start (one attempt, not one per position), has no alternation and no
 * quantified group, and at most one quantifier whose count may vary (`*`, `+`, `?`, `{m,n}`,
 * `{m,}`; a fixed `{m}` is not a choice). Backtracking then only revisits that one
 * quantifier's count, each retry matching a fixed-length rest. Conservative: anything else
 * (and anything this scan does not understand) is left to RE2.
 */
export function backtrackSafe(source: string): boolean {
  if (source[0] !== '^') return false;
  let varying = 0;
  let afterAtom = false; // the last token can take a quantifier
  let afterQuantifier = false; // a `?` here makes the quantifier lazy, not a new one
  for (let i = 1; i < source.length; i++) {
    const ch = source[i]!;
    if (ch === '\\') {
      i++;
      afterAtom = true;
      afterQuantifier = false;
      continue;
    }
    if (ch === '[') {
      // to the class's closing bracket (escapes inside skipped; `]` first is literal only outside u-mode)
      let j = i + 1;
      if (source[j] === '^') j++;
      for (; j < source.length && source[j] !== ']'; j++) if (source[j] === '\\') j++;
      if (j >= source.length) return false;
      i = j;
      afterAtom = true;
      afterQuantifier = false;
      continue;
    }
    if (ch === '|') return false;
    if (ch === '(') {
      // `(?:` and `(?<name>` open a group like `(`; lookarounds were refused at save
      if (source[i + 1] === '?') {
        if (source[i + 2] === ':') i += 2;
        else {
          const named = /^\(\?<[A-Za-z_$][\w$]*>/.exec(source.slice(i));
          if (!named) return false;
          i += named[0].length - 1;
        }
      }
      afterAtom = false;
      afterQuantifier = false;
      continue;
    }
    if (ch === ')') {
      const next = source[i + 1];
      if (next === '*' || next === '+' || next === '?' || next === '{') return false;
      afterAtom = true;
      afterQuantifier = false;
      continue;
    }
    if (ch === '*' || ch === '+' || ch === '?') {
      if (ch === '?' && afterQuantifier) {
        afterQuantifier = false;
        continue;
      }
      if (!afterAtom) return false;
      varying++;
      afterAtom = false;
      afterQuantifier = true;
      continue;
    }
    if (ch === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(source.slice(i));
      if (!m) return false;
      if (!afterAtom) return false;
      if (m[2] !== undefined && m[3] !== m[1]) varying++;
      i += m[0].length - 1;
      afterAtom = false;
      afterQuantifier = true;
      continue;
    }
    afterAtom = ch !== '^' && ch !== '$';
    afterQuantifier = false;
  }
  return varying <= 1;
}

/**
 * Visits a pattern's characters outside character classes, with `escaped` true at a backslash
 * (the character it escapes, at i + 1, is not visited). Returns the first answer the visitor
 * gives (not undefined).
 */
function scanOutsideClasses<T>(
  source: string,
  visit: (i: number, escaped: boolean) => T | undefined,
): T | undefined {
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const ch = source[i];
    if (ch === '\\') {
      const answer = inClass ? undefined : visit(i, true);
      if (answer !== undefined) return answer;
      i++;
      continue;
    }
    if (inClass) {
      if (ch === ']') inClass = false;
      continue;
    }
    if (ch === '[') {
      inClass = true;
      continue;
    }
    const answer = visit(i, false);
    if (answer !== undefined) return answer;
  }
  return undefined;
}

/** A backreference or a lookaround outside a character class, named as written; else undefined. */
function unsupportedConstruct(source: string): string | undefined {
  return scanOutsideClasses(source, (i, escaped) => {
    if (escaped) {
      const next = source[i + 1] ?? '';
      if (/[1-9]/.test(next)) return `a backreference (\\${next})`;
      if (next === 'k' && source[i + 2] === '<') return 'a named backreference (\\k<…>)';
      return undefined;
    }
    if (source[i] !== '(' || source[i + 1] !== '?') return undefined;
    if (source.startsWith('(?<=', i) || source.startsWith('(?<!', i))
      return `a lookbehind (${source.slice(i, i + 4)})`;
    if (source[i + 2] === '=' || source[i + 2] === '!') return `a lookahead (${source.slice(i, i + 3)})`;
    return undefined;
  });
}

/**
 * Whether a regular expression repeats a group that itself holds a quantifier (`(a+)+`,
 * `((a*)b)+`, `(x{2,})*`): the classic exponential shape, refused in definitions (forms,
 * tracking plans) even though their patterns run in linear time, as a clear sign of a
 * mistake. Escapes and character classes are skipped; nested groups count for the group
 * around them.
 */
export function hasNestedQuantifier(pattern: string): boolean {
  const groups: boolean[] = []; // per open group: whether something inside repeats
  const found = scanOutsideClasses(pattern, (i, escaped) => {
    if (escaped) return undefined;
    const ch = pattern[i];
    if (ch === '(') groups.push(false);
    else if (ch === ')') {
      const inner = groups.pop() ?? false;
      const next = pattern[i + 1];
      const repeated = next === '+' || next === '*' || next === '{';
      if (inner && repeated) return true;
      if ((inner || repeated) && groups.length > 0) groups[groups.length - 1] = true;
    } else if ((ch === '+' || ch === '*' || ch === '{') && groups.length > 0)
      groups[groups.length - 1] = true;
    return undefined;
  });
  return found === true;
}

/** Whether `value` matches the pattern (as `new RegExp(source, flags + 'u').test(value)`, in linear time). */
export function safeTest(source: string, value: string, flags = ''): boolean {
  return compiled(source, flags.replace('u', '')).test(value);
}

/**
 * The engine for ajv's `code.regExp` option: ajv compiles a schema's `pattern` and
 * `patternProperties` through it. Each test looks the compiled pattern up, so freeing one
 * (past MAX_COMPILED) never leaves a validator holding a freed engine.
 */
export const linearRegExp = Object.assign(
  (source: string, flags: string) => ({
    test: (s: string) => safeTest(source, s, flags),
    // ajv keys its compiled patterns by this: one per pattern
    toString: () => `/${source}/${flags}`,
  }),
  { code: 'linearRegExp' },
);
