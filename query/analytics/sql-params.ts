// Every user-supplied value reaches ClickHouse as a bound {name:Type} parameter; SQL text
// is built only from fixed fragments and parameter placeholders.

export class SqlParams {
  readonly values: Record<string, unknown> = {};
  #n = 0;

  /** A placeholder for `value`; `type` is always a constant of the calling code. */
  bind(value: unknown, type: string): string {
    const name = `p${this.#n++}`;
    this.values[name] = value;
    return `{${name}:${type}}`;
  }
}

/** The error every analytics builder throws for bad input: HTTP 400 naming the field. */
export class InputError extends Error {
  constructor(
    public readonly field: string,
    detail: string,
  ) {
    super(`${field}: ${detail}`);
    this.name = 'InputError';
  }
}
