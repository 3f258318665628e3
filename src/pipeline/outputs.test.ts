import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BidsIgnore } from '../bids/ignore.js';
import { bidsIgnoreText, qcLocationNote } from './outputs.js';

const out = path.resolve('/data/out');

describe('.bidsignore of output_dir', () => {
  it('is unchanged when QC is output_dir itself (derivatives and micapipe default)', () => {
    expect(bidsIgnoreText({ outputDir: out, qcDir: out })).toBe('logs/\nsub-*/figures\n*.html\n');
  });

  it('lists only logs/ when QC is elsewhere, so nothing hides a stray page or figure in the copy', () => {
    const text = bidsIgnoreText({ outputDir: out, qcDir: `${out}-qc` });
    expect(text).toBe('logs/\n');
    const rules = new BidsIgnore(text.split('\n'));
    expect(rules.ignores('/logs/sub-01_micanon.json')).toBe(true);
    expect(rules.ignores('/sub-01.html')).toBe(false);
    expect(rules.ignores('/sub-01/figures/a.png')).toBe(false);
  });

  it('hides a QC folder below output_dir as a whole, anchored at the root', () => {
    const rules = new BidsIgnore(bidsIgnoreText({ outputDir: out, qcDir: path.join(out, 'qc') }).split('\n'));
    expect(rules.ignores('/qc/sub-01.html')).toBe(true);
    expect(rules.ignores('/qc/sub-01/figures/a.png')).toBe(true);
    expect(rules.ignores('/qc/logs/qc/sub-01_T1w_deface.json')).toBe(true);
    expect(rules.ignores('/sub-01/anat/qc/x.nii.gz')).toBe(false);
    expect(rules.ignores('/sub-01/anat/sub-01_T1w.nii.gz')).toBe(false);
  });
});

describe('the log line saying where QC went', () => {
  it('says why for the raw layout, names --qc-dir otherwise, and is silent when QC is output_dir', () => {
    expect(qcLocationNote({ outputDir: out, qcDir: `${out}-qc`, outputLayout: 'raw' })).toBe(
      `QC records, figures and pages: ${out}-qc (QC figures show faces: kept out of the shareable copy)`,
    );
    expect(qcLocationNote({ outputDir: out, qcDir: '/data/qc', outputLayout: 'derivatives' })).toMatch(/\/data\/qc \(--qc-dir\)$/);
    expect(qcLocationNote({ outputDir: out, qcDir: out, outputLayout: 'derivatives' })).toBeNull();
  });
});
