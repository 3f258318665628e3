/**
 * `.bidsignore` rules (gitignore syntax, as the BIDS validator reads them) plus the folders
 * a raw-data walk never enters: derivatives/, sourcedata/, code/ and hidden entries.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** Top-level folders that hold no raw participant data. */
export const NON_RAW_FOLDERS: ReadonlySet<string> = new Set(['derivatives', 'sourcedata', 'code']);

/** Translate one gitignore-style glob into a RegExp over dataset-relative paths with a leading '/'. */
function globToRegExp(pattern: string): RegExp {
  let glob = pattern;
  const directoryOnly = glob.endsWith('/');
  if (directoryOnly) glob = glob.slice(0, -1);
  // A pattern with a slash (other than at the end) is anchored at the root, else it matches at any depth.
  const anchored = glob.includes('/');
  if (glob.startsWith('/')) glob = glob.slice(1);
  let body = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i] as string;
    if (ch === '*') {
      if (glob[i + 1] === '*') {
        // `**/` matches zero or more folders, a trailing `**` everything below.
        body += glob[i + 2] === '/' ? '(?:.*/)?' : '.*';
        i += glob[i + 2] === '/' ? 2 : 1;
      } else {
        body += '[^/]*';
      }
    } else if (ch === '?') {
      body += '[^/]';
    } else {
      body += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
  }
  const prefix = anchored ? '^/' : '^(?:.*/)?';
  // Matching a folder also ignores everything inside it.
  return new RegExp(`${prefix}${body}(?:/.*)?$`);
}

/** A set of ignore rules; `ignores('/sub-01/anat/x.nii')` tests a dataset-relative path. */
export class BidsIgnore {
  private readonly rules: Array<{ re: RegExp; negate: boolean }>;

  constructor(patterns: string[]) {
    this.rules = patterns
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#'))
      .map((line) => {
        const negate = line.startsWith('!');
        return { re: globToRegExp(negate ? line.slice(1) : line), negate };
      });
  }

  /** True when the last matching rule ignores the path (gitignore semantics; `!` re-includes). */
  ignores(relativePath: string): boolean {
    const p = relativePath.startsWith('/') ? relativePath : `/${relativePath}`;
    let ignored = false;
    for (const rule of this.rules) if (rule.re.test(p)) ignored = !rule.negate;
    return ignored;
  }
}

/** Read `<root>/.bidsignore`; an absent file gives an empty rule set. */
export async function loadBidsIgnore(root: string): Promise<BidsIgnore> {
  try {
    const text = await readFile(path.join(root, '.bidsignore'), 'utf8');
    return new BidsIgnore(text.split(/\r?\n/));
  } catch {
    return new BidsIgnore([]);
  }
}
