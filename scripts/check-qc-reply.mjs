#!/usr/bin/env node
// Hold a qc_outputs reply (JSON on stdin) to the one QC record schema, qcRepliesSchema in
// src/engine/qc-record.ts (compiled to dist/ by `npm run build`): the Python tests check the
// records the engine writes against the very schema the pipeline parses them with.
// Exit 0 when it parses; otherwise 1 and the schema's issues on stderr.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { qcRepliesSchema } = await import(path.join(root, 'dist', 'engine', 'qc-record.js'));
const parsed = qcRepliesSchema.safeParse(JSON.parse(readFileSync(0, 'utf8')));
if (!parsed.success) {
  for (const issue of parsed.error.issues) process.stderr.write(`${issue.path.join('.')}: ${issue.message}\n`);
  process.exit(1);
}
