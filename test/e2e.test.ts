/**
 * End to end through the compiled CLI, the real bridge and the real engine: the built-in
 * example everywhere, the real head of ../shared/data where it exists.
 */
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { sharedDataDir } from '../src/paths.js';
import { buildOnce, runCli } from './helpers/cli.js';

function treeDigest(root: string): Map<string, string> {
  const digest = new Map<string, string>();
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    const st = statSync(file);
    digest.set(path.relative(root, file), `${createHash('sha256').update(readFileSync(file)).digest('hex')}:${st.mode}:${st.mtimeMs}`);
  }
  return digest;
}

function filesUnder(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)))
    .sort();
}

function setReadOnly(root: string, readOnly: boolean): void {
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    chmodSync(path.join(entry.parentPath, entry.name), entry.isDirectory() ? (readOnly ? 0o555 : 0o755) : readOnly ? 0o444 : 0o644);
  }
  chmodSync(root, readOnly ? 0o555 : 0o755);
}

beforeAll(async () => {
  await buildOnce();
});

/** The validator's summary line starts so (src/bids/validator.ts reportSummary). */
const VALIDATOR = 'bids-validator 3\\.0\\.2 \\(schema [^)]+\\)';

describe('micanon example (runs anywhere)', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'micanon-example-'));

  it('anonymizes the built-in example, proves it, and leaves the input untouched', async () => {
    const first = await runCli('micanon', ['example', root]);
    expect(first.exitCode, first.all).toBe(0);
    // The official BIDS validator passes the example's input and micanon's output of it.
    expect(first.all).toMatch(new RegExp(`${VALIDATOR} on the input ${path.join(root, 'bids')}: 0 error\\(s\\)`));
    expect(first.all).toMatch(new RegExp(`${VALIDATOR} on the output ${path.join(root, 'derivatives', 'micanon')} \\(sub-example\\): 0 error\\(s\\)`));
    const bids = path.join(root, 'bids');
    const out = path.join(root, 'derivatives', 'micanon');
    expect(filesUnder(out)).toContain('sub-example/anat/sub-example_desc-defaced_T1w.nii.gz');
    const before = treeDigest(bids);
    setReadOnly(bids, true);
    const all = path.join(root, 'all');
    try {
      // The example head is the atlas's own person: reface/warpface paste its own face back, and
      // the identity check must say so. --qc-fail-ok writes them anyway, so the records show it.
      const run = await runCli('micanon', [bids, all, 'participant', '--all', '--nthreads', '2', '--qc-fail-ok']);
      expect(run.exitCode, run.all).toBe(0);
      // Console, run record and HTML agree: written, and FAILED, because of --qc-fail-ok.
      const summary = /summary: 6 written, (\d) of them failed QC and were written because of --qc-fail-ok; 0 failed and not written/.exec(run.all ?? '');
      expect(summary, run.all).not.toBeNull();
      // at least the T1w's reface and warpface (the T2w's depend on how far its warp may reach)
      expect(Number(summary![1])).toBeGreaterThanOrEqual(2);
      for (const method of ['reface', 'warpface']) {
        expect(run.all).toMatch(new RegExp(`sub-example_T1w\\.nii\\.gz ${method}: QC FAILED`));
      }
      expect(run.all?.trimEnd().split('\n').at(-1)).toMatch(new RegExp(`QC page of sub-example: ${path.join(all, 'sub-example.html')}$`));
      expect(readFileSync(path.join(all, 'sub-example.html'), 'utf8')).toContain('written (--qc-fail-ok)');
    } finally {
      setReadOnly(bids, false);
    }
    expect(treeDigest(bids)).toEqual(before);
    const files = filesUnder(all);
    for (const suffix of ['T1w', 'T2w']) {
      for (const desc of ['defaced', 'refaced', 'warpfaced']) {
        expect(files).toContain(`sub-example/anat/sub-example_desc-${desc}_${suffix}.nii.gz`);
        const sidecar = JSON.parse(readFileSync(path.join(all, `sub-example/anat/sub-example_desc-${desc}_${suffix}.json`), 'utf8'));
        expect(sidecar.PatientName).toBeUndefined();
        expect(sidecar.AcquisitionDateTime).toBeUndefined();
        expect(sidecar.InstitutionName).toBeUndefined();
        expect(sidecar.DeidentificationMethod).toEqual([expect.stringMatching(new RegExp(desc.replace(/d$/, '')))]);
        expect(sidecar.SkullStripped).toBe(false);
      }
    }
    expect(files.some((f) => f.includes('micanon-tmp'))).toBe(false);
    expect(files).toContain('sub-example.html');
    const description = JSON.parse(readFileSync(path.join(all, 'dataset_description.json'), 'utf8'));
    expect(description.DatasetType).toBe('derivative');
    const record = JSON.parse(readFileSync(path.join(all, 'logs', 'sub-example_micanon.json'), 'utf8'));
    // Every method's output passes the validator; the run record and the QC page say so.
    expect(record.bidsValidation.output).toMatchObject({ validator: expect.stringMatching(/^bids-validator 3\.0\.2/), dataset: all, errors: [] });
    expect(record.bidsValidation.input.errors).toEqual([]);
    expect(readFileSync(path.join(all, 'sub-example.html'), 'utf8')).toMatch(/<section id="bids-validation">.*Output \(micanon&#39;s own[^<]*<\/b>/s);
    expect(record.outputs).toHaveLength(6);
    expect(record.reference).toEqual({ input: path.join('sub-example', 'anat', 'sub-example_T1w.nii.gz'), reason: 'T1w; the only T1w image' });
    for (const o of record.outputs) {
      const sameFace = o.method !== 'deface' && o.input.endsWith('_T1w.nii.gz');
      expect([o.written, o.brainVoxelsChanged]).toEqual([true, 0]);
      // deface passes, the T1w's own face given back fails; the T2w's reface/warpface verdicts
      // depend on how far the face may change outside the brain guard (issue 21's identity work)
      if (o.method === 'deface') expect(o.status).toBe('ok');
      if (sameFace) expect(o.status).toBe('failed');
      if (o.status === 'failed') expect(o.reason).toMatch(/^QC FAILED: .*\(written because of --qc-fail-ok\)$/);
    }
    const qc = filesUnder(path.join(all, 'logs', 'qc')).map((f) => JSON.parse(readFileSync(path.join(all, 'logs', 'qc', f), 'utf8')));
    expect(qc).toHaveLength(6);
    for (const r of qc) {
      expect(r.checks.brain_voxels_changed.value).toBe(0);
      expect(r.checks.header.pass).toBe(true);
      // Same person given back its own face: the identity check must catch it.
      if (r.method !== 'deface' && r.input.endsWith('_T1w.nii.gz')) expect(r.status).toBe('FAILED');
    }
    // The group level gathers every participant's records into one summary and one QC page.
    const group = await runCli('micanon', [bids, all, 'group']);
    expect(group.exitCode, group.all).toBe(0);
    expect(group.all).toMatch(new RegExp(`${VALIDATOR} on the output ${all}: 0 error\\(s\\)`));
    expect(readFileSync(path.join(all, 'logs', 'group_summary.tsv'), 'utf8').trim().split('\n')).toHaveLength(7);
    expect(readFileSync(path.join(all, 'logs', 'group_qc.tsv'), 'utf8').trim().split('\n')).toHaveLength(7);
    expect(readFileSync(path.join(all, 'group_qc.html'), 'utf8')).toContain('sub-example');
    // ... and attacks it: every input and output against a gallery of the inputs and the atlas
    // face (one person here, the atlas's own: the rates say nothing, the page says why).
    expect(group.all).toMatch(/re-identification attack \(rank-1, cross-view\): input \d\/2, deface \d\/2, reface \d\/2, warpface \d\/2; /);
    const attack = readFileSync(path.join(all, 'logs', 'group_attack.tsv'), 'utf8').trim().split('\n').map((line) => line.split('\t'));
    expect(attack.slice(1).map((row) => `${row[0]} ${row[1]} ${row[2]}`)).toEqual([
      'cross_view input 2', 'cross_view deface 2', 'cross_view reface 2', 'cross_view warpface 2',
      'same_view deface 2', 'same_view reface 2', 'same_view warpface 2',
    ]);
    expect(readFileSync(path.join(all, 'group_qc.html'), 'utf8')).toMatch(/holds 1 person\(s\)|proves nothing on this dataset/);
  });

  it('fails (exit 1) when its output breaks BIDS, naming the file: here a name with its entities out of order', async () => {
    const out = path.join(root, 'broken');
    cpSync(path.join(root, 'all'), out, { recursive: true });
    const anat = path.join(out, 'sub-example', 'anat');
    for (const ext of ['.nii.gz', '.json']) cpSync(path.join(anat, `sub-example_desc-defaced_T1w${ext}`), path.join(anat, `sub-example_desc-defaced_acq-x_T1w${ext}`));
    const group = await runCli('micanon', [path.join(root, 'bids'), out, 'group']);
    expect(group.exitCode, group.all).toBe(1);
    expect(group.all).toMatch(new RegExp(`ERROR: ${VALIDATOR} on the output ${out}: [1-9]\\d* error\\(s\\).*a bug in micanon`));
    expect(group.all).toMatch(/ERROR: BIDS: \w+ \/sub-example\/anat\/sub-example_desc-defaced_acq-x_T1w\.nii\.gz: /);
    expect(readFileSync(path.join(out, 'group_qc.html'), 'utf8')).toContain('/sub-example/anat/sub-example_desc-defaced_acq-x_T1w.nii.gz');
  });

  it('with no T1w, the best 3D image stands in, and the log, run record and report say why', async () => {
    const bids = path.join(root, 'no-t1w');
    cpSync(path.join(root, 'bids'), bids, { recursive: true });
    for (const ext of ['.nii.gz', '.json']) rmSync(path.join(bids, 'sub-example', 'anat', `sub-example_T1w${ext}`));
    const out = path.join(root, 'no-t1w-out');
    const run = await runCli('micanon', [bids, out, 'participant', '--method', 'deface', '--nthreads', '2']);
    expect(run.exitCode, run.all).toBe(0);
    const why = /no T1w in this session; T2w stands in as the best 3D anatomical image \([^)]*whole-head 3D\); registered to the atlas by mutual information/;
    expect(run.all).toMatch(why);
    const record = JSON.parse(readFileSync(path.join(out, 'logs', 'sub-example_micanon.json'), 'utf8'));
    expect(record.reference.input).toBe(path.join('sub-example', 'anat', 'sub-example_T2w.nii.gz'));
    expect(record.reference.reason).toMatch(why);
    expect(record.outputs.map((o: { status: string }) => o.status)).toEqual(['ok']);
    const page = readFileSync(path.join(out, 'sub-example.html'), 'utf8');
    expect(page).toContain('Reference image (registered to the atlas)');
    expect(page).toMatch(why);
  });

  it('--t1w from outside the dataset: registered through it, proven, and named by its absolute path', async () => {
    const elsewhere = path.join(root, 'elsewhere');
    cpSync(path.join(root, 'bids', 'sub-example', 'anat', 'sub-example_T1w.nii.gz'), path.join(elsewhere, 'T1w.nii.gz'), { recursive: true });
    const t1w = path.join(elsewhere, 'T1w.nii.gz');
    const out = path.join(root, 't1w-elsewhere-out');
    const run = await runCli('micanon', [path.join(root, 'bids'), out, 'participant', '--method', 'deface', '--t1w', t1w, '--nthreads', '2']);
    expect(run.exitCode, run.all).toBe(0);
    const record = JSON.parse(readFileSync(path.join(out, 'logs', 'sub-example_micanon.json'), 'utf8'));
    expect(record.reference).toMatchObject({ input: t1w, reason: '--t1w' });
    expect(record.outputs.map((o: { status: string }) => o.status).every((s: string) => s === 'ok')).toBe(true);
    expect(record.outputs.length).toBeGreaterThan(0);
  });

  it('writes a shareable raw copy with --output-layout raw: same names, faces removed, nothing identifying', async () => {
    const bids = path.join(root, 'bids');
    const out = path.join(root, 'raw-copy');
    const run = await runCli('micanon', [bids, out, 'participant', '--output-layout', 'raw', '--method', 'deface', '--nthreads', '2']);
    expect(run.exitCode, run.all).toBe(0);
    const files = filesUnder(out);
    for (const name of ['dataset_description.json', 'participants.tsv', 'sub-example/anat/sub-example_T1w.nii.gz', 'sub-example/anat/sub-example_T2w.nii.gz']) {
      expect(files).toContain(name);
    }
    // The images under their original names are the anonymized ones, not copies of the input.
    const input = readFileSync(path.join(bids, 'sub-example/anat/sub-example_T1w.nii.gz'));
    expect(readFileSync(path.join(out, 'sub-example/anat/sub-example_T1w.nii.gz')).equals(input)).toBe(false);
    const sidecar = JSON.parse(readFileSync(path.join(out, 'sub-example/anat/sub-example_T1w.json'), 'utf8'));
    expect(sidecar.PatientName).toBeUndefined();
    expect(sidecar.DeidentificationMethodCodeSequence[0].CodeValue).toBe('113102');
    expect(run.all).toMatch(new RegExp(`${VALIDATOR} on the output ${out} \\(sub-example\\): 0 error\\(s\\)`));

    // The QC figures show the input's face: none of QC is in the shareable copy, all of it beside it.
    const qcDir = `${out}-qc`;
    expect(run.all).toContain(`QC records, figures and pages: ${qcDir} (QC figures show faces: kept out of the shareable copy)`);
    expect(files.filter((f) => /\.(png|html)$/.test(f))).toEqual([]);
    expect(existsSync(path.join(out, 'logs', 'qc'))).toBe(false);
    expect(readFileSync(path.join(out, '.bidsignore'), 'utf8')).toBe('logs/\n');
    const qcFiles = filesUnder(qcDir);
    expect(qcFiles.filter((f) => f.startsWith(`logs${path.sep}qc${path.sep}`) && f.endsWith('.json'))).toHaveLength(2);
    expect(qcFiles.filter((f) => f.startsWith(path.join('sub-example', 'figures')) && f.endsWith('.png')).length).toBeGreaterThan(0);
    const page = readFileSync(path.join(qcDir, 'sub-example.html'), 'utf8');
    const images = [...page.matchAll(/<img [^>]*src="([^"]+)"/g)].map((m) => m[1] ?? '');
    expect(images.length).toBeGreaterThan(0);
    for (const src of images) expect(existsSync(path.join(qcDir, ...src.split('/').map(decodeURIComponent))), src).toBe(true);

    // The group level, given the same options, reads the records there and writes its page there.
    const group = await runCli('micanon', [bids, out, 'group', '--output-layout', 'raw']);
    expect(group.exitCode, group.all).toBe(0);
    expect(readFileSync(path.join(qcDir, 'group_qc.html'), 'utf8')).toContain('sub-example.html');
    expect(readFileSync(path.join(qcDir, 'logs', 'group_qc.tsv'), 'utf8').trim().split('\n')).toHaveLength(3);
    expect(filesUnder(out).filter((f) => /\.(png|html)$/.test(f) || f.includes('group_qc'))).toEqual([]);
    expect(filesUnder(out)).toContain(path.join('logs', 'group_summary.tsv'));

    // Without the participant run's layout, the group level refuses before writing anything:
    // its QC page would otherwise land, empty, in the shareable copy.
    const before = filesUnder(out).sort();
    const wrong = await runCli('micanon', [bids, out, 'group']);
    expect(wrong.exitCode, wrong.all).toBe(64);
    expect(wrong.all).toContain('was written with --output-layout raw');
    expect(filesUnder(out).filter((f) => !f.startsWith(`logs${path.sep}micanon_`)).sort()).toEqual(before.filter((f) => !f.startsWith(`logs${path.sep}micanon_`)));
    expect(existsSync(path.join(out, 'group_qc.html'))).toBe(false);
  });

  it('stops the engine and leaves no partial output, no work folder and one error line on Ctrl-C', async () => {
    const bids = path.join(root, 'bids');
    const out = mkdtempSync(path.join(tmpdir(), 'micanon-interrupted-'));
    const work = mkdtempSync(path.join(tmpdir(), 'micanon-interrupted-work-'));
    const child = execa(process.execPath, [path.join(__dirname, '..', 'bin', 'micanon.js'), bids, out, 'participant', '--all', '-w', work], {
      reject: false,
      all: true,
    });
    // Wait until the engine is working on the session, then interrupt.
    let seen = '';
    await new Promise<void>((resolve) => {
      child.all?.on('data', (chunk: Buffer) => {
        seen += chunk.toString();
        if (/\[1\/1\] sub-example/.test(seen)) resolve();
      });
    });
    const pythonPids = (await execa('pgrep', ['-P', String(child.pid)], { reject: false })).stdout.split('\n').filter(Boolean).map(Number);
    expect(pythonPids.length).toBeGreaterThan(0);
    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode).toBe(130);
    for (const pid of pythonPids) expect(() => process.kill(pid, 0)).toThrow();
    expect(filesUnder(out).filter((f) => f.endsWith('.nii.gz'))).toEqual([]);
    expect(readdirSync(work)).toEqual([]);
    const errors = String(result.all).split('\n').filter((line) => / ERROR: /.test(line));
    expect(errors).toEqual([expect.stringMatching(/interrupted by SIGINT/)]);
  });
});

const personA = sharedDataDir() ? path.join(sharedDataDir()!, 'bids-person-a') : null;

describe.skipIf(!personA || !existsSync(personA))('person A, the real head (../shared/data/bids-person-a)', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'micanon-person-a-'));
  const bids = path.join(work, 'bids');
  beforeAll(() => {
    cpSync(personA!, bids, { recursive: true });
  });

  it('defaces T1w, PDw and angio: every output proven and written, 0 brain voxels changed', async () => {
    const out = path.join(work, 'deface');
    const run = await runCli('micanon', [bids, out, 'participant', '--participant-label', 'A']);
    expect(run.exitCode, run.all).toBe(0);
    const record = JSON.parse(readFileSync(path.join(out, 'logs', 'sub-A_ses-01_micanon.json'), 'utf8'));
    expect(record.outputs).toHaveLength(3);
    for (const o of record.outputs) expect([o.method, o.status, o.brainVoxelsChanged]).toEqual(['deface', 'ok', 0]);
    const qc = filesUnder(path.join(out, 'logs', 'qc')).map((f) => JSON.parse(readFileSync(path.join(out, 'logs', 'qc', f), 'utf8')));
    const t1w = qc.find((r) => r.input.endsWith('_T1w.nii.gz'));
    // The real face is seen on the input and gone from the output.
    expect(Object.values(t1w.checks.face_views_input).flat()).toContain('cnn');
    expect(Object.values(t1w.checks.face_views_output).flat()).not.toContain('cnn');
    expect(t1w.status).toBe('PASS');
  });

  it('--all: every output keeps the brain, and no output that fails its proof is written', async () => {
    const out = path.join(work, 'all');
    const run = await runCli('micanon', [bids, out, 'participant', '--participant-label', 'A', '--all']);
    const record = JSON.parse(readFileSync(path.join(out, 'logs', 'sub-A_ses-01_micanon.json'), 'utf8'));
    expect(record.outputs).toHaveLength(9);
    for (const o of record.outputs) expect(o.brainVoxelsChanged).toBe(0);
    const qc = filesUnder(path.join(out, 'logs', 'qc')).map((f) => JSON.parse(readFileSync(path.join(out, 'logs', 'qc', f), 'utf8')));
    expect(qc).toHaveLength(9);
    const written = new Set(filesUnder(out).filter((f) => f.endsWith('.nii.gz')));
    for (const r of qc) {
      const name = `sub-A/ses-01/anat/${path.basename(r.input).replace(/_([A-Za-z0-9]+)\.nii\.gz$/, `_desc-${r.method}d_$1.nii.gz`)}`;
      expect(written.has(name), `${name} ${r.status}`).toBe(r.status === 'PASS');
      if (r.method !== 'deface' && r.checks.identity?.distance != null) expect(r.checks.identity.threshold).toBeGreaterThan(0);
    }
    expect(run.exitCode).toBe(qc.some((r) => r.status === 'FAILED') ? 1 : 0);
  });
});

if (!personA || !existsSync(personA)) {
  describe('person A', () => {
    it.skip('skipped: ../shared/data/bids-person-a is absent (real-head tests need it; set MICANON_SHARED_DATA)', () => undefined);
  });
}
