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
      image_to_atlas: matrix4.nullable().optional(),
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
