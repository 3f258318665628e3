import { describe, expect, it } from 'vitest';
import { anchorId, escapeHtml, fileUrl, Html, html } from './html.js';

describe('html', () => {
  it('escapes every interpolated string, in text and attributes', () => {
    const name = `sub-01_acq-<script>alert("x")</script>'&_T1w.nii.gz`;
    const out = html`<p title="${name}">${name}</p>`.markup;
    expect(out).not.toContain('<script>');
    expect(out).toBe(
      '<p title="sub-01_acq-&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;_T1w.nii.gz">' +
        'sub-01_acq-&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;_T1w.nii.gz</p>',
    );
  });

  it('keeps fragments made by the tag, joins arrays, drops null/undefined/booleans', () => {
    const items = ['a<b', 'c'].map((s) => html`<li>${s}</li>`);
    expect(html`<ul>${items}${null}${undefined}${false}${3}</ul>`.markup).toBe('<ul><li>a&lt;b</li><li>c</li>3</ul>');
    // A plain string that looks like markup is still text.
    expect(html`${'<b>x</b>'}`.markup).toBe('&lt;b&gt;x&lt;/b&gt;');
    expect(html`${new Html('<b>x</b>')}`.markup).toBe('<b>x</b>');
  });

  it('escapeHtml covers the five special characters', () => {
    expect(escapeHtml(`<>&"'`)).toBe('&lt;&gt;&amp;&quot;&#39;');
  });

  it('fileUrl percent-encodes each segment so #, ?, % and spaces stay part of the file name', () => {
    expect(fileUrl('sub-01/figures/a b#c?d%e.png')).toBe('sub-01/figures/a%20b%23c%3Fd%25e.png');
    expect(decodeURIComponent(fileUrl('x/<y>.png').split('/')[1]!)).toBe('<y>.png');
  });

  it('anchorId keeps only safe characters', () => {
    expect(anchorId('sub-01_ses 1<x>')).toBe('sub-01_ses-1-x-');
  });
});
