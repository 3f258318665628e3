/**
 * Logging: readable console lines for people (stderr, so stdout stays clean for machine output
 * such as `--bids-exec-spec`), or one JSON object per line with `--log-format json`; JSON lines
 * for machines in a log file per run. On a terminal a run may also show one live status line
 * below the log (log-update redraws it in place); the log lines scroll above it. Where stderr is
 * not a terminal (a file, a pipe: SLURM logs, CI) the status line is never drawn and nothing but
 * plain lines is written.
 */
import { createLogUpdate } from 'log-update';
import winston from 'winston';
import TransportStream from 'winston-transport';

export type LogLevel = 'error' | 'warn' | 'info' | 'verbose' | 'debug';
export const logFormats = ['text', 'json'] as const;
export type LogFormat = (typeof logFormats)[number];

const MESSAGE = Symbol.for('message');

const textFormat = winston.format.printf(({ level, message, timestamp }) => {
  const time = String(timestamp).slice(11, 19);
  const tag = level === 'info' ? '' : `${level.toUpperCase()}: `;
  return `${time} ${tag}${String(message)}`;
});

const consoleFormats: Record<LogFormat, winston.Logform.Format> = {
  text: winston.format.combine(winston.format.timestamp(), textFormat),
  json: winston.format.combine(winston.format.timestamp(), winston.format.json()),
};

/**
 * The console: every level on stderr. While a status line is shown, a log line is written above
 * it (log-update's persist) and the status line drawn again below.
 */
class ConsoleTransport extends TransportStream {
  private readonly stream: NodeJS.WriteStream;
  private readonly live: ReturnType<typeof createLogUpdate>;
  private status: string | null = null;

  constructor(stream: NodeJS.WriteStream) {
    super({ level: 'info', format: consoleFormats.text });
    this.stream = stream;
    this.live = createLogUpdate(stream);
  }

  /** True when a live line can be drawn: a terminal, people's text format, not silenced. */
  canDrawStatus(): boolean {
    return this.stream.isTTY === true && this.format === consoleFormats.text && !this.silent;
  }

  override log(info: winston.Logform.TransformableInfo, next: () => void): void {
    const line = String((info as Record<symbol, unknown>)[MESSAGE] ?? info.message);
    if (this.status !== null) {
      this.live.persist(line);
      this.live(this.status);
    } else {
      this.stream.write(`${line}\n`);
    }
    next();
  }

  setStatus(text: string | null): void {
    if (text === null || !this.canDrawStatus()) {
      if (this.status !== null) {
        this.live.clear();
        this.live.done();
      }
      this.status = null;
      return;
    }
    this.status = text;
    this.live(text);
  }
}

const consoleTransport = new ConsoleTransport(process.stderr);

export const log = winston.createLogger({
  // The logger passes everything; each transport filters (console: info, file: debug).
  level: 'debug',
  transports: [consoleTransport],
});

export function setConsoleLevel(level: LogLevel): void {
  consoleTransport.level = level;
}

/** Text for people, or one JSON object per line (`--log-format json`; no status line then). */
export function setConsoleFormat(format: LogFormat): void {
  consoleTransport.format = consoleFormats[format];
}

/** Stop writing to the console (the log file, if any, still gets everything). */
export function silenceConsole(): void {
  consoleTransport.setStatus(null);
  consoleTransport.silent = true;
}

/** True when the console can show a live status line (stderr is a terminal, text format). */
export function canShowStatusLine(): boolean {
  return consoleTransport.canDrawStatus();
}

/** Show (or replace) the live status line below the log; null removes it. No-op off a terminal. */
export function setStatusLine(text: string | null): void {
  consoleTransport.setStatus(text);
}

/** Add a JSON-lines log file (everything at debug level) for this run. */
export function addJsonLogFile(filename: string): void {
  log.add(
    new winston.transports.File({
      filename,
      level: 'debug',
      format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    }),
  );
}

/** Wait until every transport has written what it was given (call before process exit). */
export async function flushLog(): Promise<void> {
  consoleTransport.setStatus(null);
  const files = log.transports.filter((t) => t instanceof winston.transports.File);
  if (files.length === 0) return;
  await new Promise<void>((resolve) => {
    log.on('finish', () => resolve());
    log.end();
  });
}
