/**
 * Tied names: output tensors computed from exactly the same input bytes in every checkpoint
 * (one storage under two names, like a language model's embedding and head). A `.pt` output
 * writes them as one storage again, as `torch.save` would.
 */
import type { TensorSource } from '../formats/tensor-source.js';

export interface TieCandidate {
  readonly name: string;
  readonly dtype: string;
  /** The inputs of the tensor, one per contributing checkpoint, in the same order for all. */
  readonly sources: readonly TensorSource[];
}

function identity(t: TieCandidate): string | undefined {
  if (t.sources.some((s) => s.storage === undefined)) return undefined;
  return JSON.stringify([
    t.dtype,
    ...t.sources.map((s) => [s.file, s.storage, s.position, s.dtype, s.shape, s.strides ?? null]),
  ]);
}

/** name -> the first name with the same inputs, for every name that repeats an earlier one. */
export function tiedNames(tensors: readonly TieCandidate[]): Map<string, string> {
  const first = new Map<string, string>();
  const aliases = new Map<string, string>();
  for (const t of tensors) {
    const id = identity(t);
    if (id === undefined) continue;
    const owner = first.get(id);
    if (owner === undefined) first.set(id, t.name);
    else aliases.set(t.name, owner);
  }
  return aliases;
}
