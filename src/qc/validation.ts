/**
 * The "BIDS validation" section of the participant and group QC pages: what the official BIDS
 * validator said of the run's input and output, each error named, warnings folded away.
 */
import { countsByCode, issueLine, type ValidatorReport } from '../bids/validator.js';
import { html, type Html } from './html.js';

export interface PageValidation {
  input?: ValidatorReport | null;
  output?: ValidatorReport | null;
}

function datasetAlert(what: string, report: ValidatorReport): Html {
  const errors = report.errors.length;
  const warnings = report.warnings.length;
  const head = html`<b>${what}: ${errors} error(s)</b>, ${warnings} warning(s) · ${report.validator}`;
  const warningList =
    warnings > 0
      ? html`<details><summary>Warnings: ${countsByCode(report.warnings)}</summary><ul>${report.warnings.map((w) => html`<li><code>${issueLine(w)}</code></li>`)}</ul></details>`
      : '';
  if (errors === 0) return html`<div class="alert ok">${head}${warningList}</div>`;
  return html`<div class="alert">${head}<ul>${report.errors.map((e) => html`<li><code>${issueLine(e)}</code></li>`)}</ul>${warningList}</div>`;
}

/** The section, or nothing when the validator did not run (--skip-bids-validation). */
export function validationSection(validation: PageValidation | undefined): Html | '' {
  const input = validation?.input ?? null;
  const output = validation?.output ?? null;
  if (!input && !output) return '';
  return html`<section id="bids-validation"><h2>BIDS validation</h2>
${input ? datasetAlert('Input', input) : ''}
${output ? datasetAlert('Output (micanon\'s own: an error here is a bug in micanon)', output) : ''}
</section>`;
}
