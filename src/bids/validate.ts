/**
 * Dataset checks before any image is touched.
 *
 * `checkDataset` is the small built-in check that always runs: dataset_description.json with
 * Name and BIDSVersion, sub- folders, and the names of the selected files. Problems are
 * collected as values (code, message, path, severity), never printed from here.
 *
 * `runExternalValidator` runs the official `bids-validator` when it is installed (never a
 * dependency of micanon), restricted to the selected participants: it validates a temporary
 * view of the dataset made of symbolic links (top-level files and folders, and only the
 * selected sub- folders), so the input is never modified and other participants' problems do
 * not block this run.
 */
import { access, constants, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { anatNameProblem, parseBidsName } from './entities.js';
import { listSubjects, normaliseLabels } from './discover.js';
import { NON_RAW_FOLDERS } from './ignore.js';

export type Severity = 'error' | 'warning';

export interface ValidationProblem {
  code: string;
  message: string;
  path: string;
  severity: Severity;
}

/**
 * The built-in check. `selectedFiles` are absolute paths of the images discovery selected;
 * each must parse as a raw anatomical BIDS name. Returns every problem found (empty when fine).
 */
export async function checkDataset(root: string, selectedFiles: readonly string[] = []): Promise<ValidationProblem[]> {
  const absRoot = path.resolve(root);
  const problems: ValidationProblem[] = [];
  const descriptionPath = path.join(absRoot, 'dataset_description.json');
  let description: unknown = null;
  try {
    description = JSON.parse(await readFile(descriptionPath, 'utf8'));
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    problems.push({
      code: missing ? 'DATASET_DESCRIPTION_MISSING' : 'DATASET_DESCRIPTION_INVALID',
      message: missing ? 'dataset_description.json is missing at the dataset root' : `dataset_description.json is not valid JSON: ${(err as Error).message}`,
      path: descriptionPath,
      severity: 'error',
    });
  }
  if (description !== null) {
    const d = (typeof description === 'object' && !Array.isArray(description) ? description : {}) as Record<string, unknown>;
    for (const field of ['Name', 'BIDSVersion']) {
      if (typeof d[field] !== 'string' || (d[field] as string).trim() === '') {
        problems.push({
          code: 'DATASET_DESCRIPTION_FIELD_MISSING',
          message: `dataset_description.json has no "${field}"`,
          path: descriptionPath,
          severity: 'error',
        });
      }
    }
    if (d.DatasetType === 'derivative') {
      problems.push({
        code: 'DATASET_IS_DERIVATIVE',
        message: 'the input is a derivative dataset; micanon expects raw data (names with desc- are skipped)',
        path: descriptionPath,
        severity: 'warning',
      });
    }
  }
  if ((await listSubjects(absRoot)).length === 0) {
    problems.push({ code: 'NO_SUBJECT_FOLDERS', message: 'no sub-<label> folder at the dataset root', path: absRoot, severity: 'error' });
  }
  for (const file of selectedFiles) {
    const parsed = parseBidsName(file);
    const problem = parsed ? anatNameProblem(parsed) : 'not a BIDS file name';
    if (problem) {
      problems.push({ code: 'ANAT_NAME_INVALID', message: `${path.basename(file)}: ${problem}`, path: file, severity: 'error' });
    }
  }
  return problems;
}

/** The verdict of the external validator. */
export type ExternalVerdict =
  | { ran: false; reason: string }
  | {
      ran: true;
      valid: boolean;
      errors: number;
      warnings: number;
      /** Error-severity issues (code and where), for the log. */
      issues: Array<{ code: string; location: string; severity: Severity }>;
      command: string[];
    };

export interface ExternalValidatorOptions {
  /** A specific bids-validator executable; otherwise node_modules/.bin (from cwd up) then PATH. */
  binary?: string;
  /** Folders to search for node_modules/.bin, nearest first; default: cwd and its parents. */
  searchFrom?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Locate an installed bids-validator: node_modules/.bin from `searchFrom` upward, then PATH. */
export async function findBidsValidator(searchFrom = process.cwd(), env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  let dir = path.resolve(searchFrom);
  for (;;) {
    const candidate = path.join(dir, 'node_modules', '.bin', 'bids-validator');
    if (await isExecutable(candidate)) return candidate;
    if (path.dirname(dir) === dir) break;
    dir = path.dirname(dir);
  }
  for (const entry of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(entry, 'bids-validator');
    if (await isExecutable(candidate)) return candidate;
  }
  return null;
}

/**
 * A temporary view of the dataset holding only the selected participants: symbolic links to
 * every top-level entry except other sub- folders and derivatives/sourcedata/code.
 */
async function participantView(root: string, participants: readonly string[]): Promise<string> {
  const view = await mkdtemp(path.join(os.tmpdir(), 'micanon-validate-'));
  const dataset = path.join(view, 'dataset');
  await mkdir(dataset);
  const keep = new Set(participants.map((p) => `sub-${p}`));
  for (const name of await readdir(root)) {
    if (NON_RAW_FOLDERS.has(name)) continue;
    if (/^sub-/.test(name) && keep.size > 0 && !keep.has(name)) continue;
    await symlink(path.join(root, name), path.join(dataset, name));
  }
  return view;
}

/** Pull a verdict out of the validator's --json output (v2 schema validator, v1 legacy too). */
function readVerdict(stdout: string): { errors: number; warnings: number; issues: Array<{ code: string; location: string; severity: Severity }> } | null {
  const start = stdout.indexOf('{');
  if (start < 0) return null;
  let report: unknown;
  try {
    report = JSON.parse(stdout.slice(start));
  } catch {
    return null;
  }
  const issues = (report as { issues?: unknown }).issues;
  if (issues && typeof issues === 'object' && Array.isArray((issues as { issues?: unknown }).issues)) {
    // v2: { issues: { issues: [{ code, severity, location }] } }
    const list = (issues as { issues: Array<Record<string, unknown>> }).issues;
    const errors = list.filter((i) => i.severity === 'error');
    return {
      errors: errors.length,
      warnings: list.filter((i) => i.severity === 'warning').length,
      issues: errors.map((i) => ({ code: String(i.code ?? ''), location: String(i.location ?? ''), severity: 'error' as const })),
    };
  }
  if (issues && typeof issues === 'object' && Array.isArray((issues as { errors?: unknown }).errors)) {
    // v1: { issues: { errors: [{ key, files: [{ file: { relativePath } }] }], warnings: [...] } }
    const v1 = issues as { errors: Array<Record<string, unknown>>; warnings?: unknown[] };
    return {
      errors: v1.errors.length,
      warnings: Array.isArray(v1.warnings) ? v1.warnings.length : 0,
      issues: v1.errors.map((e) => ({ code: String(e.key ?? e.code ?? ''), location: '', severity: 'error' as const })),
    };
  }
  return null;
}

/**
 * Run the installed bids-validator on the selected participants (all when `participants` is
 * empty). Returns {ran: false, reason} when no validator is installed or it could not run;
 * otherwise its verdict: valid when it reported no error (warnings do not fail a run).
 * A participants.tsv listing participants outside the selection is not held against the dataset.
 */
export async function runExternalValidator(
  root: string,
  participants: readonly string[],
  options: ExternalValidatorOptions = {},
): Promise<ExternalVerdict> {
  const binary = options.binary ?? (await findBidsValidator(options.searchFrom, options.env));
  if (!binary) return { ran: false, reason: 'bids-validator is not installed (npm install -g bids-validator to enable it)' };
  const absRoot = path.resolve(root);
  const view = await participantView(absRoot, normaliseLabels(participants, 'sub'));
  try {
    const config = path.join(view, 'validator-config.json');
    await writeFile(config, JSON.stringify({ ignore: [{ code: 'PARTICIPANT_ID_MISMATCH' }] }));
    const command = [binary, path.join(view, 'dataset'), '--json', '--config', config];
    const result = await execa(binary, command.slice(1), {
      reject: false,
      timeout: options.timeoutMs ?? 600_000,
      env: options.env,
      extendEnv: true,
    });
    if (result.failed && result.exitCode === undefined) {
      return { ran: false, reason: `bids-validator could not run: ${result.shortMessage ?? 'unknown error'}` };
    }
    const verdict = readVerdict(String(result.stdout ?? ''));
    if (!verdict) {
      return { ran: false, reason: `bids-validator gave no JSON report (exit ${result.exitCode}): ${String(result.stderr ?? '').split('\n')[0]}` };
    }
    return { ran: true, valid: verdict.errors === 0, ...verdict, command };
  } finally {
    await rm(view, { recursive: true, force: true });
  }
}
