/** The library API of avg-ckpt. Re-exports only. */
export { AvgCkptError, exitCodeFor, type ErrorCode } from './errors.js';
export { discoverSeries, type Series } from './series/discover.js';
export { selectCheckpoints, type SelectionOptions } from './series/select.js';
export { checkCompatible } from './series/compatible.js';
export type { Checkpoint, TensorSource } from './series/checkpoint.js';
export { merge, resolveMerge, type MergeRunOptions } from './engine/merge-run.js';
export { mergeToOutput, type MergeOptions, type MergeResult } from './engine/merge.js';
export { vectorFromSpec, METHODS, type MethodSpec } from './recipes/from-spec.js';
export { type WeightVector, support } from './recipes/weight-vector.js';
export { uniform } from './recipes/uniform.js';
export { lawa, raw } from './recipes/lawa.js';
export { ema, emaPerStep } from './recipes/ema.js';
export { explicitWeights } from './recipes/explicit.js';
export { phema, gammaOf, sigmaRelOf } from './recipes/phema.js';
export { readSafetensorsHeader, type SafetensorsFile } from './io/safetensors/reader.js';
export { VERSION } from './version.js';
