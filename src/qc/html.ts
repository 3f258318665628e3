/**
 * HTML for the QC reports, safe by construction: the `html` tag escapes every interpolated
 * value unless it is itself `Html` made by the tag, so user data (file names, engine messages)
 * can only ever show as text. Also the shared page shell, stylesheet and small widgets (badges,
 * figures) of the participant and group pages. No script, no external resources: the page
 * carries a Content-Security-Policy saying so.
 */

/** A fragment of markup that is already safe (made by `html`). */
export class Html {
  constructor(readonly markup: string) {}
  toString(): string {
    return this.markup;
  }
}

export type HtmlPart = Html | string | number | boolean | null | undefined | readonly HtmlPart[];

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text as HTML text or attribute value (all five special characters escaped). */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

function render(part: HtmlPart): string {
  if (part instanceof Html) return part.markup;
  if (Array.isArray(part)) return part.map(render).join('');
  if (part === null || part === undefined || part === false || part === true) return '';
  return escapeHtml(String(part));
}

/** Tagged template: literal parts are markup, interpolations are escaped (arrays joined, null/boolean omitted). */
export function html(strings: TemplateStringsArray, ...values: readonly HtmlPart[]): Html {
  let out = strings[0]!;
  values.forEach((value, i) => {
    out += render(value) + strings[i + 1]!;
  });
  return new Html(out);
}

/**
 * A relative file path (POSIX, relative to the page's folder) as a URL: each segment
 * percent-encoded, so `#`, `?`, `%` or spaces in user file names cannot change the link.
 */
export function fileUrl(relativePath: string): string {
  return relativePath.split('/').map(encodeURIComponent).join('/');
}

/** An `id` attribute value from any text: letters, digits, `-`, `_` only. */
export function anchorId(text: string): string {
  return text.replace(/[^A-Za-z0-9_-]/g, '-');
}

export type BadgeTone = 'pass' | 'fail' | 'warn' | 'none';

export function badge(tone: BadgeTone, label: string): Html {
  return html`<span class="badge ${tone}">${label}</span>`;
}

export function passBadge(pass: boolean): Html {
  return pass ? badge('pass', 'PASS') : badge('fail', 'FAIL');
}

/** The face check's badge: an inconclusive pass is shown as a warning, not a green PASS. */
export function faceBadge(face: { pass: boolean; verdict?: 'pass' | 'fail' | 'inconclusive' | undefined }): Html {
  return face.verdict === 'inconclusive' ? badge('warn', 'INCONCLUSIVE') : passBadge(face.pass);
}

/** An image (linked to its full size) or a placeholder box when it is missing or was never made. */
export function figure(url: string | null, caption: string, missingReason: string): Html {
  const body = url
    ? html`<a href="${url}"><img src="${url}" alt="${caption}" loading="lazy" decoding="async"></a>`
    : html`<div class="missing" role="img" aria-label="${caption}: ${missingReason}"><span>${missingReason}</span></div>`;
  return html`<figure>${body}<figcaption>${caption}</figcaption></figure>`;
}

const STYLE = `
:root {
  --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --accent: #0b5cad;
  --pass: #1a7f37; --pass-bg: #dafbe1; --fail: #cf222e; --fail-bg: #ffebe9; --warn: #9a6700; --warn-bg: #fff8c5;
}
* { box-sizing: border-box; }
html { scroll-padding-top: 4rem; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: #fff; }
header.top { position: sticky; top: 0; z-index: 10; display: flex; align-items: center; gap: 1.5rem; padding: .6rem 2rem; background: #24292f; color: #fff; }
header.top .brand { font-weight: 600; letter-spacing: .02em; }
header.top .brand small { font-weight: 400; opacity: .7; margin-left: .4rem; }
header.top nav { display: flex; flex-wrap: wrap; gap: .25rem; }
header.top nav a { color: #d0d7de; text-decoration: none; padding: .15rem .6rem; border-radius: 4px; }
header.top nav a:hover { background: #3d444d; color: #fff; }
main { max-width: 1320px; margin: 0 auto; padding: 1.5rem 2rem 4rem; }
h1 { font-size: 1.7rem; margin: .2rem 0 .2rem; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 .8rem; padding-bottom: .3rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.6rem 0 .6rem; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; word-break: break-all; }
h4 { font-size: 1rem; margin: 0; display: flex; align-items: center; gap: .6rem; }
p.meta, .muted { color: var(--muted); }
code, .path { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .86em; word-break: break-all; }
a { color: var(--accent); }
.tiles { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1rem 0 1.4rem; }
.tile { min-width: 9rem; padding: .7rem 1rem; border: 1px solid var(--line); border-radius: 8px; background: var(--soft); }
.tile b { display: block; font-size: 1.6rem; line-height: 1.2; }
.tile.fail { border-color: #ff818266; background: var(--fail-bg); color: var(--fail); }
.tile.pass { border-color: #4ac26b66; background: var(--pass-bg); color: var(--pass); }
.alert { padding: .7rem 1rem; border-radius: 8px; border: 1px solid #ff818266; background: var(--fail-bg); margin: 1rem 0; }
.alert.ok { border-color: #4ac26b66; background: var(--pass-bg); }
.alert.warn { border-color: #d4a72c66; background: var(--warn-bg); }
.alert ul { margin: .3rem 0 0; padding-left: 1.2rem; }
table { border-collapse: collapse; width: 100%; font-size: .92em; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
tr.failed td { background: #fff5f5; }
table.overview td, table.outputs td, table.methods td { vertical-align: middle; }
table.methods { width: auto; min-width: 30rem; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; min-width: 3.2rem; text-align: center; padding: .05rem .5rem; border-radius: 999px; font-size: .78rem; font-weight: 600; letter-spacing: .03em; border: 1px solid transparent; white-space: nowrap; }
.badge.pass { color: var(--pass); background: var(--pass-bg); border-color: #4ac26b66; }
.badge.fail { color: var(--fail); background: var(--fail-bg); border-color: #ff818266; }
.badge.warn { color: var(--warn); background: var(--warn-bg); border-color: #d4a72c66; }
.badge.none { color: var(--muted); background: var(--soft); border-color: var(--line); }
.card { border: 1px solid var(--line); border-radius: 10px; margin: 1rem 0 1.6rem; overflow: hidden; }
.card > .card-head { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: .6rem; padding: .6rem 1rem; background: var(--soft); border-bottom: 1px solid var(--line); }
.card.failed { border-color: var(--fail); box-shadow: 0 0 0 1px var(--fail) inset; }
.card.failed > .card-head { background: var(--fail-bg); }
.card > .card-body { padding: 1rem; }
.reason { margin: 0 0 1rem; color: var(--fail); font-weight: 500; }
.strip { display: grid; grid-template-columns: 4.5rem repeat(var(--views), minmax(0, 1fr)); gap: .4rem; align-items: center; margin-bottom: 1rem; }
.strip .row-label { font-weight: 600; color: var(--muted); font-size: .85rem; text-align: right; padding-right: .3rem; }
.strip .col-label { text-align: center; font-size: .8rem; color: var(--muted); }
.strip figure img, .strip .missing { aspect-ratio: 1 / 1; object-fit: contain; }
figure { margin: 0; }
figure img { display: block; width: 100%; height: auto; background: #000; border-radius: 4px; }
figure figcaption { font-size: .8rem; color: var(--muted); text-align: center; margin-top: .2rem; }
.strip figure figcaption { display: none; }
.missing { display: flex; align-items: center; justify-content: center; width: 100%; min-height: 5rem; aspect-ratio: 4 / 3; border: 1px dashed var(--line); border-radius: 4px; background: repeating-linear-gradient(45deg, #fafbfc, #fafbfc 8px, #f1f3f5 8px, #f1f3f5 16px); color: var(--muted); font-size: .78rem; text-align: center; padding: .3rem; }
.slices { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: .8rem; margin-bottom: 1rem; }
.slices figure img { max-height: 240px; object-fit: contain; }
.tables { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 1.2rem; }
.tables > div { overflow-x: auto; }
.tables h5 { margin: 0 0 .4rem; font-size: .85rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
td.fired { color: var(--fail); font-weight: 600; }
td.none { color: var(--muted); }
.gauge { position: relative; height: .55rem; margin: .35rem 0 .1rem; width: 100%; max-width: 18rem; background: #eaeef2; border-radius: 999px; }
.gauge .fill { position: absolute; left: 0; top: 0; bottom: 0; border-radius: 999px; }
.gauge .fill.pass { background: var(--pass); }
.gauge .fill.fail { background: var(--fail); }
.gauge .mark { position: absolute; top: -.25rem; bottom: -.25rem; width: 2px; background: var(--fg); }
ul.diffs { margin: .2rem 0 0; padding-left: 1.1rem; }
footer { margin-top: 3rem; color: var(--muted); font-size: .85rem; border-top: 1px solid var(--line); padding-top: .8rem; }
@media (max-width: 900px) { .slices { grid-template-columns: repeat(2, minmax(0, 1fr)); } .tables { grid-template-columns: 1fr; } }
`;

/** The HTML document around a page body: title, navigation bar, inline style, no script. */
export function pageDocument(options: { title: string; subtitle: string; nav: ReadonlyArray<{ href: string; label: string }>; body: Html; footer: Html }): string {
  const doc = html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'">
<title>${options.title}</title>
<style>${new Html(STYLE)}</style>
</head>
<body>
<header class="top"><span class="brand">micanon QC<small>${options.subtitle}</small></span><nav>${options.nav.map((item) => html`<a href="${item.href}">${item.label}</a>`)}</nav></header>
<main>
${options.body}
<footer>${options.footer}</footer>
</main>
</body>
</html>
`;
  return doc.markup;
}
