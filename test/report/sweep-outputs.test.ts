/**
 * `sweep-window --plot/--html` on a hand-made sweep report over the fixture run: the page holds
 * the table (winner marked), the chart, the winner's checkpoints and the command that writes it,
 * and loads nothing from anywhere.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XMLValidator } from 'fast-xml-parser';
import { afterAll, describe, expect, it } from 'vitest';
import type { CandidateResult, SweepReport } from '../../src/analysis/sweep-report.js';
import { escapeHtml, htmlPage } from '../../src/report/html.js';
import { writeSweepOutputs } from '../../src/report/sweep-outputs.js';

const RUN = 'fixtures/runs/digits-mlp/run';
const dir = mkdtempSync(join(tmpdir(), 'avg-ckpt-sweep-html-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cand = (
  name: string,
  method: string,
  params: Record<string, number>,
  steps: number[],
  loss: number,
): CandidateResult => ({
  name,
  method,
  params,
  steps,
  weights: steps.map(() => 1 / steps.length),
  metrics: { loss, accuracy: 1 - loss },
});
// --last 10 selects steps 1020..1200.
const report: SweepReport = {
  metric: 'loss',
  direction: 'min',
  device: 'cpu',
  engine: 'mixture',
  engine_reason: 'mixture: fits',
  checkpoints: Array.from({ length: 10 }, (_, i) => 1020 + 20 * i).map((step) => ({
    step,
    path: `${RUN}/checkpoint-${step}`,
  })),
  candidates: [
    cand('raw-1200', 'raw', { step: 1200 }, [1200], 0.3),
    cand('lawa-2', 'lawa', { k: 2 }, [1180, 1200], 0.12),
    cand('lawa-4', 'lawa', { k: 4 }, [1140, 1160, 1180, 1200], 0.05),
    cand('lawa-8', 'lawa', { k: 8 }, [1060, 1080, 1100, 1120, 1140, 1160, 1180, 1200], 0.06),
    cand('greedy-soup-4', 'greedy-soup', { k: 4, members: 2 }, [1160, 1200], 0.07),
  ],
  baseline: 'raw-1200',
  best: 'lawa-4',
};

describe('sweep outputs', () => {
  it('writes the chart and a self-contained page with table, chart, recipe and command', async () => {
    const plot = join(dir, 'sweep.svg');
    const html = join(dir, 'report.html');
    const written = await writeSweepOutputs(report, { inputs: [RUN], selection: { last: 10 }, plot, html });
    expect(written).toEqual([plot, html]);
    const svg = readFileSync(plot, 'utf8');
    expect(XMLValidator.validate(svg)).toBe(true);

    const page = readFileSync(html, 'utf8');
    expect(page.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(page).not.toMatch(/<script|<link|<img|src=|href=|url\(/i);
    expect(page.match(/https?:\/\/[^"]*/g)?.every((u) => u.startsWith('http://www.w3.org/'))).toBe(true);
    expect(page).toContain(svg.slice(svg.indexOf('<svg'), svg.indexOf('<svg') + 200));

    const rows = page.match(/<tr( class="mark")?>.*<\/tr>/g)!;
    const table = rows.filter((r) => /<td>(raw|lawa|greedy)/.test(r));
    expect(table).toHaveLength(5);
    expect(rows.filter((r) => r.startsWith('<tr class="mark">'))).toEqual([expect.stringContaining('<td>lawa-4</td>')]);
    expect(page).toContain(
      '<td>lawa-8</td><td>1060..1200 (8)</td><td class="num">0.0600000</td><td class="num">0.940000</td><td>-0.240 (-80.0%)</td>',
    );

    // Recipe: the four checkpoints of lawa-4 with weight 1/4 and their folders.
    for (const s of [1140, 1160, 1180, 1200])
      expect(page).toContain(`<td class="num">${s}</td><td class="num">0.250000</td><td>${RUN}/checkpoint-${s}</td>`);
    expect(page).toContain(
      `<pre><code>avg-ckpt merge ${RUN} --last 10 --method lawa --k 4 -o lawa-4.safetensors</code></pre>`,
    );
    expect(page).toContain(
      'Best: lawa-4, loss 0.0500000 (lower is better), against 0.300000 for raw-1200: -0.250 (-83.3%).',
    );
  });

  it('with --holdout, the chart and its section say they show held-out rows, the winner chosen on others', async () => {
    const plot = join(dir, 'holdout.svg');
    const html = join(dir, 'holdout.html');
    const holdout = { fraction: 0.5, seed: 1, choose_rows: 250, report_rows: 250 };
    await writeSweepOutputs({ ...report, holdout }, { inputs: [RUN], selection: { last: 10 }, plot, html });
    const svg = readFileSync(plot, 'utf8');
    expect(svg).toContain('>loss of each candidate average on the 250 held-out validation rows (lower is better)<');
    expect(svg).toContain('>loss (held-out rows)<');
    expect(svg).toContain(
      '>best: lawa-4 (red), chosen on the other 250 rows (--holdout): it need not be the best point here<',
    );
    expect(svg).toContain('>greedy-soup-4 (members chosen on the other rows)<');
    expect(svg).not.toContain('chosen on these rows');
    expect(readFileSync(html, 'utf8')).toContain('<h2>loss on the held-out rows by window size and decay</h2>');
    // without --holdout nothing claims held-out rows
    const plain = join(dir, 'plain.svg');
    await writeSweepOutputs(report, { inputs: [RUN], selection: { last: 10 }, plot: plain });
    const without = readFileSync(plain, 'utf8');
    expect(without).toContain('>loss of each candidate average (lower is better)<');
    expect(without).toContain('>greedy-soup-4 (chosen on these rows)<');
    expect(without).not.toContain('held-out');
  });

  it('spells out the weights of a winner that no method flag describes', async () => {
    const html = join(dir, 'soup.html');
    await writeSweepOutputs({ ...report, best: 'greedy-soup-4' }, { inputs: [RUN], selection: { last: 10 }, html });
    expect(readFileSync(html, 'utf8')).toContain(
      `avg-ckpt merge ${RUN} --from-step 1160 --to-step 1200 --method weights --weights 1,0,1 -o greedy-soup-4.safetensors`,
    );
  });

  it('escapes text', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    expect(htmlPage('a<b', 'c&d', [{ title: '<t>', code: 'x > y' }])).toContain(
      '<h2>&lt;t&gt;</h2>\n<pre><code>x &gt; y</code></pre>',
    );
  });
});
