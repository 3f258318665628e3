/**
 * The bridge's contract: for every call of python/micanon/api.py, the zod schema of its request
 * and of its reply, and a typed function that makes the call. The request is parsed here before
 * it is sent (so it reaches Python whole: no defaults there), the reply when it comes back.
 * `contractJsonSchema()` exports the requests as JSON Schema (zod 4's toJSONSchema) into
 * python/micanon/contract.schema.json, which api.py validates every request against
 * (scripts/export-contract.mjs writes it; test/contract.test.ts keeps it in step).
 */
import { z } from 'zod';
import type { Engine } from './bridge.js';
import {
  atlasInfoSchema,
  attackReplySchema,
  imageInfoSchema,
  inputChecksSchema,
  methodSchema,
  sessionResultSchema,
  versionsSchema,
  warpSummarySchema,
} from './schemas.js';
import { qcImageReplySchema, qcRepliesSchema } from './qc-record.js';

const path = z.string().min(1);
const label = z.string().regex(/^[A-Za-z0-9]+$/);
const matrix4 = z.array(z.array(z.number()).length(4)).length(4);

export const contract = {
  handshake: {
    request: z.object({}),
    reply: z.object({ micanon: z.string() }),
  },
  versions: {
    request: z.object({}),
    reply: versionsSchema,
  },
  image_info: {
    request: z.object({ path }),
    reply: imageInfoSchema,
  },
  atlas_info: {
    request: z.object({ path }),
    reply: atlasInfoSchema,
  },
  check_inputs: {
    request: z.object({ paths: z.array(path) }),
    reply: inputChecksSchema,
  },
  make_example: {
    request: z.object({ root: path, atlas: path }),
    reply: z.object({ root: z.string() }).loose(),
  },
  anonymize_session: {
    request: z.object({
      reference: path,
      others: z.array(z.object({ path, register_via: path.nullable() })),
      methods: z.array(methodSchema).min(1),
      atlas: path,
      /** {input path: {method: output path in the work folder}}. */
      outputs: z.record(z.string(), z.record(z.string(), path)),
      /** Millimetres; the run configuration's default (src/config.ts) is the only one. */
      dilate: z.number().min(0),
      robust: z.boolean(),
      /** deface: zero the atlas ears ROI too (--remove-ears). */
      remove_ears: z.boolean(),
      work_dir: path,
      keep_work: z.boolean(),
      seed: z.number().int().min(0),
      reference_is_t1w: z.boolean(),
    }),
    reply: sessionResultSchema,
  },
  qc_outputs: {
    request: z.object({
      output_dir: path,
      bids_dir: path,
      subject: label,
      session: label.nullable(),
      figures_dir: path,
      /** Where the figure files are written instead (named as in figures_dir, which the records cite): the caller moves them into figures_dir once the records are back, so a run killed during QC leaves no face renders in the QC folder. */
      staging_dir: path.optional(),
      /** The session's reference (inside bids_dir, or a --t1w from elsewhere) and why it was chosen: an image whose face check is inconclusive inherits its failure. */
      reference: z.object({ input: path, reason: z.string() }).nullable(),
      items: z.array(
        z.object({
          input: path,
          output: path,
          output_name: path,
          method: methodSchema,
          brain_voxels_changed: z.number().int(),
          guard_voxels: z.number().int(),
          brain_guard: path.nullable(),
          face_roi: path.nullable(),
          /** The atlas head on the input's grid (reface, warpface): its renders are the atlas person in this camera (null: not compared). */
          atlas_head: path.nullable().optional(),
          /** warpface: the face warp's reach (mm) and smallest Jacobian determinant, recorded with the checks. */
          warp: warpSummarySchema.nullable().optional(),
          head_affine: matrix4.nullable(),
          registration: z.object({ flag: z.string(), metric: z.string().optional(), value: z.number().nullable().optional() }).loose(),
        }),
      ),
    }),
    reply: qcRepliesSchema,
  },
  qc_image: {
    request: z.object({
      image: path,
      original: path.nullable(),
      method: methodSchema,
      atlas: path,
      output_dir: path,
      figures_dir: path,
      /** Where the figure files are drawn (named as in figures_dir), for the caller to move in once the record is written. */
      staging_dir: path.optional(),
      subject: label,
      session: label.nullable(),
      seed: z.number().int().min(0),
      reference_is_t1w: z.boolean(),
    }),
    reply: qcImageReplySchema,
  },
  reidentify: {
    request: z.object({
      /** The folder the records' render paths are relative to. */
      qc_dir: path,
      /** The atlas folder: its template is the distractor face (null: none). */
      atlas: path.nullable(),
      records: z.array(
        z.object({
          subject: label,
          session: label.nullable(),
          input: z.string(),
          method: methodSchema,
          renders: z.object({ input: z.record(z.string(), z.string()), output: z.record(z.string(), z.string()) }),
        }),
      ),
    }),
    reply: attackReplySchema,
  },
} as const;

export type CallName = keyof typeof contract;
export type CallRequest<N extends CallName> = z.input<(typeof contract)[N]['request']>;
export type CallReply<N extends CallName> = z.output<(typeof contract)[N]['reply']>;

/** A typed engine call: the request checked against the contract, the reply parsed by it. */
function bridgeCall<N extends CallName>(name: N) {
  return async (engine: Engine, request: CallRequest<N>): Promise<CallReply<N>> => {
    const { request: requestSchema, reply } = contract[name];
    const checked = requestSchema.safeParse(request);
    if (!checked.success) throw new Error(`engine.${name}: request breaks the contract: ${z.prettifyError(checked.error)}`);
    return engine.call(name, checked.data, reply as unknown as z.ZodType<CallReply<N>>);
  };
}

export const handshake = bridgeCall('handshake');
export const engineVersions = bridgeCall('versions');
export const imageInfo = bridgeCall('image_info');
export const atlasInfo = bridgeCall('atlas_info');
export const checkInputs = bridgeCall('check_inputs');
export const makeExample = bridgeCall('make_example');
export const anonymizeSessionCall = bridgeCall('anonymize_session');
export const qcOutputs = bridgeCall('qc_outputs');
export const qcImage = bridgeCall('qc_image');
export const reidentifyCall = bridgeCall('reidentify');

/** The requests as JSON Schema (draft 2020-12), what Python validates against. */
export function contractJsonSchema(): Record<string, unknown> {
  const calls = Object.fromEntries(
    Object.entries(contract).map(([name, { request }]) => [name, z.toJSONSchema(request, { io: 'output' })]),
  );
  return {
    $comment: 'Generated from src/engine/contract.ts by scripts/export-contract.mjs: do not edit.',
    calls,
  };
}
