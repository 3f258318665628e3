/**
 * zod schemas of every reply that crosses the bridge (python/micanon/api.py builds them); the QC
 * record and the replies carrying it are in qc-record.ts.
 */
import { z } from 'zod';

export const engineErrorSchema = z.object({
  kind: z.enum(['input_missing', 'cannot_write', 'bad_input', 'internal']),
  type: z.string(),
  message: z.string(),
  traceback: z.string(),
});
export type EngineErrorReply = z.infer<typeof engineErrorSchema>;

export const replySchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), result: z.unknown() }),
  z.object({ ok: z.literal(false), error: engineErrorSchema }),
]);

export const versionsSchema = z.object({
  micanon: z.string(),
  python: z.string(),
  executable: z.string(),
  packages: z.record(z.string(), z.string().nullable()),
});
export type EngineVersions = z.infer<typeof versionsSchema>;

const matrix4 = z.array(z.array(z.number()).length(4)).length(4);

export const imageInfoSchema = z.object({
  path: z.string(),
  shape: z.array(z.number().int()),
  zooms: z.array(z.number()),
  dtype: z.string(),
  affine: matrix4,
  qform_code: z.number().int(),
  sform_code: z.number().int(),
  scl_slope: z.number().nullable(),
  scl_inter: z.number().nullable(),
  orientation: z.string(),
});
export type ImageInfo = z.infer<typeof imageInfoSchema>;

export const atlasInfoSchema = z.object({
  path: z.string(),
  kind: z.string(),
  roles: z.record(z.string(), z.string().nullable()),
});
export type AtlasInfo = z.infer<typeof atlasInfoSchema>;

export const methodSchema = z.enum(['deface', 'reface', 'warpface']);
export type Method = z.infer<typeof methodSchema>;

const registrationSchema = z
  .object({
    metric: z.string().optional(),
    value: z.number().nullable().optional(),
    seconds: z.number().optional(),
    flag: z.string().optional(),
  })
  .loose();

/** The face warp of a warpface output: how far it moved the face (mm) and its smallest Jacobian determinant (> 0: no fold). */
export const warpSummarySchema = z.object({ max_mm: z.number().nonnegative(), min_jacobian: z.number() });

export const imageRecordSchema = z.union([
  z
    .object({
      input: z.string(),
      method: methodSchema,
      output: z.string(),
      brain_voxels_changed: z.number().int(),
      guard_voxels: z.number().int(),
      face_roi_voxels: z.number().int().optional(),
      registered: z.boolean(),
      registration: registrationSchema.optional(),
      dtype: z.string(),
      seconds: z.number(),
      /** Native masks written to the work folder for QC, and scanner -> atlas (RAS mm). */
      brain_guard_mask: z.string().nullable().optional(),
      face_roi_mask: z.string().nullable().optional(),
      /** reface, warpface: the atlas head on the image's grid (the face they aim at, seen by QC in the image's camera). */
      atlas_head_image: z.string().nullable().optional(),
      image_to_atlas: matrix4.nullable().optional(),
      warp: warpSummarySchema.optional(),
    })
    .loose(),
  z.object({ input: z.string(), method: methodSchema.optional(), error: z.string() }).loose(),
]);
export type ImageRecord = z.infer<typeof imageRecordSchema>;

export const sessionResultSchema = z
  .object({
    reference: z.object({ path: z.string(), registration: registrationSchema }).loose(),
    images: z.array(imageRecordSchema),
    log: z.array(z.string()).default([]),
    /** Seconds per stage (read, t1w_to_atlas, masks, face_warp, <image>_to_t1w, each method, session). */
    timings: z.record(z.string(), z.number()).default({}),
  })
  .loose();
export type SessionResult = z.infer<typeof sessionResultSchema>;

/** One problem of an input image (python/micanon/inputs.py's catalogue): a stable code, one line naming the file. */
export const inputIssueSchema = z.object({ code: z.string(), message: z.string() });
export type InputIssue = z.infer<typeof inputIssueSchema>;

/**
 * The reply of `check_inputs` ({"paths": [...]}): one verdict per path, in request order. `ok`
 * false when any error; warnings never refuse an image. INPUT_MISSING is the error of a missing
 * file (exit 66); any other error is bad data (exit 65).
 */
export const inputChecksSchema = z.object({
  images: z.array(
    z.looseObject({
      path: z.string(),
      ok: z.boolean(),
      errors: z.array(inputIssueSchema),
      warnings: z.array(inputIssueSchema),
      facts: z.record(z.string(), z.unknown()).default({}),
    }),
  ),
});
export type InputChecks = z.infer<typeof inputChecksSchema>;

/** cross_view: a probe's view meets the gallery's other views (every kind); same_view: the same view (outputs only). */
const attackProtocolSchema = z.enum(['cross_view', 'same_view']);
/** What a probe is: an unmodified input, or one method's output. */
const attackProbeKindSchema = z.enum(['input', 'deface', 'reface', 'warpface']);

/** One row of the re-identification attack's rank-1 table (python/micanon/attack.py, Rate.to_json). */
export const attackRateSchema = z.object({
  protocol: attackProtocolSchema,
  kind: attackProbeKindSchema,
  probes: z.number().int().nonnegative(),
  hits: z.number().int().nonnegative(),
  /** Probes with no face in any view the attack uses: misses, counted apart. */
  no_face: z.number().int().nonnegative(),
  /** Probes whose nearest identity was the atlas face. */
  to_atlas: z.number().int().nonnegative(),
  gallery_identities: z.number().int().nonnegative(),
  rate: z.number().min(0).max(1).nullable(),
  ci_low: z.number().min(0).max(1).nullable(),
  ci_high: z.number().min(0).max(1).nullable(),
  /** 1 / gallery identities: what guessing scores. */
  chance: z.number().min(0).max(1).nullable(),
});
export type AttackRate = z.infer<typeof attackRateSchema>;

/** One probe's rank-1 answer (python/micanon/attack.py, ProbeResult.to_json). */
export const attackProbeSchema = z.object({
  protocol: attackProtocolSchema,
  kind: attackProbeKindSchema,
  subject: z.string(),
  session: z.string().nullable(),
  input: z.string(),
  views: z.number().int().nonnegative(),
  face_views: z.number().int().nonnegative(),
  nearest: z.string().nullable(),
  nearest_score: z.number().nullable(),
  own_score: z.number().nullable(),
  hit: z.boolean(),
  /** Every gallery identity's score (lower is nearer). */
  scores: z.record(z.string(), z.number()),
});
export type AttackProbe = z.infer<typeof attackProbeSchema>;

/** The reply of `reidentify`: the group level's re-identification attack (docs/identity.md). */
export const attackReplySchema = z.object({
  table: z.array(attackRateSchema),
  probes: z.array(attackProbeSchema),
  gallery: z.object({
    identities: z.array(z.string()),
    subjects: z.array(z.string()),
    images: z.number().int().nonnegative(),
    faces: z.number().int().nonnegative(),
    distractors: z.array(z.string()),
  }),
  /** Whether the attack re-identified most inputs (else it proves nothing on this dataset). */
  conclusive: z.boolean(),
  verdict: z.string(),
  /** The record views the attack used (profiles are left out). */
  views: z.array(z.string()),
});
export type AttackReply = z.infer<typeof attackReplySchema>;
