#!/usr/bin/env node
/**
 * micanon's benchmark (`npm run bench`): wall time, peak memory, threads and stage times of the
 * real CLI per method and for --all on person A (and on person B where present), an in-process
 * stage profile (with the QC step), and the same session through micapipe_anonymize's recipe with
 * ANTsPy (bench/reference.py). Prints a table and the targets (issue 23), writes
 * bench/results/<date>-<host>.json.
 *
 *   node bench/run.mjs [--quick] [--only micanon|reference] [--data BIDS] [--data-b BIDS] [--threads N]
 *                      [--reference-json FILE] [--no-profile] [--keep]
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const METHODS = ['deface', 'reface', 'warpface', 'all'];
// Issue 23's targets, QC and the brain guard (ROBEX) included.
const TARGETS = { allSeconds: 40, t1wDefaceSeconds: 5, peakRssMb: 2048, speedup: 20 };
const POLL_MS = 200;

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    data: { type: 'string' },
    'data-b': { type: 'string' },
    threads: { type: 'string', default: '2' },
    'reference-json': { type: 'string' },
    'no-profile': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
if (opts.only && !['micanon', 'reference'].includes(opts.only)) {
  console.error(`--only must be micanon or reference (got ${opts.only})`);
  process.exit(64);
}
const runMicanon = opts.only !== 'reference';
const runReference = opts.only !== 'micanon' && !opts.quick;
const notes = [];
const say = (line) => console.error(`[bench] ${line}`);

const python = path.join(process.env.MICANON_VENV ?? path.join(repo, '.venv'), 'bin', 'python');
const atlas = process.env.MICANON_ATLAS ?? path.join(repo, '.atlas', 'micanon-head-v1');
const scratch = await mkdtemp(path.join(os.tmpdir(), 'micanon-bench-'));

// ---------------------------------------------------------------------------- set-up

async function newestMtime(dir, keep) {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const file = path.join(entry.parentPath ?? entry.path, entry.name);
    if (entry.isFile() && keep(file)) newest = Math.max(newest, (await stat(file)).mtimeMs);
  }
  return newest;
}

async function buildIfStale() {
  const stamp = path.join(repo, 'dist', '.tsbuildinfo');
  const built = existsSync(stamp) ? (await stat(stamp)).mtimeMs : 0;
  const source = await newestMtime(path.join(repo, 'src'), (f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
  if (source > built) {
    say('dist is older than src: building with tsc');
    await execa('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: repo, stdio: 'inherit' });
  }
}

async function findDataset() {
  const shared = process.env.MICANON_SHARED_DATA ?? path.join(repo, '..', 'shared', 'data');
  const personA = opts.data ?? path.join(shared, 'bids-person-a');
  if (existsSync(path.join(personA, 'dataset_description.json'))) return { bids: personA, fallback: false };
  const root = path.join(scratch, 'example');
  say(`${personA} is absent: falling back to the built-in example dataset (numbers are not person A's)`);
  notes.push(`person A absent (${personA}); measured on the built-in example dataset instead`);
  await execa('node', ['bin/micanon.js', 'example', root, '--method', 'deface'], { cwd: repo, stdio: 'inherit' });
  return { bids: path.join(root, 'bids'), fallback: true };
}

/** Person B (whole face, 3 mm): measured beside A where present. */
function personB() {
  const shared = process.env.MICANON_SHARED_DATA ?? path.join(repo, '..', 'shared', 'data');
  const bids = opts['data-b'] ?? path.join(shared, 'bids-person-b');
  if (existsSync(path.join(bids, 'dataset_description.json'))) return bids;
  notes.push(`person B absent (${bids}): measured on person A only`);
  return null;
}

async function firstSubject(bids) {
  const subjects = (await readdir(bids)).filter((d) => d.startsWith('sub-')).sort();
  if (!subjects.length) throw new Error(`${bids}: no sub-* folder`);
  return subjects[0].slice(4);
}

/** A one-image copy of the dataset (symlinks): the T1w of the first session and its sidecar. */
async function t1wOnlyDataset(bids, subject) {
  const root = path.join(scratch, 't1w-only');
  const sub = path.join(bids, `sub-${subject}`);
  const ses = (await readdir(sub)).filter((d) => d.startsWith('ses-')).sort()[0];
  const anat = ses ? path.join(sub, ses, 'anat') : path.join(sub, 'anat');
  const target = path.join(root, path.relative(bids, anat));
  await mkdir(target, { recursive: true });
  await symlink(path.join(bids, 'dataset_description.json'), path.join(root, 'dataset_description.json'));
  const t1w = (await readdir(anat)).filter((f) => /_T1w\.(nii(\.gz)?|json)$/.test(f));
  for (const file of t1w) await symlink(path.join(anat, file), path.join(target, file));
  return root;
}

async function timeTool() {
  if (existsSync('/usr/bin/time')) return '/usr/bin/time';
  if (process.getuid?.() === 0) {
    say('/usr/bin/time missing: apt-get install -y time');
    notes.push('installed Debian package "time" for /usr/bin/time');
    const done = await execa('apt-get', ['install', '-y', 'time'], { reject: false, stdio: 'inherit' });
    if (done.exitCode === 0 && existsSync('/usr/bin/time')) return '/usr/bin/time';
  }
  notes.push('/usr/bin/time unavailable: CPU time from /proc only');
  return null;
}

async function pythonVersions() {
  const code = 'import sys, json; sys.path.insert(0, "bench"); import common; print(json.dumps(common.versions()))';
  const { stdout } = await execa(python, ['-c', code], { cwd: repo });
  return JSON.parse(stdout);
}

// ---------------------------------------------------------------------------- process tree

function parseStat(text) {
  const close = text.lastIndexOf(')');
  const f = text.slice(close + 2).split(' ');
  const tick = 100; // USER_HZ on Linux
  return {
    comm: text.slice(text.indexOf('(') + 1, close), ppid: Number(f[1]), threads: Number(f[17]),
    rssMb: (Number(f[21]) * 4096) / 2 ** 20, cpu: (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / tick,
  };
}

/** Child pids of a process, from /proc/<pid>/task/<tid>/children (a few reads, not a scan of /proc). */
async function childrenOf(pid) {
  const kids = [];
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const text = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '');
    kids.push(...text.split(' ').filter(Boolean).map(Number));
  }
  return kids;
}

/** One /proc sample of the tree under `root`: summed RSS (MB), threads, CPU seconds; per-command threads. */
async function sampleTree(root) {
  const out = { rssMb: 0, threads: 0, cpu: 0, byCommand: {} };
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift();
    try {
      const p = parseStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
      out.rssMb += p.rssMb;
      out.threads += p.threads;
      out.cpu += p.cpu;
      out.byCommand[p.comm] = Math.max(out.byCommand[p.comm] ?? 0, p.threads);
      queue.push(...(await childrenOf(pid)));
    } catch {
      // the process ended while we read it
    }
  }
  return out;
}

/** Run a command, polling its process tree; returns wall, CPU, peak tree RSS and thread counts. */
async function measured(command, args, timeBin) {
  const timeFile = path.join(scratch, `time-${Date.now()}.txt`);
  const argv = timeBin ? [timeBin, ['-f', '%e %U %S %M', '-o', timeFile, command, ...args]] : [command, args];
  const started = performance.now();
  const child = execa(argv[0], argv[1], { cwd: repo, reject: false, all: true });
  const peak = { rssMb: 0, threads: 0, cpu: 0, byCommand: {} };
  let polling = true;
  const poll = (async () => {
    while (polling) {
      const s = await sampleTree(child.pid);
      peak.rssMb = Math.max(peak.rssMb, s.rssMb);
      peak.threads = Math.max(peak.threads, s.threads);
      peak.cpu = Math.max(peak.cpu, s.cpu);
      for (const [c, n] of Object.entries(s.byCommand)) peak.byCommand[c] = Math.max(peak.byCommand[c] ?? 0, n);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  })();
  const result = await child;
  const wall = (performance.now() - started) / 1000;
  polling = false;
  await poll;
  let cpu = peak.cpu;
  let maxSingleRssMb = null;
  if (timeBin && existsSync(timeFile)) {
    const [, user, sys, maxKb] = (await readFile(timeFile, 'utf8')).trim().split('\n').pop().split(' ').map(Number);
    cpu = user + sys;
    maxSingleRssMb = maxKb / 1024;
  }
  return {
    exitCode: result.exitCode, output: result.all ?? '', wall, cpu, parallelism: cpu / wall,
    peakRssMb: peak.rssMb, maxSingleRssMb, peakThreads: peak.threads, threadsByCommand: peak.byCommand,
  };
}

// ---------------------------------------------------------------------------- micanon CLI

function number(re, text) {
  const m = re.exec(text);
  return m ? Number(m[1]) : null;
}

/** Stage times the CLI's own logs and run record give (engine timings, seconds). */
async function stagesFromLogs(outDir, wall) {
  const logs = path.join(outDir, 'logs');
  const files = existsSync(logs) ? await readdir(logs) : [];
  const jsonl = (await Promise.all(files.filter((f) => f.endsWith('.jsonl')).map((f) => readFile(path.join(logs, f), 'utf8'))))
    .join('\n').split('\n').filter(Boolean).map((l) => JSON.parse(l).message ?? '').join('\n');
  const recordFile = files.find((f) => f.endsWith('_micanon.json'));
  const record = recordFile ? JSON.parse(await readFile(path.join(logs, recordFile), 'utf8')) : { outputs: [] };
  const callMs = number(/engine\.anonymize_session answered in (\d+) ms/, jsonl);
  // The run record carries the engine's own stage timings (seconds) and the QC step's.
  const stages = { ...(record.timings ?? {}) };
  const session = stages.session ?? null;
  delete stages.session;
  delete stages.wall; // the session's wall clock, not a stage
  if (callMs !== null) stages['CLI + engine start + sidecars + report'] = wall - callMs / 1000 - (stages.qc ?? 0);
  const rounded = Object.fromEntries(Object.entries(stages).filter(([, v]) => v !== null).map(([k, v]) => [k, Math.round(v * 100) / 100]));
  return {
    stages: rounded,
    sessionSeconds: session,
    outputs: record.outputs.map((o) => ({ input: o.input, method: o.method, status: o.status, brainVoxelsChanged: o.brainVoxelsChanged, seconds: o.methodSeconds })),
  };
}

async function runCli(label, bids, subject, method, timeBin) {
  const outDir = path.join(scratch, `out-${label}`);
  await rm(outDir, { recursive: true, force: true });
  const methodArgs = method === 'all' ? ['--all'] : ['--method', method];
  // --qc-fail-ok: every output is written whatever its QC verdict, so each run times the whole job.
  const args = ['bin/micanon.js', bids, outDir, 'participant', '--participant-label', subject, ...methodArgs, '--nthreads', opts.threads, '--qc-fail-ok'];
  say(`micanon ${label}: node ${args.join(' ')}`);
  const run = await measured('node', args, timeBin);
  const logs = await stagesFromLogs(outDir, run.wall);
  const bad = logs.outputs.filter((o) => o.brainVoxelsChanged !== 0);
  const notWritten = logs.outputs.filter((o) => o.status !== 'ok');
  if (notWritten.length) say(`micanon ${label}: ${notWritten.length} output(s) did not pass (QC FAILED, written because of --qc-fail-ok, or an engine failure): ${notWritten.map((o) => `${path.basename(o.input)} ${o.method}`).join(', ')}`);
  if (run.exitCode !== 0) say(`micanon ${label} exited ${run.exitCode}:\n${run.output.split('\n').slice(-15).join('\n')}`);
  say(`micanon ${label}: ${run.wall.toFixed(1)} s, peak ${run.peakRssMb.toFixed(0)} MB, ${logs.outputs.length} outputs`);
  const { output: _output, ...kept } = run;
  return { ...kept, ...logs, notWritten: notWritten.length, brainIntact: logs.outputs.length > 0 && bad.length === 0 };
}

// ---------------------------------------------------------------------------- python sides

async function runPython(script, args, timeBin, label) {
  const json = path.join(scratch, `${label}.json`);
  say(`${label}: ${python} ${script} ${args.join(' ')}`);
  const run = await measured(python, [script, ...args, '--json', json], timeBin);
  if (run.exitCode !== 0 || !existsSync(json)) {
    say(`${label} failed (exit ${run.exitCode}):\n${run.output.split('\n').slice(-20).join('\n')}`);
    return null;
  }
  const { output: _output, ...kept } = run;
  return { ...JSON.parse(await readFile(json, 'utf8')), process: kept };
}

// ---------------------------------------------------------------------------- report

const pad = (s, n) => String(s).padEnd(n);
const secs = (v) => (v === null || v === undefined ? '-' : Number(v).toFixed(1));

function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  return [header, ...rows].map((r) => r.map((c, i) => pad(c, widths[i])).join('  ').trimEnd()).join('\n');
}

function stageTable(stages) {
  const total = Object.values(stages).reduce((a, b) => a + b, 0);
  const rows = Object.entries(stages).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, secs(v), `${((100 * v) / total).toFixed(0)}%`]);
  return table(['stage', 'seconds', 'share'], rows);
}

async function main() {
  const timeBin = await timeTool();
  const { bids, fallback } = await findDataset();
  const subject = await firstSubject(bids);
  await buildIfStale();
  const loadStart = os.loadavg();
  const results = {
    date: new Date().toISOString(),
    host: os.hostname(),
    cores: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? null,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    threads: Number(opts.threads),
    loadAverageAtStart: loadStart,
    dataset: { path: bids, subject, fallback },
    versions: { node: process.version, ...(await pythonVersions()) },
    micanon: {},
    personB: {},
    profile: null,
    reference: null,
    ratios: {},
    targets: {},
    notes,
  };

  const bidsB = fallback ? null : personB();
  if (runMicanon) {
    for (const method of METHODS) results.micanon[method] = await runCli(method, bids, subject, method, timeBin);
    results.micanon['deface-T1w-only'] = await runCli('deface-T1w-only', await t1wOnlyDataset(bids, subject), subject, 'deface', timeBin);
    if (bidsB) {
      const subjectB = await firstSubject(bidsB);
      for (const method of METHODS) results.personB[method] = await runCli(`B-${method}`, bidsB, subjectB, method, timeBin);
    }
    if (!opts['no-profile']) {
      results.profile = await runPython('bench/profile.py', ['--bids', bids, '--subject', subject, '--atlas', atlas, '--threads', opts.threads], timeBin, 'profile');
    }
  }
  if (opts['reference-json']) {
    results.reference = JSON.parse(await readFile(opts['reference-json'], 'utf8'));
    notes.push(`reference taken from ${opts['reference-json']} (not re-run)`);
  } else if (runReference) {
    results.reference = await runPython('bench/reference.py', ['--bids', bids, '--subject', subject, '--atlas', atlas, '--threads', opts.threads], timeBin, 'reference');
  } else {
    notes.push('reference not run (--quick or --only micanon): speed ratios unavailable');
  }
  results.loadAverageAtEnd = os.loadavg();

  const ref = results.reference?.per_method_seconds ?? {};
  for (const method of METHODS) {
    const mine = results.micanon[method]?.wall;
    results.ratios[method] = mine && ref[method] ? Math.round((ref[method] / mine) * 10) / 10 : null;
  }

  const m = results.micanon;
  const everyRun = [...Object.values(m), ...Object.values(results.personB)];
  const qcSeconds = results.profile?.qc?.seconds ?? null;
  const peaks = everyRun.map((r) => r.peakRssMb).concat(results.profile ? [results.profile.process.peakRssMb] : []);
  const check = (value, ok) => (value === null || value === undefined ? 'n/a' : ok ? 'PASS' : 'MISS');
  results.targets = {
    [`A --all < ${TARGETS.allSeconds} s (QC included)`]: { value: m.all?.wall ?? null, status: check(m.all?.wall, m.all?.wall < TARGETS.allSeconds) },
    [`deface of A's T1w alone < ${TARGETS.t1wDefaceSeconds} s`]: { value: m['deface-T1w-only']?.wall ?? null, status: check(m['deface-T1w-only']?.wall, m['deface-T1w-only']?.wall < TARGETS.t1wDefaceSeconds) },
    [`peak RSS < ${TARGETS.peakRssMb / 1024} GB`]: { value: peaks.length ? Math.max(...peaks) : null, status: check(peaks.length || null, Math.max(...peaks) < TARGETS.peakRssMb) },
    ...Object.fromEntries(METHODS.map((k) => [
      `>= ${TARGETS.speedup}x faster than reference (${k})`,
      { value: results.ratios[k], status: check(results.ratios[k], results.ratios[k] >= TARGETS.speedup) },
    ])),
    'brain_voxels_changed == 0 everywhere (A and B)': {
      value: everyRun.flatMap((r) => r.outputs).filter((o) => o.brainVoxelsChanged !== 0).length,
      status: check(everyRun.length || null, everyRun.every((r) => r.brainIntact)),
    },
  };

  // ------------------------------------------------------------------ print
  const out = [];
  out.push(`micanon benchmark: ${results.host}, ${results.cores} cores, ${opts.threads} threads, load ${loadStart.map((l) => l.toFixed(1)).join(' ')}`);
  out.push(`data: ${bids}${fallback ? ' (FALLBACK: built-in example)' : ''}; node ${process.version}, python ${results.versions.python}, antspyx ${results.versions.antspyx}, micanon ${results.versions.micanon}`);
  if (Object.keys(m).length) {
    const runs = [...Object.entries(m), ...Object.entries(results.personB).map(([k, r]) => [`B ${k}`, r])];
    out.push('', table(
      ['run', 'wall s', 'cpu s', 'cpu/wall', 'peak tree RSS MB', 'max threads (python)', 'outputs', 'brain 0', 'reference s', 'ratio'],
      runs.map(([k, r]) => [
        k, secs(r.wall), secs(r.cpu), r.parallelism.toFixed(2), r.peakRssMb.toFixed(0),
        `${r.peakThreads} (${r.threadsByCommand.python ?? '-'})`, r.outputs.length, r.brainIntact ? 'yes' : 'NO',
        secs(ref[k]), results.ratios[k] ?? '-',
      ]),
    ));
    if (m.all) out.push('', 'micanon --all on A, stages from its logs (native_brain, ROBEX, runs beside read, atlas load, T1w -> atlas and the other images\' fits):', stageTable(m.all.stages));
    if (results.personB.all) out.push('', 'micanon --all on B, stages from its logs:', stageTable(results.personB.all.stages));
  }
  if (results.profile) {
    out.push('', `engine profile (in-process, all methods; session ${secs(results.profile.session_seconds)} s, QC of every output in one process ${secs(qcSeconds)} s):`);
    out.push(stageTable(results.profile.stages));
  }
  if (results.reference) {
    out.push('', `reference (micapipe recipe, ANTsPy; wall ${secs(results.reference.wall_seconds)} s, peak ${secs(results.reference.peak_rss_mb)} MB):`);
    out.push(stageTable(results.reference.stages));
  }
  out.push('', table(['target', 'value', 'status'], Object.entries(results.targets).map(([k, t]) => [k, typeof t.value === 'number' ? t.value.toFixed(1) : '-', t.status])));
  out.push(`load average at start ${loadStart.map((l) => l.toFixed(2)).join(' ')}, at end ${results.loadAverageAtEnd.map((l) => l.toFixed(2)).join(' ')} (2 cores: above ~0.5 other work shares the machine and wall times grow)`);
  for (const note of notes) out.push(`note: ${note}`);
  console.log(out.join('\n'));

  const dir = path.join(repo, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${results.date.slice(0, 10)}-${results.host}.json`);
  await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nresults: ${path.relative(repo, file)}`);
  if (!opts.keep) await rm(scratch, { recursive: true, force: true });
  else console.log(`scratch kept: ${scratch}`);
}

await main().catch(async (err) => {
  console.error(`[bench] ${err.stack ?? err}`);
  if (!opts.keep) await rm(scratch, { recursive: true, force: true });
  process.exit(1);
});
