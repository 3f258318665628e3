// Shared by the bin launchers: the CLI is compiled to dist/ by `npm run setup` (or `npm run build`).
import { existsSync } from 'node:fs';

export async function launch(entryName) {
  const entry = new URL(`../dist/cli/${entryName}.js`, import.meta.url);
  if (!existsSync(entry)) {
    process.stderr.write('micanon is not built yet: run `npm run setup` in the micanon folder\n');
    process.exit(1);
  }
  await import(entry.href);
}
