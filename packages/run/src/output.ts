/** Where tagged lines go: anything with a write(string) (process.stdout, a test's collector). */
export interface LineSink {
  write(chunk: string): unknown;
}

/** A partial line longer than this is written out (and so cut) rather than buffered without bound. */
const MAX_PARTIAL = 1 << 20;

/**
 * Prefixes every line of one worker stream with `[rank] ` and writes only whole lines, so lines
 * from different ranks never interleave: each write() carries complete lines, and a single
 * process's writes to one fd land in order. A trailing partial line is held until its newline
 * comes or flush() is called at exit.
 */
export class LineTagger {
  private partial = '';
  private readonly decoder = new TextDecoder('utf-8');

  constructor(
    private readonly prefix: string,
    private readonly sink: LineSink,
  ) {}

  push(chunk: Buffer | string): void {
    // The streaming decoder keeps a multi-byte character split across chunks in one piece.
    const text =
      this.partial + (typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true }));
    const end = text.lastIndexOf('\n');
    if (end < 0) {
      this.partial = text;
      if (text.length > MAX_PARTIAL) {
        this.sink.write(this.tag(`${text}\n`));
        this.partial = '';
      }
      return;
    }
    this.partial = text.slice(end + 1);
    this.sink.write(this.tag(text.slice(0, end + 1)));
  }

  /** Writes a held partial line with a newline; call once the stream has ended. */
  flush(): void {
    const rest = this.partial + this.decoder.decode();
    this.partial = '';
    if (rest) this.sink.write(this.tag(`${rest}\n`));
  }

  private tag(lines: string): string {
    // lines ends with '\n': tag the start and every newline that is followed by more text.
    return `${this.prefix + lines.slice(0, -1).replaceAll('\n', `\n${this.prefix}`)}\n`;
  }
}
