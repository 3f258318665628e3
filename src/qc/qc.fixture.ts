/**
 * Test fixtures for the QC reports: valid QC records, small PNGs made in code (zlib + CRC, no
 * image library) and an output folder holding both. Used by the src/qc tests only.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterEach } from 'vitest';
import { qcRecordPath, RENDER_VIEWS, SLICE_FIGURES, type QcRecord } from './records.js';

type Rgb = readonly [number, number, number];

function chunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(body) >>> 0);
  return Buffer.concat([length, body, crc]);
}

/** An 8-bit RGB PNG of `width` x `height` whose pixels come from `pixel(x, y)`. */
export function pngBytes(width: number, height: number, pixel: (x: number, y: number) => Rgb): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // bit depth 8, colour type RGB, deflate, no filter method, no interlace
  const raw = Buffer.alloc(height * (1 + 3 * width));
  for (let y = 0; y < height; y++) {
    const row = y * (1 + 3 * width);
    raw[row] = 0; // filter: none
    for (let x = 0; x < width; x++) raw.set(pixel(x, y).map((v) => Math.max(0, Math.min(255, Math.round(v)))), row + 1 + 3 * x);
  }
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', header), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/**
 * A lit ellipsoid "head" seen from a view (stand-in for a surface render, so a screenshot of the
 * report looks like one); `withFace` adds a nose bump on views that see the face.
 */
export function headPng(view: string, withFace: boolean, size = 96): Buffer {
  const faceSide = { front: 0, left34: -0.45, right34: 0.45, left: -0.8, right: 0.8 }[view];
  return pngBytes(size, size, (x, y) => {
    const u = (2 * x) / size - 1;
    const v = (2 * y) / size - 1;
    const r2 = (u / 0.72) ** 2 + (v / 0.88) ** 2;
    if (r2 > 1) return [0, 0, 0];
    let z = Math.sqrt(1 - r2);
    if (withFace && faceSide !== undefined) z += 0.5 * Math.exp(-((u - faceSide) ** 2 + (v - 0.1) ** 2) / 0.012);
    const shade = 60 + 170 * Math.min(1, z * (0.75 + 0.25 * -v));
    return [shade, shade * 0.93, shade * 0.86];
  });
}

/** A sagittal-like slice: head ellipse with a darker brain; `overlay` tints brain green and face red. */
export function slicePng(overlay: boolean, size = 96): Buffer {
  return pngBytes(size, size, (x, y) => {
    const u = (2 * x) / size - 1;
    const v = (2 * y) / size - 1;
    const head = (u / 0.8) ** 2 + (v / 0.9) ** 2 <= 1;
    const brain = ((u + 0.1) / 0.6) ** 2 + ((v + 0.15) / 0.6) ** 2 <= 1;
    const face = head && u > 0.45 && v > -0.1;
    if (!head) return [0, 0, 0];
    const g = brain ? 120 + 60 * Math.sin(8 * u) * Math.cos(7 * v) : 200;
    if (overlay && brain) return [g * 0.5, g, g * 0.5];
    if (overlay && face) return [230, 70, 60];
    return [g, g, g];
  });
}

/** A QC record that passes every check (reface, identity compared), with renders under sub-XX/figures. */
export function goodRecord(overrides: Partial<QcRecord> = {}): QcRecord {
  const subject = overrides.subject ?? '01';
  const session = overrides.session === undefined ? '01' : overrides.session;
  const method = overrides.method ?? 'reface';
  const prefix = `sub-${subject}${session ? `_ses-${session}` : ''}`;
  const input = overrides.input ?? `sub-${subject}/${session ? `ses-${session}/` : ''}anat/${prefix}_T1w.nii.gz`;
  const stem = path.posix.basename(input).replace(/\.nii(\.gz)?$/, '');
  const figure = (name: string) => `sub-${subject}/figures/${stem}_${method}_${name}.png`;
  const views = (when: string) => Object.fromEntries(RENDER_VIEWS.map((v) => [v, figure(`${when}-${v}`)]));
  return {
    subject,
    session,
    input,
    output: `sub-${subject}/${session ? `ses-${session}/` : ''}anat/${stem.replace(/_T1w$/, '')}_desc-${method}d_T1w.nii.gz`,
    method,
    status: 'PASS',
    checks: {
      brain_voxels_changed: { value: 0, guard_voxels: 123456, pass: true },
      header: { pass: true, differences: [] },
      face: { pass: true, rule: 'identity distance above threshold', detail: 'min distance 0.612 over 5 views' },
      face_views_input: { front: ['hog', 'cnn'], left34: ['hog'], right34: ['cnn'], left: [], right: [], low: [], high: [] },
      face_views_output: { front: ['cnn'], left34: [], right34: [], left: [], right: [], low: [], high: [] },
      identity: method === 'deface' ? null : { distance: 0.612, threshold: 0.4, model: 'dlib_face_recognition_resnet_model_v1', per_view: { front: 0.612, left34: 0.7 } },
      registration: { metric: 'mattes_mi', value: 0.81, flag: 'ok', pass: true },
    },
    renders: {
      input: views('input'),
      output: views('output'),
      slices: Object.fromEntries(SLICE_FIGURES.map((s) => [s, figure(s)])),
    },
    ...overrides,
  };
}

/** The same record FAILED on the face check (output not written). */
export function failedRecord(overrides: Partial<QcRecord> = {}): QcRecord {
  const base = goodRecord(overrides);
  return {
    ...base,
    status: 'FAILED',
    output: null,
    reason: 'a face is still recognised in the front view',
    checks: {
      ...base.checks,
      face: { pass: false, rule: 'identity distance above threshold', detail: 'front view distance 0.31 <= 0.40' },
      identity: { distance: 0.31, threshold: 0.4, model: 'dlib_face_recognition_resnet_model_v1', per_view: { front: 0.31 } },
      registration: { metric: 'mattes_mi', value: 0.42, flag: 'poor', pass: true },
    },
    ...overrides,
  };
}

/** Fresh temporary folders, removed after each test. */
export function useTempDirs(): () => Promise<string> {
  const made: string[] = [];
  afterEach(async () => {
    await Promise.all(made.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  });
  return async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'micanon-qc-test-'));
    made.push(dir);
    return dir;
  };
}

/**
 * Write each record to its QC path under `outputDir` and every render it names as a PNG
 * (except those in `skipRenders`, to test placeholders).
 */
export async function writeOutputDir(outputDir: string, records: readonly QcRecord[], skipRenders: ReadonlySet<string> = new Set()): Promise<void> {
  for (const record of records) {
    const file = qcRecordPath(outputDir, record);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify(record, null, 2));
    const renders: Array<[string, Buffer]> = [
      ...Object.entries(record.renders.input).map(([view, rel]): [string, Buffer] => [rel, headPng(view, true)]),
      ...Object.entries(record.renders.output).map(([view, rel]): [string, Buffer] => [rel, headPng(view, record.status !== 'PASS')]),
      ...Object.entries(record.renders.slices).map(([name, rel]): [string, Buffer] => [rel, slicePng(name.includes('overlay'))]),
      ...Object.entries(record.renders.atlas ?? {}).map(([view, rel]): [string, Buffer] => [rel, headPng(view, false)]),
    ];
    for (const [rel, bytes] of renders) {
      if (skipRenders.has(rel)) continue;
      const target = path.join(outputDir, ...rel.split('/'));
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(target, bytes);
    }
  }
}

const UNESCAPE: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'" };

/** Every href and src value of a page, HTML-unescaped (as a browser reads them). */
export function pageLinks(page: string): string[] {
  return [...page.matchAll(/\b(?:href|src)="([^"]*)"/g)].map((m) => m[1]!.replace(/&(?:amp|lt|gt|quot|#39);/g, (e) => UNESCAPE[e]!));
}

/**
 * Links of a page that do not resolve: files (relative to `pageDir`) that do not exist, and
 * fragments with no element of that id (in this page, or in the linked page when it exists).
 */
export async function brokenLinks(pageDir: string, page: string): Promise<string[]> {
  const ids = (text: string) => new Set([...text.matchAll(/\bid="([^"]*)"/g)].map((m) => m[1]!));
  const broken: string[] = [];
  for (const link of pageLinks(page)) {
    const [file, fragment] = link.split('#') as [string, string | undefined];
    if (/^[a-z]+:/i.test(file)) {
      broken.push(`${link} (not a relative link)`);
      continue;
    }
    let target = page;
    if (file !== '') {
      try {
        target = await readFile(path.join(pageDir, ...file.split('/').map(decodeURIComponent)), file.endsWith('.html') ? 'utf8' : 'latin1');
      } catch {
        broken.push(link);
        continue;
      }
    }
    if (fragment !== undefined && !ids(target).has(fragment)) broken.push(link);
  }
  return broken;
}
