/**
 * Charts render to well-formed SVG that carries what a reader needs: one line per method with one
 * vertex per evaluated step, the legend, the target and the time-to-target dots; and for a sweep
 * one panel per family. Inputs are small hand-made curves.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { curveChartSpec, renderSvg, sweepChartSpec, type CurveLine } from '../../src/report/charts.js';

const line = (name: string, steps: number[], losses: number[]): CurveLine => ({
  name,
  points: steps.map((step, i) => ({ step, metrics: { loss: losses[i], accuracy: 1 - losses[i] / 2 } })),
});

/** Every element of the parsed SVG, flattened, with its attributes. */
function elements(svg: string): { tag: string; attrs: Record<string, string>; text?: string }[] {
  const tree = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '',
    preserveOrder: true,
    trimValues: true,
  }).parse(svg) as unknown[];
  const out: { tag: string; attrs: Record<string, string>; text?: string }[] = [];
  const walk = (nodes: unknown[]) => {
    for (const n of nodes as Record<string, unknown>[]) {
      const tag = Object.keys(n).find((k) => k !== ':@')!;
      if (tag === '#text') continue;
      const children = n[tag] as Record<string, unknown>[];
      const text = children.find((c) => '#text' in c)?.['#text'];
      out.push({
        tag,
        attrs: (n[':@'] ?? {}) as Record<string, string>,
        text: text === undefined ? undefined : String(text),
      });
      walk(children);
    }
  };
  walk(tree);
  return out;
}

const vertices = (d: string) => (d.match(/[ML]/g) ?? []).length;
const texts = (svg: string) =>
  elements(svg)
    .filter((e) => e.tag === 'text')
    .map((e) => e.text);

describe('curve chart', () => {
  const steps = [100, 200, 300, 400, 500, 600];
  const raw = line('raw', steps, [2.0, 1.0, 0.8, 0.9, 0.5, 0.6]);
  const lawa = line('lawa-3', steps.slice(2), [0.9, 0.7, 0.55, 0.45]);
  const ttt = [{ name: 'lawa-3', step: 600, baseline_step: 500, steps_saved: -100, share_saved: -0.2 }];

  it('is well-formed SVG with one line per method, a legend, the target and the time-to-target dot', async () => {
    const svg = await renderSvg(curveChartSpec([raw, lawa], 'loss', 'min', { value: 0.5, source: 'best-raw' }, ttt));
    expect(XMLValidator.validate(svg)).toBe(true);
    const els = elements(svg);
    expect(els[0]).toMatchObject({ tag: 'svg', attrs: { xmlns: 'http://www.w3.org/2000/svg' } });
    const lines = els.filter((e) => e.attrs['aria-roledescription'] === 'line mark');
    expect(lines.map((l) => /method: ([\w-]+)/.exec(l.attrs['aria-label'])?.[1])).toEqual(['raw', 'lawa-3']);
    expect(lines.map((l) => vertices(l.attrs.d))).toEqual([6, 4]);
    const dots = els.filter((e) => e.attrs['aria-roledescription'] === 'point');
    // the raw model's own first step at the target (500) is marked too, then the average's
    expect(dots.map((d) => d.attrs['aria-label'])).toEqual([
      'training step: 500; value: 0.5; method: raw',
      'training step: 600; value: 0.5; method: lawa-3',
    ]);
    expect(texts(svg)).toEqual(
      expect.arrayContaining([
        'raw',
        'lawa-3',
        'target: best raw loss 0.5000',
        'training step',
        'loss',
        'raw: step 500',
        'lawa-3: step 600',
      ]),
    );
    expect(svg).not.toMatch(/NaN|undefined/);
  });

  it('plots any metric and says when the target was given', async () => {
    const svg = await renderSvg(curveChartSpec([raw, lawa], 'accuracy', 'max', { value: 0.7, source: 'given' }, []));
    expect(XMLValidator.validate(svg)).toBe(true);
    expect(texts(svg)).toEqual(expect.arrayContaining(['target: accuracy 0.7000', 'accuracy']));
    expect(elements(svg).filter((e) => e.attrs['aria-roledescription'] === 'point')).toHaveLength(0);
  });
});

describe('sweep chart', () => {
  const cand = (name: string, method: string, params: Record<string, number>, loss: number) => ({
    name,
    method,
    params,
    metrics: { loss },
  });
  const candidates = [
    cand('raw-600', 'raw', { step: 600 }, 0.6),
    cand('raw-500', 'raw', { step: 500 }, 0.5),
    cand('lawa-1', 'lawa', { k: 1 }, 0.6),
    cand('lawa-2', 'lawa', { k: 2 }, 0.4),
    cand('lawa-4', 'lawa', { k: 4 }, 0.45),
    cand('ema-0.5', 'ema', { decay: 0.5 }, 0.42),
    cand('ema-0.9', 'ema', { decay: 0.9 }, 0.41),
  ];

  it('draws metric vs window size and vs EMA decay, with the newest raw checkpoint as the baseline', async () => {
    const svg = await renderSvg(sweepChartSpec(candidates, 'loss', 'min')!);
    expect(XMLValidator.validate(svg)).toBe(true);
    const els = elements(svg);
    const lines = els.filter((e) => e.attrs['aria-roledescription'] === 'line mark');
    expect(lines.map((l) => vertices(l.attrs.d))).toEqual([3, 2]);
    expect(texts(svg)).toEqual(
      expect.arrayContaining([
        'LAWA: window size k (checkpoints)',
        'EMA: decay per checkpoint',
        'k',
        'decay',
        'baseline: raw step 600',
      ]),
    );
  });

  it('marks the winner, shows every family and single candidates as rules, and keeps them inside the plot area', async () => {
    const all = [
      ...candidates,
      cand('ema-step-0.99', 'ema-per-step', { decay_per_step: 0.99 }, 0.43),
      cand('ema-step-0.999', 'ema-per-step', { decay_per_step: 0.999 }, 0.47),
      cand('phema-0.05', 'phema', { sigma_rel: 0.05 }, 0.44),
      cand('uniform-from-300', 'uniform', { from_step: 300 }, 0.46),
      cand('uniform-from-500', 'uniform', { from_step: 500 }, 0.48),
      cand('greedy-soup-4', 'greedy-soup', { k: 4, members: 2 }, 0.39),
    ];
    const svg = await renderSvg(sweepChartSpec(all, 'loss', 'min', 'lawa-2')!);
    expect(XMLValidator.validate(svg)).toBe(true);
    const t = texts(svg);
    for (const title of [
      'LAWA: window size k (checkpoints)',
      'EMA: decay per checkpoint',
      'EMA: decay per optimizer step',
      'power EMA: sigma_rel',
      'uniform: from step',
    ])
      expect(t).toContain(title);
    expect(t).toEqual(
      expect.arrayContaining(['baseline: raw step 600', 'greedy-soup-4 (chosen on these rows)', 'best']),
    );
    expect(svg).toContain('best: lawa-2 (red)');
    // the winner's ring: one red circle, at lawa-2's point
    const rings = elements(svg).filter(
      (e) => e.attrs['aria-roledescription'] === 'point' && e.attrs.stroke === '#d62728',
    );
    expect(rings.map((r) => r.attrs['aria-label'])).toEqual(['k: 2; loss: 0.4']);
    // 0.39 to 0.6 is 35% of the baseline 0.6: said in the subtitle
    expect(svg).toContain('the y-axis spans loss from 0.3900 to 0.6000: 35% of the baseline');
    // every rule (baseline, soup) lies inside its 260-pixel-high panel
    const rules = elements(svg).filter((e) => e.attrs['aria-roledescription'] === 'rule mark');
    expect(rules).toHaveLength(2 * 5);
    for (const r of rules) {
      const yPix = Number(/translate\([^,]+,([^)]+)\)/.exec(r.attrs.transform)![1]);
      expect(yPix).toBeGreaterThan(0);
      expect(yPix).toBeLessThan(260);
    }
  });

  it('says so when a small spread fills the panel, and a winning single candidate is a red rule labelled best', async () => {
    const tight = [
      cand('raw-600', 'raw', { step: 600 }, 1.0),
      cand('lawa-2', 'lawa', { k: 2 }, 1.004),
      cand('lawa-4', 'lawa', { k: 4 }, 1.008),
      cand('greedy-soup-3', 'greedy-soup', { k: 3 }, 0.999),
    ];
    const svg = await renderSvg(sweepChartSpec(tight, 'loss', 'min', 'greedy-soup-3')!);
    const t = texts(svg);
    expect(svg).toContain(
      'the y-axis spans loss from 0.9990 to 1.008: 0.9% of the baseline, so small differences look large',
    );
    expect(t).toContain('greedy-soup-3 (chosen on these rows): best');
    const redRules = elements(svg).filter(
      (e) => e.attrs['aria-roledescription'] === 'rule mark' && e.attrs.stroke === '#d62728',
    );
    expect(redRules).toHaveLength(1);
  });

  it('draws only the families present, and nothing without any', async () => {
    const svg = await renderSvg(
      sweepChartSpec(
        [
          ...candidates.slice(0, 2),
          cand('phema-0.05', 'phema', { sigma_rel: 0.05 }, 0.3),
          cand('phema-0.1', 'phema', { sigma_rel: 0.1 }, 0.35),
        ],
        'loss',
        'min',
      )!,
    );
    expect(texts(svg)).toContain('power EMA: sigma_rel');
    expect(texts(svg)).not.toContain('k');
    expect(sweepChartSpec(candidates.slice(0, 2), 'loss', 'min')).toBeUndefined();
  });
});
