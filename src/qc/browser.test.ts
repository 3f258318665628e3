/**
 * The reports in a real browser: headless Chromium opens each page from disk, must log nothing
 * to the console (the pages have no script, so any console line is a CSP violation or an error),
 * and takes a screenshot. Skips where Chromium is absent (CI: `apt-get install -y chromium`).
 * Set MICANON_QC_SCREENSHOTS=<folder> to keep the screenshots for a look.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { writeGroupReport } from './group.js';
import { failedRecord, goodRecord, useTempDirs, writeOutputDir } from './qc.fixture.js';
import { writeParticipantReport } from './report.js';

const CHROMIUM = process.env.MICANON_CHROMIUM ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const SKIP_REASON = `${CHROMIUM} not found; install it with \`apt-get install -y chromium\` to run this test`;
if (!HAVE_CHROMIUM) console.warn(`src/qc/browser.test.ts skipped: ${SKIP_REASON}`);

const newDir = useTempDirs();

interface BrowserRun {
  exitCode: number | undefined;
  /** Console messages and uncaught errors the page produced. */
  consoleLines: string[];
}

/** Open `url` in headless Chromium, write a screenshot to `screenshot`. */
async function openInChromium(url: string, screenshot: string, height = 2000): Promise<BrowserRun> {
  const profile = await mkdtemp(path.join(os.tmpdir(), 'micanon-qc-chromium-'));
  try {
    const run = await execa(
      CHROMIUM,
      [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        `--user-data-dir=${profile}`, '--enable-logging=stderr', '--v=0', '--hide-scrollbars',
        `--screenshot=${screenshot}`, `--window-size=1400,${height}`, url,
      ],
      { reject: false, timeout: 90_000, env: { HOME: profile } },
    );
    return { exitCode: run.exitCode, consoleLines: run.stderr.split('\n').filter((line) => /:CONSOLE|Uncaught/.test(line)) };
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

async function screenshotFolder(): Promise<string> {
  const keep = process.env.MICANON_QC_SCREENSHOTS;
  if (!keep) return newDir();
  await mkdir(keep, { recursive: true });
  return keep;
}

async function expectScreenshot(file: string): Promise<void> {
  const bytes = await readFile(file);
  expect(bytes.subarray(1, 4).toString('ascii')).toBe('PNG');
  // A blank 1400x2000 page compresses to a few kB; the report with its figures is far larger.
  expect((await stat(file)).size).toBeGreaterThan(40_000);
}

describe.skipIf(!HAVE_CHROMIUM)(`QC reports in headless Chromium${HAVE_CHROMIUM ? '' : ` (skipped: ${SKIP_REASON})`}`, () => {
  it('detects console errors (control: a script blocked by the page policy is reported)', async () => {
    const dir = await newDir();
    const page = path.join(dir, 'control.html');
    await writeFile(
      page,
      `<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="default-src 'none'"><p>x</p><script>console.error("boom")</script>`,
    );
    const run = await openInChromium(pathToFileURL(page).href, path.join(dir, 'control.png'));
    expect(run.consoleLines.length).toBeGreaterThan(0);
  });

  it('opens the participant and group pages without console errors', async () => {
    const out = await newDir();
    const records = [
      goodRecord({ method: 'deface' }),
      goodRecord({ method: 'reface' }),
      failedRecord({ method: 'warpface' }),
      // Unescaped, this name would load an image the page policy blocks: a console line.
      goodRecord({ method: 'deface', input: 'sub-01/ses-01/anat/sub-01_ses-01_acq-<img src=x>_PDw.nii.gz' }),
      goodRecord({ session: '02', method: 'reface' }),
      goodRecord({ subject: '02', session: null, method: 'reface' }),
    ];
    const missing = records[2]!.renders.output.high!;
    await writeOutputDir(out, records, new Set([missing]));
    await writeParticipantReport(out, '01', records);
    await writeParticipantReport(out, '02', records);
    await writeGroupReport(out);

    const shots = await screenshotFolder();
    // (A URL fragment is not used: headless Chromium screenshots a scrolled page as blank.)
    const pages: Array<[string, string]> = [
      ['participant.png', pathToFileURL(path.join(out, 'sub-01.html')).href],
      ['group.png', pathToFileURL(path.join(out, 'group_qc.html')).href],
    ];
    for (const [name, url] of pages) {
      const run = await openInChromium(url, path.join(shots, name));
      expect(run.consoleLines, `console output of ${url}`).toEqual([]);
      expect(run.exitCode).toBe(0);
      await expectScreenshot(path.join(shots, name));
    }
    if (process.env.MICANON_QC_SCREENSHOTS) {
      // For a person's look only: the whole participant page, FAILED card included.
      await openInChromium(pages[0]![1], path.join(shots, 'participant-full.png'), 9000);
    }
  });
});
