/** Tab-separated files of the QC folder (logs/group_qc.tsv, logs/group_attack*.tsv). */

/** One TSV cell: `n/a` for missing values (BIDS convention); tabs and line breaks cannot split a row. */
export function tsvCell(value: string | number | boolean | null | undefined): string {
  if (value === null || value === undefined) return 'n/a';
  return String(value).replace(/[\t\r\n]+/g, ' ');
}

/** The text of a TSV file: the header, then one line per row. */
export function tsvText(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number | boolean | null | undefined>>): string {
  return [header, ...rows].map((row) => `${row.map(tsvCell).join('\t')}\n`).join('');
}
