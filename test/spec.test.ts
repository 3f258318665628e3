/**
 * bids_app_spec.json (the Boutiques 0.5 descriptor of the BIDS App) checked against the real
 * command line: `node bin/micanon.js --help` and `--bids-exec-spec`. A flag added to the parser
 * and not to the descriptor (or the other way round) fails here, not on a user's cluster.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseBidsAppArgs } from '../src/cli/parser.js';
import { ExitCode } from '../src/errors.js';

const root = path.resolve(__dirname, '..');
const specPath = path.join(root, 'bids_app_spec.json');
const cli = path.join(root, 'bin', 'micanon.js');

interface Input {
  id: string;
  name: string;
  type: string;
  'value-key': string;
  optional?: boolean;
  list?: boolean;
  'command-line-flag'?: string;
  'value-choices'?: unknown[];
}

interface Descriptor {
  name: string;
  'tool-version': string;
  'schema-version': string;
  'command-line': string;
  description: string;
  inputs: Input[];
  'error-codes'?: Array<{ code: number; description: string }>;
  custom?: Record<string, unknown>;
}

/** One option as `--help` prints it. */
interface HelpOption {
  long: string;
  /** `<label...>` -> 'list', `<mm>` -> 'value', nothing -> 'flag'. */
  arity: 'flag' | 'value' | 'list';
  choices: string[] | null;
}

const spec = JSON.parse(readFileSync(specPath, 'utf8')) as Descriptor;
const packageVersion = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
const internalOptions = new Set(['--help', '--version', '--bids-exec-spec']);

/** Newest modification time of the TypeScript the CLI is compiled from (tests excluded). */
function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
      newest = Math.max(newest, statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
    }
  }
  return newest;
}

/** `npm test` builds dist/ through setup; rebuild here only when it is missing or older than src/. */
async function ensureBuilt(): Promise<void> {
  const compiled = path.join(root, 'dist', 'cli', 'parser.js');
  if (existsSync(compiled) && statSync(compiled).mtimeMs >= newestSource(path.join(root, 'src'))) return;
  await execa(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: root });
}

/**
 * The command line a Boutiques runner (bosh, CBRAIN) makes from an invocation: each value-key
 * of `command-line` replaced by the input's flag and value(s), or removed when the input is absent.
 */
function boutiquesCommand(values: Record<string, string | string[] | true>): string[] {
  let line = spec['command-line'];
  for (const input of spec.inputs) {
    const value = values[input.id];
    const flag = input['command-line-flag'];
    const words = value === undefined ? [] : value === true ? [flag ?? ''] : [...(flag ? [flag] : []), ...[value].flat()];
    line = line.replace(input['value-key'], words.join(' '));
  }
  return line.split(/\s+/).filter(Boolean).slice(1); // without the executable's name
}

/** Parse the Options block of commander's help (entries may wrap over several lines). */
function parseHelpOptions(help: string): HelpOption[] {
  const block = help.split(/^Options:$/m)[1] ?? '';
  const entries = block.split(/\n(?=\s{2}-)/);
  const options: HelpOption[] = [];
  for (const entry of entries) {
    const head = /^\s*(?:-\w, )?(--[\w-]+)(?: <([^>]+)>)?/.exec(entry);
    if (!head?.[1]) continue;
    const text = entry.replace(/\s+/g, ' ');
    const choices = /\(choices: ([^)]*?)(?:, default: [^)]*)?\)/.exec(text);
    options.push({
      long: head[1],
      arity: head[2] === undefined ? 'flag' : head[2].endsWith('...') ? 'list' : 'value',
      choices: choices?.[1] ? [...choices[1].matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? '') : null,
    });
  }
  return options;
}

/** The positional arguments in the order `--help` lists them. */
function parseHelpArguments(help: string): string[] {
  const block = help.split(/^Arguments:$/m)[1]?.split(/^Options:$/m)[0] ?? '';
  return [...block.matchAll(/^ {2}(\w+)/gm)].map((m) => m[1] ?? '');
}

describe('bids_app_spec.json (Boutiques 0.5)', () => {
  let help: string;
  let helpOptions: HelpOption[];

  beforeAll(async () => {
    await ensureBuilt();
    help = (await execa(process.execPath, [cli, '--help'])).stdout;
    helpOptions = parseHelpOptions(help);
  });

  it('has the keys Boutiques and the BIDS Apps spec require', () => {
    for (const key of ['name', 'description', 'tool-version', 'schema-version', 'command-line', 'inputs'] as const) {
      expect(spec[key], key).toBeTruthy();
    }
    expect(spec['schema-version']).toBe('0.5');
    expect(spec.custom?.BIDSAppSpecVersion).toMatch(/^\d+\.\d+\.\d+$/);
    for (const input of spec.inputs) {
      expect(input.id, JSON.stringify(input)).toMatch(/^[0-9_a-zA-Z]+$/);
      expect(input.name, input.id).toBeTruthy();
      expect(['String', 'File', 'Flag', 'Number'], input.id).toContain(input.type);
      expect(input['value-key'], input.id).toMatch(/^\[[A-Z0-9_]+\]$/);
    }
    const ids = spec.inputs.map((i) => i.id);
    const keys = spec.inputs.map((i) => i['value-key']);
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it("carries package.json's version as tool-version and BIDSApplicationVersion", () => {
    expect(spec['tool-version']).toBe(packageVersion);
    expect(spec.custom?.BIDSApplicationVersion).toBe(packageVersion);
  });

  it('places every value-key in the command line, positionals first and in the CLI order', () => {
    for (const input of spec.inputs) expect(spec['command-line'], input.id).toContain(input['value-key']);
    const positional = spec.inputs.filter((i) => !i['command-line-flag']);
    const order = positional.map((i) => spec['command-line'].indexOf(i['value-key']));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(positional.map((i) => i.id)).toEqual(parseHelpArguments(help));
    const firstFlagged = Math.min(
      ...spec.inputs.filter((i) => i['command-line-flag']).map((i) => spec['command-line'].indexOf(i['value-key'])),
    );
    expect(Math.max(...order)).toBeLessThan(firstFlagged);
  });

  it('lists exactly the long options of `micanon --help` (but --help, --version, --bids-exec-spec)', () => {
    const flags = spec.inputs.flatMap((i) => i['command-line-flag'] ?? []).sort();
    const longOptions = helpOptions.map((o) => o.long).filter((o) => !internalOptions.has(o)).sort();
    expect(longOptions.length).toBeGreaterThan(10); // the help was parsed, not an empty block
    expect(flags).toEqual(longOptions);
  });

  it('gives each option the type, list-ness and choices the CLI has', () => {
    const byFlag = new Map(helpOptions.map((o) => [o.long, o]));
    for (const input of spec.inputs.filter((i) => i['command-line-flag'])) {
      const option = byFlag.get(input['command-line-flag'] ?? '');
      expect(option, input.id).toBeDefined();
      if (!option) continue;
      expect(input.type === 'Flag' ? 'flag' : input.list ? 'list' : 'value', input.id).toBe(option.arity);
      expect(input.optional, input.id).toBe(true);
      if (option.choices) expect([...(input['value-choices'] ?? [])].sort(), input.id).toEqual([...option.choices].sort());
    }
    const level = spec.inputs.find((i) => i.id === 'analysis_level');
    expect(level?.['value-choices']).toEqual(['participant', 'group']);
  });

  it('yields, through a Boutiques invocation of every input, a command line the CLI accepts as meant', () => {
    const values: Record<string, string | string[] | true> = {};
    for (const input of spec.inputs) {
      const choices = (input['value-choices'] ?? []).map(String);
      if (input.id === 'all') continue; // excludes --method; checked alone below
      if (input.id === 'bids_filter_file') continue; // read while parsing: given a real file below
      if (input.type === 'Flag') values[input.id] = true;
      else if (choices.length) values[input.id] = input.list ? choices.slice(0, 2) : (choices[0] ?? '');
      else if (input.type === 'Number') values[input.id] = '2';
      else if (input.list) values[input.id] = ['01', '02'];
      else values[input.id] = `/data/${input.id}`;
    }
    const filterFile = path.join(mkdtempSync(path.join(tmpdir(), 'micanon-spec-')), 'filter.json');
    writeFileSync(filterFile, JSON.stringify({ t1w: { acquisition: 'mprage' } }));
    values.bids_filter_file = filterFile;
    const outcome = parseBidsAppArgs(boutiquesCommand(values));
    expect(outcome.kind).toBe('run');
    if (outcome.kind !== 'run') return;
    expect(outcome.config).toMatchObject({
      bidsDir: '/data/bids_dir',
      analysisLevel: 'participant',
      participantLabels: ['01', '02'],
      excludeParticipantLabels: ['01', '02'],
      sessionLabels: ['01', '02'],
      excludeSessionLabels: ['01', '02'],
      bidsFilters: { file: filterFile, kinds: { t1w: { entities: { acquisition: 'mprage' }, regex: false } } },
      methods: ['deface', 'reface'],
      dilate: 2,
      nthreads: 2,
      workDir: '/data/work_dir',
      cleanup: false,
      robust: true,
      removeEars: true,
      skipBidsValidation: true,
      qcFailOk: true,
      qcDir: '/data/qc_dir',
    });
    const all = parseBidsAppArgs(boutiquesCommand({ bids_dir: '/b', output_dir: '/o', analysis_level: 'group', all: true }));
    expect(all.kind === 'run' && all.config.methods).toEqual(['deface', 'reface', 'warpface']);
  });

  it('documents every non-zero exit code micanon can return', () => {
    const documented = (spec['error-codes'] ?? []).map((e) => e.code).sort((a, b) => a - b);
    const codes = Object.values(ExitCode).filter((c) => c !== 0).sort((a, b) => a - b);
    expect(documented).toEqual(codes);
  });

  it('is what `micanon --bids-exec-spec` prints, byte for byte', async () => {
    const { stdout } = await execa(process.execPath, [cli, '--bids-exec-spec'], { stripFinalNewline: false });
    expect(stdout).toBe(readFileSync(specPath, 'utf8'));
  });
});
