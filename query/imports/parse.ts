// Streaming readers of an uploaded file (pure): CSV (RFC 4180: quoted fields with doubled
// quotes and line breaks inside, CRLF or LF, a UTF-8 BOM) and JSON lines, fed chunk by chunk
// so a file of any size is never held whole. Each record carries the line it starts on; a
// record over the size limit or with a stray quote is reported, not guessed at.

export const MAX_RECORD_CHARS = 64 * 1024;

export type CsvRecord =
  | { line: number; fields: string[]; error?: undefined }
  | { line: number; error: string };

export class CsvReader {
  private fields: string[] = [];
  private cell = '';
  private quoted = false;
  /** the quote closing a quoted field was seen; only a separator or line end may follow */
  private closed = false;
  private size = 0;
  private error: string | undefined;
  private line = 1;
  private startLine = 1;
  private first = true;
  private pendingCr = false;
  private prevCr = false;

  /** Feeds text; calls `emit` for every complete record. */
  private push(text: string, emit: (r: CsvRecord) => void): void {
    let i = 0;
    if (this.first && text.length > 0) {
      this.first = false;
      if (text.charCodeAt(0) === 0xfeff) i = 1;
    }
    for (; i < text.length; i++) {
      const c = text[i]!;
      if (this.pendingCr) {
        this.pendingCr = false;
        if (c === '\n') continue; // CRLF: the record ended at the CR
      }
      if (this.quoted) {
        if (c === '"') {
          if (text[i + 1] === '"') {
            this.add('"');
            i++;
          } else if (i + 1 === text.length) {
            // a quote at a chunk's end: doubled or closing, decided by the next chunk
            this.held = true;
          } else {
            this.quoted = false;
            this.closed = true;
          }
        } else {
          // CR, LF and CRLF are one line break each, also when a chunk ends between CR and LF
          if (c === '\r' || (c === '\n' && !this.prevCr)) this.line++;
          this.prevCr = c === '\r';
          this.add(c);
        }
        continue;
      }
      if (c === ',') {
        // separators count toward the limit too: a line of commas must not grow the fields
        this.size++;
        if (this.size > MAX_RECORD_CHARS) this.error ??= `record over ${MAX_RECORD_CHARS} characters`;
        else this.fields.push(this.cell);
        this.cell = '';
        this.closed = false;
      } else if (c === '\n' || c === '\r') {
        this.endRecord(emit);
        this.line++;
        this.startLine = this.line;
        if (c === '\r') this.pendingCr = true;
      } else if (c === '"') {
        if (this.cell === '' && !this.closed) {
          this.quoted = true;
          this.prevCr = false;
        } else
          this.error ??= 'a quote inside an unquoted field (quote the whole field and double inner quotes)';
      } else {
        if (this.closed) this.error ??= 'text after a closing quote';
        this.add(c);
      }
    }
  }

  /** A quote that ended the previous chunk inside a quoted field. */
  private held = false;

  /** Call before push when a chunk follows one that ended on a quote inside a quoted field. */
  private resolveHeld(next: string): string {
    if (!this.held) return next;
    this.held = false;
    if (next[0] === '"') {
      this.add('"');
      return next.slice(1);
    }
    this.quoted = false;
    this.closed = true;
    return next;
  }

  write(text: string, emit: (r: CsvRecord) => void): void {
    this.push(this.resolveHeld(text), emit);
  }

  end(emit: (r: CsvRecord) => void): void {
    if (this.held) {
      this.held = false;
      this.quoted = false;
      this.closed = true;
    }
    if (this.quoted) {
      this.error ??= 'a quoted field is not closed before the end of the file';
      this.quoted = false;
    }
    if (this.cell !== '' || this.fields.length > 0 || this.closed) this.endRecord(emit);
  }

  private add(c: string) {
    this.size++;
    if (this.size > MAX_RECORD_CHARS) {
      this.error ??= `record over ${MAX_RECORD_CHARS} characters`;
      return;
    }
    this.cell += c;
  }

  private endRecord(emit: (r: CsvRecord) => void) {
    this.fields.push(this.cell);
    const blank = this.fields.length === 1 && this.fields[0] === '' && !this.closed;
    if (this.error) emit({ line: this.startLine, error: this.error });
    else if (!blank) emit({ line: this.startLine, fields: this.fields });
    this.fields = [];
    this.cell = '';
    this.closed = false;
    this.size = 0;
    this.error = undefined;
  }
}

export type JsonRecord =
  | { line: number; value: unknown; error?: undefined }
  | { line: number; error: string };

/** JSON lines: one object per line; blank lines skipped; a line over the limit is reported. */
export class JsonLinesReader {
  private buf = '';
  private line = 0;
  private over = false;
  private first = true;

  write(text: string, emit: (r: JsonRecord) => void): void {
    if (this.first && text.length > 0) {
      this.first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) break;
      this.take(text.slice(start, nl), emit);
      start = nl + 1;
    }
    const rest = text.slice(start);
    if (this.over || this.buf.length + rest.length > MAX_RECORD_CHARS) {
      this.over = true;
      this.buf = '';
    } else this.buf += rest;
  }

  end(emit: (r: JsonRecord) => void): void {
    if (this.buf !== '' || this.over) this.take('', emit);
  }

  private take(tail: string, emit: (r: JsonRecord) => void) {
    this.line++;
    const over = this.over || this.buf.length + tail.length > MAX_RECORD_CHARS;
    const text = over ? '' : (this.buf + tail).replace(/\r$/, '');
    this.buf = '';
    this.over = false;
    if (over) return emit({ line: this.line, error: `line over ${MAX_RECORD_CHARS} characters` });
    if (text.trim() === '') return;
    try {
      emit({ line: this.line, value: JSON.parse(text) });
    } catch (err) {
      emit({ line: this.line, error: `malformed JSON: ${(err as Error).message.slice(0, 120)}` });
    }
  }
}
