/** Time to target in words: one sentence per average. */
import type { Target, TimeToTarget } from '../analysis/time-to-target.js';

/** One sentence per method: "lawa-8 reaches the run's best loss (0.0520) at step 560 instead of 1000: 44% fewer steps". */
export function describeTimeToTarget(t: TimeToTarget, metric: string, target: Target): string {
  const what =
    target.source === 'best-raw' ? `the run's best ${metric} (${fmt(target.value)})` : `${metric} ${fmt(target.value)}`;
  if (t.step === null) return `${t.name} never reaches ${what}`;
  if (t.baseline_step === null) return `${t.name} reaches ${what} at step ${t.step}; the raw model never does`;
  const share = t.share_saved!;
  const verdict = share > 0 ? `${pct(share)} fewer steps` : share < 0 ? `${pct(-share)} more steps` : 'no steps saved';
  return `${t.name} reaches ${what} at step ${t.step} instead of ${t.baseline_step}: ${verdict}`;
}

function fmt(x: number): string {
  return Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toFixed(4) : x.toExponential(3);
}

function pct(share: number): string {
  return `${Math.round(share * 100)}%`;
}
