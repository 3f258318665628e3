/**
 * The run configuration: one typed value for a run, whichever command line produced it (the
 * BIDS-App parser or the micapipe-compatible one), validated with zod after commander has split
 * the words. Every layer may import it (the pipeline, the commands, the CLI); every default is
 * set here once (`defaults`), and the resolved configuration is written into the run record.
 */
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { BidsFilters } from './bids/filters.js';
import type { OutputLayout } from './bids/outputs.js';
import { isLabelLike, stripLabelPrefix, type LabelPrefix } from './bids/selection.js';
import { methodSchema, type Method } from './engine/schemas.js';
import { logFormats, type LogFormat, type LogLevel } from './log.js';
import { defaultAtlasDir } from './paths.js';

export const outputLayouts = ['derivatives', 'raw', 'micapipe'] as const satisfies readonly OutputLayout[];
export const logLevels = ['error', 'warn', 'info', 'verbose', 'debug'] as const;
export const methods = methodSchema.options;

/** Every default of a run, once; the help texts quote them from here. */
export const defaults = {
  methods: ['deface'] as Method[],
  /** warpface: millimetres the brain+neck mask grows before the warp is masked (micapipe's 6). */
  dilateMm: 6,
  /** Seed of every random draw of the engine (ANTs sampling, starting rotations). */
  seed: 1,
  outputLayout: 'derivatives' as OutputLayout,
  logLevel: 'info' as LogLevel,
  logFormat: 'text' as LogFormat,
  /** Threads of the engine's numeric pools: every core. */
  nthreads: (): number => availableParallelism(),
  atlas: (): string => defaultAtlasDir(),
};

/** A label with or without its `sub-`/`ses-` prefix (the rule of bids/selection.ts). */
export function bidsLabel(prefix: LabelPrefix) {
  return z
    .string()
    .transform((s) => stripLabelPrefix(s, prefix))
    .refine((s) => isLabelLike(s, prefix), `a ${prefix} label is letters and digits only (with or without "${prefix}-")`);
}

/** True when `child` is `parent` or a folder below it (both absolute). */
function inside(child: string, parent: string): boolean {
  return !path.relative(parent, child).startsWith('..');
}

/**
 * Where QC goes (records logs/qc/*.json, sub-XX/figures/, sub-XX.html, group_qc.html,
 * logs/group_qc.tsv) when --qc-dir is not given: output_dir itself, except for the raw layout,
 * whose output_dir is the shareable copy: the figures show faces, so they go to the sibling
 * `<output_dir>-qc`. The participant and group levels both derive it here, so they agree.
 */
export function qcDirDefault(config: { outputDir: string; outputLayout: OutputLayout }): string {
  return config.outputLayout === 'raw' ? `${config.outputDir}-qc` : config.outputDir;
}

export const runConfigSchema = z
  .object({
    bidsDir: z.string().min(1).transform((p) => path.resolve(p)),
    outputDir: z.string().min(1).transform((p) => path.resolve(p)),
    analysisLevel: z.enum(['participant', 'group']),
    participantLabels: z.array(bidsLabel('sub')).nullable().default(null),
    excludeParticipantLabels: z.array(bidsLabel('sub')).default([]),
    sessionLabels: z.array(bidsLabel('ses')).nullable().default(null),
    excludeSessionLabels: z.array(bidsLabel('ses')).default([]),
    /** --bids-filter-file, parsed (bids/filters.ts checks it); null: no filter. */
    bidsFilters: z.custom<BidsFilters>((v) => typeof v === 'object' && v !== null && 'kinds' in v).nullable().default(null),
    methods: z.array(methodSchema).min(1).default(defaults.methods),
    dilate: z.number().min(0).max(50).default(defaults.dilateMm),
    seed: z.number().int().min(0).default(defaults.seed),
    robust: z.boolean().default(false),
    /** deface: zero the atlas ears ROI too (micapipe: -ears). */
    removeEars: z.boolean().default(false),
    nthreads: z.number().int().min(1).default(defaults.nthreads),
    workDir: z.string().nullable().default(null).transform((p) => (p ? path.resolve(p) : null)),
    cleanup: z.boolean().default(true),
    t1w: z.string().nullable().default(null).transform((p) => (p ? path.resolve(p) : null)),
    atlas: z.string().default(defaults.atlas).transform((p) => path.resolve(p)),
    outputLayout: z.enum(outputLayouts).default(defaults.outputLayout),
    skipBidsValidation: z.boolean().default(false),
    logLevel: z.enum(logLevels).default(defaults.logLevel),
    logFormat: z.enum(logFormats).default(defaults.logFormat),
    keepFields: z.array(z.string()).default([]),
    dropFields: z.array(z.string()).default([]),
    qcFailOk: z.boolean().default(false),
    /** Null: the layout's default (qcDirDefault); the parsed config always holds a folder. */
    qcDir: z.string().min(1).nullable().default(null).transform((p) => (p ? path.resolve(p) : null)),
  })
  .superRefine((config, ctx) => {
    const unique = new Set(config.methods);
    if (unique.size !== config.methods.length) {
      ctx.addIssue({ code: 'custom', path: ['methods'], message: 'a method is named twice' });
    }
    if (config.outputLayout === 'raw' && config.methods.length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['outputLayout'],
        message: '--output-layout raw replaces each image by one method\'s result: choose exactly one --method',
      });
    }
    const writesIntoInput = (dir: string) => inside(dir, config.bidsDir) && !inside(dir, path.join(config.bidsDir, 'derivatives'));
    if (writesIntoInput(config.outputDir)) {
      ctx.addIssue({
        code: 'custom',
        path: ['outputDir'],
        message: 'output_dir may not be inside bids_dir (except under its derivatives/): the input is never written to',
      });
    }
    const qcDir = config.qcDir ?? qcDirDefault(config);
    if (writesIntoInput(qcDir)) {
      ctx.addIssue({
        code: 'custom',
        path: ['qcDir'],
        message: '--qc-dir may not be inside bids_dir (except under its derivatives/): the input is never written to',
      });
    }
    if (config.outputLayout === 'raw' && inside(qcDir, config.outputDir)) {
      ctx.addIssue({
        code: 'custom',
        path: ['qcDir'],
        message: '--qc-dir may not be inside output_dir with --output-layout raw: output_dir is the shareable copy, and the QC figures show faces',
      });
    }
  })
  .transform(({ qcDir, ...config }) => ({ ...config, qcDir: qcDir ?? qcDirDefault(config) }));

export type RunConfig = z.output<typeof runConfigSchema>;
export type RunConfigInput = z.input<typeof runConfigSchema>;
