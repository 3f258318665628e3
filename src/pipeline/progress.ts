/**
 * A run's progress: participants done of those accepted, images and (image, method) outputs
 * decided, time elapsed and an estimate of the time left. On a terminal it is one live line
 * below the log, redrawn every second; elsewhere (a file, a pipe: SLURM, CI) one plain log line
 * per finished session; with `--log-format json` that line is a JSON object with the counts.
 */
import type { SessionPlan } from '../bids/discover.js';
import { canShowStatusLine, log, setStatusLine } from '../log.js';

/** `75` -> `1m15s`, `3725` -> `1h02m`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export interface ProgressCounts {
  participantsDone: number;
  participantsTotal: number;
  imagesDone: number;
  imagesTotal: number;
  outputsDone: number;
  outputsTotal: number;
  elapsedSeconds: number;
  /** Null until the first session has finished (nothing to extrapolate from). */
  etaSeconds: number | null;
}

/** The counts as one line of text (the live line and the plain log line share it). */
export function progressText(counts: ProgressCounts, current: string | null = null): string {
  const eta = counts.etaSeconds === null ? 'time left unknown yet' : `about ${formatDuration(counts.etaSeconds)} left`;
  return (
    `participants ${counts.participantsDone}/${counts.participantsTotal} | images ${counts.imagesDone}/${counts.imagesTotal} | ` +
    `image x method ${counts.outputsDone}/${counts.outputsTotal} | ${formatDuration(counts.elapsedSeconds)} elapsed, ${eta}` +
    (current ? ` | ${current}` : '')
  );
}

export class RunProgress {
  private readonly sessionsOf = new Map<string, number>();
  private readonly imagesTotal: number;
  private readonly outputsTotal: number;
  private readonly started: number;
  private readonly now: () => number;
  private participantsDone = 0;
  private imagesDone = 0;
  private outputsDone = 0;
  private current: string | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(plans: readonly SessionPlan[], methods: number, options: { now?: () => number } = {}) {
    for (const plan of plans) this.sessionsOf.set(plan.subject, (this.sessionsOf.get(plan.subject) ?? 0) + 1);
    this.imagesTotal = plans.reduce((n, plan) => n + plan.images.length, 0);
    this.outputsTotal = this.imagesTotal * methods;
    this.now = options.now ?? Date.now;
    this.started = this.now();
  }

  counts(): ProgressCounts {
    const elapsedSeconds = (this.now() - this.started) / 1000;
    const etaSeconds = this.outputsDone > 0 ? (elapsedSeconds * (this.outputsTotal - this.outputsDone)) / this.outputsDone : null;
    return {
      participantsDone: this.participantsDone,
      participantsTotal: this.sessionsOf.size,
      imagesDone: this.imagesDone,
      imagesTotal: this.imagesTotal,
      outputsDone: this.outputsDone,
      outputsTotal: this.outputsTotal,
      elapsedSeconds,
      etaSeconds,
    };
  }

  /** Start the live line (on a terminal only), redrawn every second for the elapsed time. */
  start(): void {
    if (!canShowStatusLine()) return;
    this.draw();
    this.timer = setInterval(() => this.draw(), 1000);
    this.timer.unref();
  }

  /** What the run is doing now (`sub-01_ses-pre: registration and methods`), on the live line. */
  stage(text: string): void {
    this.current = text;
    this.draw();
  }

  /** One session finished: its images and outputs are decided (written or not). */
  sessionDone(plan: SessionPlan, outputs: number): void {
    this.imagesDone += plan.images.length;
    this.outputsDone += outputs;
    const left = (this.sessionsOf.get(plan.subject) ?? 1) - 1;
    this.sessionsOf.set(plan.subject, left);
    if (left === 0) this.participantsDone++;
    this.current = null;
    if (this.timer) {
      this.draw();
      return;
    }
    const counts = this.counts();
    log.info(`progress: ${progressText(counts)}`, { progress: counts });
  }

  /** Remove the live line (the summary follows as plain log lines). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    setStatusLine(null);
  }

  private draw(): void {
    if (this.timer === null && !canShowStatusLine()) return;
    setStatusLine(progressText(this.counts(), this.current));
  }
}
