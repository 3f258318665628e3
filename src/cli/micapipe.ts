/**
 * `micapipe_anonymize`: micapipe's own flags, mapped onto the same engine and pipeline.
 *   micapipe_anonymize -sub 01 -ses 01 -out OUT -bids BIDS -all [-dilate 6] [-ears] [-robust] [-nocleanup] [-threads N] [-T1 PATH]
 * Outputs: OUT/sub-XX[/ses-YY]/anat/<input name>_{defaced,refaced,warpfaced}.nii.gz
 */
import { MicanonError } from '../errors.js';
import { packageVersion } from '../version.js';
import { defaults, runConfigSchema, type RunConfig } from '../config.js';
import { usageError } from './parser.js';

export const micapipeHelp = `Usage: micapipe_anonymize -sub <id> -out <dir> -bids <dir> (-deface | -reface | -warpface | -all) [options]

micanon ${packageVersion}, with micapipe_anonymize's command line.

  -sub <id>      participant (with or without "sub-")
  -ses <id>      session (with or without "ses-"); default: every session of the participant,
                 and sessionless data too (micapipe assumed "ses-pre")
  -out <dir>     output folder: <out>/sub-<id>[/ses-<id>]/anat/<name>_<method>ed.nii.gz
  -bids <dir>    BIDS dataset root (never written to)
  -deface        zero the face
  -reface        replace the face with the atlas face, intensity-matched to each image
  -warpface      warp the own face toward the atlas face (alias: -refacePro)
  -all           all three methods
  -dilate <mm>   dilation of the brain+neck mask before the face warp is masked, in millimetres
                 (default ${defaults.dilateMm}; micapipe counted voxels of its 0.8 mm template)
  -ears          deface: remove the ears too (the atlas ears ROI, less the brain guard)
  -robust        slower, more thorough registration
  -nocleanup     keep the work folder (transforms, native masks, warps)
  -threads <n>   threads of the engine's numeric pools (ITK, BLAS; as micanon --nthreads);
                 ANTs registrations always run on one thread, so the same input gives the
                 same bytes at any -threads (default: all cores; micapipe: 6)
  -T1 <path>     T1w to register instead of the session's run-1 T1w
  -h, -help      this help

Fixed from micapipe: images under anat/ are found by BIDS name, so masks, segmentations and
derivatives are no longer processed as anatomical images; quantitative maps stay float
(micapipe wrote integers); each output is checked for unchanged brain voxels before it is kept.`;

const valueFlags = new Set(['-sub', '-ses', '-out', '-bids', '-dilate', '-threads', '-T1']);
const methodFlags: Record<string, Array<'deface' | 'reface' | 'warpface'>> = {
  '-deface': ['deface'],
  '-reface': ['reface'],
  '-warpface': ['warpface'],
  '-refacePro': ['warpface'],
  '-all': ['deface', 'reface', 'warpface'],
};

export type MicapipeOutcome = { kind: 'run'; config: RunConfig } | { kind: 'help' };

export function parseMicapipeArgs(argv: readonly string[]): MicapipeOutcome {
  const values = new Map<string, string>();
  const methods = new Set<'deface' | 'reface' | 'warpface'>();
  let robust = false;
  let removeEars = false;
  let cleanup = true;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '-h' || flag === '-help' || flag === '--help') return { kind: 'help' };
    if (valueFlags.has(flag)) {
      const value = argv[i + 1];
      if (value === undefined || (value.startsWith('-') && !/^-?\d/.test(value))) {
        throw new MicanonError('USAGE', `${flag} needs a value`);
      }
      values.set(flag, value);
      i++;
    } else if (flag in methodFlags) {
      for (const m of methodFlags[flag]!) methods.add(m);
    } else if (flag === '-robust') {
      robust = true;
    } else if (flag === '-ears') {
      removeEars = true;
    } else if (flag === '-nocleanup') {
      cleanup = false;
    } else {
      throw new MicanonError('USAGE', `unknown option "${flag}" (micapipe_anonymize -h lists them)`);
    }
  }
  const missing = ['-sub', '-out', '-bids'].filter((f) => !values.has(f));
  if (missing.length) throw new MicanonError('USAGE', `missing ${missing.join(', ')}`);
  if (methods.size === 0) throw new MicanonError('USAGE', 'the method is missing: add -deface, -reface, -warpface or -all');
  const number = (flag: string) => (values.has(flag) ? Number(values.get(flag)) : undefined);
  const parsed = runConfigSchema.safeParse({
    bidsDir: values.get('-bids'),
    outputDir: values.get('-out'),
    analysisLevel: 'participant',
    participantLabels: [values.get('-sub')],
    sessionLabels: values.has('-ses') ? [values.get('-ses')] : null,
    methods: (['deface', 'reface', 'warpface'] as const).filter((m) => methods.has(m)),
    dilate: number('-dilate'),
    robust,
    removeEars,
    nthreads: number('-threads'),
    cleanup,
    t1w: values.get('-T1') ?? null,
    outputLayout: 'micapipe',
    // micapipe never validated; a broken dataset still fails loudly on its own files.
    skipBidsValidation: true,
  });
  if (!parsed.success) throw usageError(parsed.error);
  return { kind: 'run', config: parsed.data };
}
