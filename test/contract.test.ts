/**
 * The bridge contract (src/engine/contract.ts) and the JSON Schema Python validates against
 * (python/micanon/contract.schema.json) are one: the committed file is the contract's export.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { contract, contractJsonSchema } from '../src/engine/contract.js';

const file = path.resolve(__dirname, '..', 'python', 'micanon', 'contract.schema.json');

describe('the bridge contract', () => {
  it('is exported to python/micanon/contract.schema.json (else run `npm run contract`)', () => {
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(contractJsonSchema());
  });

  it('requires every field the engine reads: no default is left to Python', () => {
    const schema = contractJsonSchema().calls as Record<string, { required?: string[]; properties: Record<string, unknown> }>;
    expect(Object.keys(schema).sort()).toEqual(Object.keys(contract).sort());
    const session = schema.anonymize_session!;
    expect([...(session.required ?? [])].sort()).toEqual(Object.keys(session.properties).sort());
    expect(session.required).toEqual(expect.arrayContaining(['dilate', 'seed', 'robust', 'keep_work', 'reference_is_t1w']));
  });

  it('refuses a request that breaks it before anything is sent', () => {
    const parsed = contract.anonymize_session.request.safeParse({ reference: '/r.nii.gz', methods: ['blur'] });
    expect(parsed.success).toBe(false);
  });
});
