/**
 * Every input image of a participant is checked before any work is done for it (the engine's
 * catalogue, python/micanon/inputs.py): one refused image refuses its participant, with one line
 * per problem and exit 65 (66 for a missing file), and nothing is created for that participant;
 * the other participants go on. Warnings go to the log and the session's run record.
 */
import path from 'node:path';
import type { SessionPlan } from '../bids/discover.js';
import type { Engine } from '../engine/bridge.js';
import { checkInputs } from '../engine/contract.js';
import type { InputIssue } from '../engine/schemas.js';
import { ExitCode } from '../errors.js';

export interface InputWarning extends InputIssue {
  /** Absolute path of the image. */
  input: string;
}

export interface ParticipantInputs {
  subject: string;
  /** One line each; empty when the participant may go on. */
  errors: string[];
  /** 66 when an image is missing, else 65; null when nothing was refused. */
  exitCode: number | null;
  warnings: InputWarning[];
}

/** The images a participant's sessions read: every planned image, and --t1w when given. */
function imagesOf(plans: readonly SessionPlan[], t1w: string | null): string[] {
  return [...new Set([...(t1w ? [t1w] : []), ...plans.flatMap((plan) => plan.images.map((image) => image.path))])];
}

/** Check every participant's images in one engine call; the verdicts in participant order. */
export async function checkParticipantInputs(engine: Engine, plans: readonly SessionPlan[], t1w: string | null): Promise<ParticipantInputs[]> {
  const subjects = [...new Set(plans.map((plan) => plan.subject))];
  const pathsOf = new Map(subjects.map((subject) => [subject, imagesOf(plans.filter((p) => p.subject === subject), t1w)]));
  const reply = await checkInputs(engine, { paths: [...new Set([...pathsOf.values()].flat())] });
  const verdictOf = new Map(reply.images.map((image) => [path.resolve(image.path), image]));
  return subjects.map((subject) => {
    const verdicts = pathsOf.get(subject)!.map((file) => verdictOf.get(file)).filter((v) => v !== undefined);
    const errors = verdicts.flatMap((v) => v.errors);
    const missing = errors.some((e) => e.code === 'INPUT_MISSING');
    return {
      subject,
      errors: errors.map((e) => e.message),
      exitCode: errors.length === 0 ? null : missing ? ExitCode.inputMissing : ExitCode.badData,
      warnings: verdicts.flatMap((v) => v.warnings.map((w) => ({ ...w, input: path.resolve(v.path) }))),
    };
  });
}
