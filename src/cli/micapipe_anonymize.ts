/** `micapipe_anonymize` entry point: micapipe's flags, micanon's engine. */
import { runDataset } from '../pipeline/dataset.js';
import { micapipeHelp, parseMicapipeArgs } from './micapipe.js';
import { runCommand } from './run.js';

await runCommand(async () => {
  const outcome = parseMicapipeArgs(process.argv.slice(2));
  if (outcome.kind === 'help') {
    process.stdout.write(`${micapipeHelp}\n`);
    return 0;
  }
  return runDataset(outcome.config);
});
