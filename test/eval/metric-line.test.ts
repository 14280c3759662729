/** The metrics line of an evaluation command: the last non-empty stdout line, JSON object or number. */
import { describe, expect, it } from 'vitest';
import { readMetricLine } from '../../src/eval/metric-line.js';

describe('readMetricLine', () => {
  it('reads the number fields of a JSON object on the last non-empty line', () => {
    expect(readMetricLine('loading...\n{"loss": 0.5, "accuracy": 0.9, "model": "x"}\n\n  \n', 'loss')).toEqual({
      metrics: { loss: 0.5, accuracy: 0.9 },
    });
    expect(readMetricLine('{"loss": 9}\r\n{"loss": 1e-3}\r\n', 'loss')).toEqual({ metrics: { loss: 0.001 } });
  });

  it('a bare number is the ranking metric', () => {
    expect(readMetricLine('step 1\n0.25\n', 'f1')).toEqual({ metrics: { f1: 0.25 } });
    expect(readMetricLine('-3.5e2', 'loss')).toEqual({ metrics: { loss: -350 } });
    expect(readMetricLine('nan\n', 'loss')).toEqual({ metrics: { loss: NaN } });
  });

  it("reads Python's unquoted NaN and Infinity as numbers (a diverged candidate ranks last, it does not fail)", () => {
    expect(readMetricLine('{"loss": NaN, "accuracy": 0.1, "ppl": Infinity, "x": -Infinity}', 'loss')).toEqual({
      metrics: { loss: NaN, accuracy: 0.1, ppl: Infinity, x: -Infinity },
    });
    // inside a string it stays a string
    expect(readMetricLine('{"loss": 1, "note": "NaN"}', 'loss')).toEqual({ metrics: { loss: 1 } });
  });

  it('says what is wrong: nothing printed, no metric, garbage JSON, the metric missing or not a number', () => {
    expect(readMetricLine('', 'loss')).toEqual({ problem: expect.stringMatching(/^printed nothing on stdout/) });
    expect(readMetricLine('\n \n', 'loss')).toEqual({ problem: expect.stringMatching(/^printed nothing/) });
    expect(readMetricLine('{"loss": 1}\ndone.\n', 'loss')).toEqual({
      problem: "printed no metric: its last line is 'done.', not a JSON object or a number",
    });
    expect(readMetricLine('{"loss": 0.5,', 'loss')).toEqual({
      problem: `printed a last line that is not a valid JSON object: '{"loss": 0.5,'`,
    });
    expect(readMetricLine('{"acc": 0.5, "f1": 0.2}', 'loss')).toEqual({
      problem: 'printed no "loss" (its metrics: acc, f1); name the ranking metric with --metric',
    });
    expect(readMetricLine('{"loss": "0.5"}', 'loss')).toEqual({
      problem: 'printed "loss": "0.5", not a number (no number fields); name the ranking metric with --metric',
    });
    expect((readMetricLine(`x${'y'.repeat(200)}`, 'loss') as { problem: string }).problem).toMatch(/'xy{76}\.\.\.'/);
  });
});
