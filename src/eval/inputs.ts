/** The files an evaluation reads besides the checkpoints, named for the output guard. */
import { externalRef, type LoadedModel } from '../io/onnx/model.js';
import type { GuardedInput } from '../io/output-guard.js';
import { joinPath } from '../io/storage/paths.js';
import { listDir } from '../io/storage/storage.js';
import type { DataOptions } from './data.js';

/**
 * The ONNX model, its external data files (known once `model` is loaded), and the validation data
 * (folder and its files, input files, labels). Commands guard their outputs against these before
 * loading the model, so a refused output costs no device start-up, then again with the model.
 */
export async function evaluationInputs(onnx: string, data: DataOptions, model?: LoadedModel): Promise<GuardedInput[]> {
  const out: GuardedInput[] = [{ path: onnx, role: 'ONNX model' }];
  const external = new Set<string>();
  for (const t of model?.proto.graph?.initializer ?? []) {
    const ref = externalRef(t, model!.dir, model!.path);
    if (ref !== undefined) external.add(ref.file);
  }
  for (const file of external) out.push({ path: file, role: 'external data of the ONNX model' });
  if (data.dataDir !== undefined) {
    out.push({ path: data.dataDir, role: 'validation data folder' });
    // named one by one, so that a refusal says "is the validation data FILE", not only "lies inside"
    const names = await listDir(data.dataDir).then(
      (es) => es.map((e) => e.name),
      () => [] as string[],
    );
    for (const n of names.filter((x) => /\.(npy|npz|safetensors)$/i.test(x)))
      out.push({ path: joinPath(data.dataDir, n), role: 'validation data' });
  }
  for (const file of Object.values(data.inputs ?? {})) out.push({ path: file, role: 'validation data' });
  if (data.labels !== undefined) out.push({ path: data.labels, role: 'labels' });
  return out;
}
