/**
 * The official BIDS validator (version 3, the TypeScript one), as micanon runs it on its input and
 * on its own output. It is a pinned dependency: the PyPI package `bids-validator-deno` (its bundle
 * of the validator and the schema, run by the `deno` runtime wheel) in micanon's venv, installed
 * by `npm run setup` and by the container images from python/requirements.lock.
 *
 * It is shown a temporary view of the dataset (symbolic links to the top-level entries and to the
 * selected sub- folders only), so the dataset is never written to and other participants' problems
 * do not block this run. Nothing is fetched at run time: the schema is the bundled one (no
 * --schema), deno's update check is off, and its cache lives in the view's folder.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { MicanonError } from '../errors.js';
import { venvDir } from '../paths.js';
import { normaliseLabels } from './discover.js';
import { NON_RAW_FOLDERS } from './ignore.js';

export type IssueSeverity = 'error' | 'warning';

/** One issue as the validator reports it. */
export interface ValidatorIssue {
  code: string;
  severity: IssueSeverity;
  /** Dataset-relative path with a leading '/', as the validator gives it. */
  location: string;
  /** The field or rule concerned (e.g. a sidecar key), when the validator names one. */
  subCode?: string;
  /** The validator's words: its message for the code, and what it said about this file. */
  message: string;
}

/** What the validator said about one dataset (or the selected participants of it). */
export interface ValidatorReport {
  /** e.g. `bids-validator 3.0.2 (schema 1.2.7)` */
  validator: string;
  dataset: string;
  /** Participant labels shown to it; empty: all. */
  participants: string[];
  errors: ValidatorIssue[];
  warnings: ValidatorIssue[];
  totalFiles: number | null;
}

export interface ValidatorOptions {
  /** Participant labels (with or without `sub-`); empty: every participant. */
  participants?: readonly string[];
  /** An existing folder that takes the view and deno's cache for the time of the call (the run's work folder). */
  tempRoot: string;
  /** The executable; default: the venv's `bin/bids-validator-deno`. */
  executable?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** The validator micanon runs: the venv's (`$MICANON_VENV` or `<repo>/.venv`) bids-validator-deno. */
export function validatorExecutable(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(venvDir(env), 'bin', 'bids-validator-deno');
}

/** `bids-validator 3.0.2`, from the installed package's metadata folder in the venv. */
export async function validatorName(executable: string): Promise<string> {
  const lib = path.join(path.dirname(path.dirname(executable)), 'lib');
  for (const python of await readdir(lib).catch(() => [] as string[])) {
    const site = path.join(lib, python, 'site-packages');
    const info = (await readdir(site).catch(() => [] as string[])).find((n) => /^bids_validator_deno-.+\.dist-info$/.test(n));
    if (info) return `bids-validator ${info.replace(/^bids_validator_deno-/, '').replace(/\.dist-info$/, '')}`;
  }
  return 'bids-validator';
}

/**
 * The validator's environment: nothing from the network (no update check: the bundled schema is
 * the only one used), and deno's cache in `folder`, not in $HOME (read-only in a container).
 */
function denoEnv(env: NodeJS.ProcessEnv, folder: string): NodeJS.ProcessEnv {
  return { ...env, DENO_NO_UPDATE_CHECK: '1', DENO_DIR: path.join(folder, 'deno'), NO_COLOR: '1' };
}

/**
 * For `micanon doctor`: the installed validator's name and version when it starts (deno runs
 * its bundle), else why not.
 */
export async function validatorCheck(tempRoot: string, env: NodeJS.ProcessEnv = process.env): Promise<{ ok: boolean; value: string }> {
  const executable = validatorExecutable(env);
  if (!existsSync(executable)) return { ok: false, value: `${executable} is missing` };
  const folder = await mkdtemp(path.join(tempRoot, 'micanon-validate-'));
  try {
    const result = await execa(executable, ['--version'], { reject: false, timeout: 120_000, env: denoEnv(env, folder), extendEnv: false });
    if (result.exitCode !== 0) return { ok: false, value: `${executable} does not start: ${String(result.stderr ?? '').trim().split('\n').at(-1) ?? ''}` };
    return { ok: true, value: `${(await validatorName(executable)).replace(/^bids-validator /, '')} (${executable})` };
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

/**
 * A view of `root` holding only the selected participants: symbolic links to every top-level
 * entry except other sub- folders and derivatives/sourcedata/code (which the validator skips too).
 */
async function participantView(root: string, dataset: string, participants: readonly string[]): Promise<void> {
  await mkdir(dataset);
  const keep = new Set(participants.map((p) => `sub-${p}`));
  for (const name of await readdir(root)) {
    if (NON_RAW_FOLDERS.has(name)) continue;
    if (/^sub-/.test(name) && keep.size > 0 && !keep.has(name)) continue;
    await symlink(path.join(root, name), path.join(dataset, name));
  }
}

/** The first sentence of a message whose lines the validator wraps mid-sentence. */
const firstSentence = (text: string): string => (text.replace(/\s+/g, ' ').trim().split(/(?<=\.)\s/)[0] ?? '').trim();

/** The validator's JSON (`--format json`) as our issues; null when it is not that. */
export function parseValidatorJson(stdout: string): Omit<ValidatorReport, 'validator' | 'dataset' | 'participants'> | null {
  let report: unknown;
  try {
    report = JSON.parse(stdout.slice(Math.max(0, stdout.indexOf('{'))));
  } catch {
    return null;
  }
  const issues = (report as { issues?: { issues?: unknown; codeMessages?: unknown } }).issues;
  if (!issues || !Array.isArray(issues.issues)) return null;
  const codeMessages = (issues.codeMessages ?? {}) as Record<string, unknown>;
  const all = (issues.issues as Array<Record<string, unknown>>).map((raw): ValidatorIssue => {
    const code = String(raw.code ?? 'UNKNOWN');
    const general = firstSentence(String(codeMessages[code] ?? ''));
    // Its own words about this file, unless they only repeat the field's description.
    const specific = String(raw.issueMessage ?? '').trim().split('\n')[0] ?? '';
    const own = specific && !specific.startsWith('Field description') ? specific : '';
    return {
      code,
      severity: raw.severity === 'error' ? 'error' : 'warning',
      location: String(raw.location ?? ''),
      ...(raw.subCode ? { subCode: String(raw.subCode) } : {}),
      message: (general && own ? `${general.replace(/[.:]$/, '')}: ${own}` : general || own) || code,
    };
  });
  const summary = (report as { summary?: { totalFiles?: unknown } }).summary;
  return {
    errors: all.filter((i) => i.severity === 'error'),
    warnings: all.filter((i) => i.severity === 'warning'),
    totalFiles: typeof summary?.totalFiles === 'number' ? summary.totalFiles : null,
  };
}

/** One line per issue: `CODE /where [field]: the validator's message`. */
export function issueLine(issue: ValidatorIssue): string {
  return `${issue.code} ${issue.location}${issue.subCode ? ` [${issue.subCode}]` : ''}: ${issue.message}`;
}

/** Issue counts by code, most frequent first: `SIDECAR_KEY_RECOMMENDED x40, README_FILE_MISSING x1`. */
export function countsByCode(issues: readonly ValidatorIssue[]): string {
  const counts = new Map<string, number>();
  for (const i of issues) counts.set(i.code, (counts.get(i.code) ?? 0) + 1);
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([code, n]) => `${code} x${n}`)
    .join(', ');
}

/** The one summary line of a report: `bids-validator 3.0.2 (schema 1.2.7) on <what>: 0 errors, 3 warnings (...)`. */
export function reportSummary(what: string, report: ValidatorReport): string {
  const warnings = report.warnings.length ? ` (${countsByCode(report.warnings)})` : '';
  return `${report.validator} on ${what}: ${report.errors.length} error(s), ${report.warnings.length} warning(s)${warnings}`;
}

/**
 * Run the official validator on `root` (only the selected participants). Returns its report;
 * throws BIDS_VALIDATOR_MISSING when it is not installed, BIDS_VALIDATOR_FAILED when it gives no
 * report. `root` is never written to.
 */
export async function runBidsValidator(root: string, options: ValidatorOptions): Promise<ValidatorReport> {
  const executable = options.executable ?? validatorExecutable(options.env);
  if (!existsSync(executable)) {
    throw new MicanonError('BIDS_VALIDATOR_MISSING', `the BIDS validator is not installed: ${executable} is missing`);
  }
  const absRoot = path.resolve(root);
  const participants = normaliseLabels(options.participants ?? [], 'sub');
  let folder: string;
  try {
    // tempRoot is not made here: a run's work folder that is gone (an interrupted run removed it)
    // must stay gone.
    folder = await mkdtemp(path.join(options.tempRoot, 'micanon-validate-'));
  } catch (err) {
    throw new MicanonError(
      'CANNOT_CREATE_OUTPUT',
      `cannot create a folder for the BIDS validator in ${options.tempRoot}: ${(err as Error).message} (read-only container? pass -w/--work-dir on a mounted volume)`,
    );
  }
  try {
    const dataset = path.join(folder, path.basename(absRoot));
    await participantView(absRoot, dataset, participants);
    // A participants.tsv that lists participants outside the selection is not held against it.
    const config = path.join(folder, 'validator-config.json');
    await writeFile(config, JSON.stringify({ ignore: [{ code: 'PARTICIPANT_ID_MISMATCH' }] }));
    const args = [dataset, '--format', 'json', '--config', config, '--no-color'];
    const result = await execa(executable, args, {
      reject: false,
      timeout: options.timeoutMs ?? 600_000,
      env: denoEnv(options.env ?? process.env, folder),
      extendEnv: false,
      maxBuffer: 512 * 1024 * 1024,
    });
    const parsed = parseValidatorJson(String(result.stdout ?? ''));
    if (!parsed) {
      const said = String(result.stderr ?? '').trim().split('\n').slice(-3).join(' | ') || result.shortMessage || 'no output';
      throw new MicanonError('BIDS_VALIDATOR_FAILED', `the BIDS validator gave no report on ${absRoot} (exit ${result.exitCode ?? 'none'}): ${said}`, {
        detail: `${executable} ${args.join(' ')}\n${String(result.stderr ?? '')}`,
      });
    }
    const schema = /"schemaVersion"\s*:\s*"([^"]+)"/.exec(String(result.stdout))?.[1];
    const name = await validatorName(executable);
    return { validator: schema ? `${name} (schema ${schema})` : name, dataset: absRoot, participants, ...parsed };
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}
