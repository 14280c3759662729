/**
 * The evaluation API (`import ... from 'avg-ckpt/eval'`). Re-exports only: an entry point, not a
 * layer (it sits above src/commands like src/index.ts). Separate so that importing the merge
 * library never loads onnxruntime's native code.
 */
export { Evaluator, type EvaluatorOptions } from './evaluator.js';
export { sweepWindow, type SweepOptions } from '../commands/sweep.js';
export type { SweepReport, CandidateResult } from '../analysis/sweep-report.js';
export { describeBinding, type BindingRow } from './binding.js';
export { curve, type CurveOptions } from '../commands/curve.js';
export type { CurveReport, CurveAverages } from '../analysis/curve.js';
export { greedySoup } from '../recipes/greedy-soup.js';
