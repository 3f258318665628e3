/**
 * Logging: readable console lines for people (stderr, so stdout stays clean for machine output
 * such as `--bids-exec-spec`), JSON lines for machines in a log file per run.
 */
import winston from 'winston';

export type LogLevel = 'error' | 'warn' | 'info' | 'verbose' | 'debug';

const consoleFormat = winston.format.printf(({ level, message, timestamp }) => {
  const time = String(timestamp).slice(11, 19);
  const tag = level === 'info' ? '' : `${level.toUpperCase()}: `;
  return `${time} ${tag}${String(message)}`;
});

export const log = winston.createLogger({
  // The logger passes everything; each transport filters (console: info, file: debug).
  level: 'debug',
  transports: [
    new winston.transports.Console({
      level: 'info',
      stderrLevels: ['error', 'warn', 'info', 'verbose', 'debug'],
      format: winston.format.combine(winston.format.timestamp(), consoleFormat),
    }),
  ],
});

export function setConsoleLevel(level: LogLevel): void {
  for (const transport of log.transports) {
    if (transport instanceof winston.transports.Console) transport.level = level;
  }
}

/** Stop writing to the console (the log file, if any, still gets everything). */
export function silenceConsole(): void {
  for (const transport of log.transports) {
    if (transport instanceof winston.transports.Console) transport.silent = true;
  }
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
  const files = log.transports.filter((t) => t instanceof winston.transports.File);
  if (files.length === 0) return;
  await new Promise<void>((resolve) => {
    log.on('finish', () => resolve());
    log.end();
  });
}
