#!/usr/bin/env node
// Write python/micanon/contract.schema.json from src/engine/contract.ts (compiled to dist/ by
// `npm run build`): the JSON Schema of every engine request, which python/micanon/api.py checks.
// test/contract.test.ts fails when the committed file and the contract differ.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { contractJsonSchema } = await import(path.join(root, 'dist', 'engine', 'contract.js'));
const target = path.join(root, 'python', 'micanon', 'contract.schema.json');
writeFileSync(target, `${JSON.stringify(contractJsonSchema(), null, 2)}\n`);
console.log(`wrote ${path.relative(root, target)}`);
