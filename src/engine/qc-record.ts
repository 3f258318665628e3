/**
 * The QC record: what the engine's QC (python/micanon/qc/) returns for every output, and what
 * `<qc_dir>/logs/qc/` holds. One schema for the bridge replies (`qc_outputs`, `qc_image`) and for
 * the records read back from disk (src/qc/records.ts): the engine owns the verdict (status, reason,
 * hard), the pipeline only applies the commit policy to it.
 *
 * Paths inside a record: `input` is relative to bids_dir, `output` relative to output_dir, and
 * every render relative to qc_dir (the folder holding `sub-XX.html`), normally
 * `sub-XX/figures/<name>.png`.
 */
import path from 'node:path';
import { z } from 'zod';
import { LABEL_RE } from '../bids/selection.js';
import { methodSchema, warpSummarySchema } from './schemas.js';

/** BIDS labels are alphanumeric; they also become parts of file names, so hold them to it. */
export const bidsLabel = z.string().regex(LABEL_RE, 'a BIDS label (letters and digits only)');

/**
 * A path relative to a folder the report knows (POSIX separators), never escaping it:
 * the report turns these into links, and a link must stay inside the output folder.
 */
export const relativePath = z
  .string()
  .min(1)
  .refine((p) => !path.posix.isAbsolute(p) && !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(p) && !p.includes('\\'), 'a relative POSIX path')
  .refine((p) => !path.posix.normalize(p).startsWith('../') && path.posix.normalize(p) !== '..', 'a path inside its folder');

/**
 * How a record names the session's reference: relative to bids_dir like every input, or its
 * absolute path when it lies outside the dataset (a --t1w from elsewhere). Never a link.
 */
export const referenceName = z.union([relativePath, z.string().refine((p) => path.posix.isAbsolute(p), 'an absolute POSIX path')]);

export const qcStatusSchema = z.enum(['PASS', 'FAILED']);
export type QcStatus = z.infer<typeof qcStatusSchema>;

/**
 * The record's names of the surface-render views, in the order reports show them (any may be
 * missing from a record). The one definition: python/micanon/qc/seeing.py REPORT_VIEWS maps the
 * renderer's views onto exactly these names (src/engine/qc-record.test.ts checks it).
 */
export const RENDER_VIEWS = ['front', 'left34', 'right34', 'left', 'right', 'low', 'high', 'left_low', 'right_low'] as const;
/** Slice figures, in the order reports show them. */
export const SLICE_FIGURES = ['input_sagittal', 'output_sagittal', 'masks_overlay', 'registration_overlay'] as const;

const viewMap = <T extends z.ZodType>(value: T) => z.record(z.string().min(1), value);

const brainCheck = z.looseObject({
  value: z.number().int().nonnegative(),
  guard_voxels: z.number().int().nonnegative(),
  pass: z.boolean(),
  /** Set when the fit put the face ROI inside the subject's own brain: the check fails on it. */
  face_roi_in_brain: z.string().optional(),
  /** `micanon qc` of another tool's output: why the count may read oddly (another grid, another stored type). */
  detail: z.string().optional(),
});

const headerCheck = z.looseObject({
  pass: z.boolean(),
  // Differences are sentences from the engine ("sform differs"); objects are accepted and shown as JSON.
  differences: z.array(z.union([z.string(), z.record(z.string(), z.unknown())])),
});

const faceCheck = z.looseObject({
  pass: z.boolean(),
  rule: z.string(),
  detail: z.string(),
  /** "inconclusive" when the input shows no face the detectors trust: passes, but says so. */
  verdict: z.enum(['pass', 'fail', 'inconclusive']).optional(),
  /** What decided: the renders, the landmarks found in the volume (deface), or none. */
  evidence: z.string().optional(),
  /**
   * Inconclusive on this image, failed because the session's reference (this name, referenceName)
   * failed the same method's face check: they share masks and warp.
   */
  inherited_from: referenceName.optional(),
});

const identityCheck = z.looseObject({
  distance: z.number().nonnegative().nullable(),
  threshold: z.number().nonnegative(),
  model: z.string(),
  per_view: viewMap(z.number().nonnegative().nullable()),
  /** The input with its face ROI set to background, compared the same way: a yardstick, not a verdict. */
  face_removed: z.looseObject({ distance: z.number().nonnegative(), per_view: viewMap(z.number().nonnegative()) }).optional(),
  /** Views with an input face where removing it moves the descriptor no further than the threshold: recorded, not deciding. */
  views_blind: z.array(z.string()).optional(),
});

const checksSchema = z.looseObject({
  brain_voxels_changed: brainCheck,
  header: headerCheck,
  face: faceCheck,
  /** Per view: the face detectors that fired (e.g. ["hog", "cnn"]); an empty list means none. */
  face_views_input: viewMap(z.array(z.string())),
  face_views_output: viewMap(z.array(z.string())),
  /** null for deface (nothing left to compare). */
  identity: identityCheck.nullable(),
  registration: z.looseObject({
    metric: z.string(),
    value: z.number().nullable(),
    flag: z.enum(['ok', 'scanner', 'poor']),
    pass: z.boolean(),
    /** The fit check of the session's reference (python/micanon/anonymize/fit_check.py). */
    check: z
      .looseObject({
        flag: z.string(),
        hard: z.boolean(),
        witnesses: z.record(z.string(), z.enum(['ok', 'poor', 'abstain'])),
        evidence: z.record(z.string(), z.union([z.number(), z.string(), z.null()])),
        reason: z.string(),
      })
      .optional(),
  }),
  /** warpface: the engine's face warp, reach (mm) and smallest Jacobian (recorded, not a check of its own). */
  warp: warpSummarySchema.optional(),
});

const rendersSchema = z.looseObject({
  input: viewMap(relativePath),
  output: viewMap(relativePath),
  slices: viewMap(relativePath),
  /** reface, warpface: the atlas face the output is compared with, rendered by the input's camera (docs/identity.md). */
  atlas: viewMap(relativePath).optional(),
  /** "mip": the slice figures are maximum intensity projections (an input with no head surface, e.g. a TOF angiogram). */
  projection: z.enum(['mip']).optional(),
});

export const qcRecordSchema = z.looseObject({
  subject: bidsLabel,
  session: bidsLabel.nullable(),
  /** Relative to bids_dir. */
  input: relativePath,
  /** Relative to output_dir; null when the output was not written (FAILED). */
  output: relativePath.nullable(),
  method: methodSchema,
  status: qcStatusSchema,
  /** Optional one-line reason for a FAILED status (shown in the reports when present). */
  reason: z.string().nullable().optional(),
  /**
   * A failure --qc-fail-ok may not override: the brain or header proof failed, or the fit put the
   * face ROI inside the brain. False when PASS; absent in records written before it existed.
   */
  hard: z.boolean().optional(),
  checks: checksSchema,
  renders: rendersSchema,
  /** The session's reference image (referenceName) and why it was chosen. */
  reference: z.object({ input: referenceName, reason: z.string() }).optional(),
});
export type QcRecord = z.infer<typeof qcRecordSchema>;
export type QcChecks = QcRecord['checks'];

/** The reply of `qc_outputs`: one record per item in request order, every one with its `hard` flag. */
export const qcRepliesSchema = z.object({
  records: z.array(qcRecordSchema.extend({ hard: z.boolean() })),
  timings: z.record(z.string(), z.unknown()).optional(),
});

/** A check `micanon qc` could not run on one image alone (no --original): never a pass. */
const notCheckedSchema = z.looseObject({ verdict: z.literal('not_checked'), pass: z.null(), detail: z.string() });
export type NotChecked = z.infer<typeof notCheckedSchema>;

/**
 * The reply of `qc_image` (`micanon qc`): the QC record of one image. With an original it is the
 * pipeline's record (qcRecordSchema) with a `standalone` block; without one, `input` is null and
 * the checks one image cannot answer are `not_checked`. `output` is the image's file name either way.
 */
export const qcImageReplySchema = z.object({
  record: qcRecordSchema.extend({
    // Names of files the user gave (writeReport holds an original's record to qcRecordSchema).
    input: z.string().nullable(),
    output: z.string(),
    checks: checksSchema.extend({
      brain_voxels_changed: z.union([notCheckedSchema, brainCheck]),
      header: z.union([notCheckedSchema, headerCheck]),
      face: faceCheck.extend({
        pass: z.boolean().nullable(),
        verdict: z.enum(['pass', 'fail', 'inconclusive', 'not_checked']),
      }),
      identity: z.union([z.null(), notCheckedSchema, identityCheck]),
      // An image alone has no reference fit check: null.
      registration: checksSchema.shape.registration.extend({ check: checksSchema.shape.registration.shape.check.nullable() }),
    }),
    standalone: z.looseObject({
      image: z.string(),
      original: z.string().nullable(),
      atlas: z.string(),
      /** The file registered to the atlas: the original, or the image when there is none. */
      registered: z.string(),
    }),
  }),
  log: z.array(z.string()).default([]),
});
export type QcImageRecord = z.infer<typeof qcImageReplySchema>['record'];
