/**
 * The evaluation API (`import ... from 'avg-ckpt/eval'`). Re-exports only. A separate entry
 * point, so that importing the merge library never loads onnxruntime's native code.
 */
export { Evaluator, type EvaluatorOptions } from './evaluator.js';
export { sweepWindow, type SweepOptions, type SweepReport, type CandidateResult } from './sweep.js';
export { describeBinding, type BindingRow } from './binding.js';
export { curve, type CurveOptions, type CurveReport } from '../analysis/curve.js';
export { greedySoup } from '../recipes/greedy-soup.js';
