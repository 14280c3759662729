/**
 * Execution providers. ORT does not fall back from a failed EP (`['cuda','cpu']` throws when
 * CUDA's library is missing), so each device is probed with a one-node session and the reason
 * for every failure is kept: `auto` says which ran and why the others did not.
 */
import ort from 'onnxruntime-node';
import { AvgCkptError } from '../errors.js';
import { encodeModel, onnx } from '../io/onnx/model.js';

export type Device = 'cpu' | 'webgpu' | 'cuda';
export type DeviceRequest = Device | 'auto';

export interface ResolvedDevice {
  readonly device: Device;
  /** One line per device tried before the one that ran. */
  readonly notes: readonly string[];
}

let logLevelSet = false;

/** Silences ORT's own stderr lines (a failed CUDA load logs in red) before the first session. */
export function quietOrt(): void {
  if (!logLevelSet) {
    ort.env.logLevel = 'fatal';
    logLevelSet = true;
  }
}

export function sessionProviders(device: Device): ort.InferenceSession.ExecutionProviderConfig[] {
  return [device];
}

function probeModel(): Uint8Array {
  const vi = (name: string) => ({ name, type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }] } } } });
  return encodeModel(onnx.ModelProto.fromObject({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: { name: 'probe', node: [{ opType: 'Relu', input: ['x'], output: ['y'] }], input: [vi('x')], output: [vi('y')] },
  }));
}

/** ORT's messages carry a source path and a lambda signature; keep the part a user can act on. */
export function shortReason(e: unknown): string {
  const msg = String((e as Error)?.message ?? e).split('\n')[0];
  const tail = /(Failed to [^.]*|No supported adapters[^.]*)/.exec(msg)?.[1];
  return (tail ?? msg).trim().slice(0, 200);
}

async function probe(device: Device): Promise<void> {
  const session = await ort.InferenceSession.create(probeModel(), { executionProviders: sessionProviders(device) });
  try {
    await session.run({ x: new ort.Tensor('float32', new Float32Array([1]), [1]) });
  } finally {
    await session.release();
  }
}

const HINT: Record<Device, string> = {
  cpu: '',
  cuda: 'install the CUDA build with `npm rebuild onnxruntime-node --onnxruntime-node-install=cuda12` on a machine with an NVIDIA driver',
  webgpu: 'WebGPU needs a Vulkan driver with a supported adapter (on Linux: libvulkan1 and a GPU driver, or Mesa >= 25 lavapipe)',
};

/** Picks the device: an explicit one must work; `auto` tries cuda, webgpu, then cpu. */
export async function resolveDevice(request: DeviceRequest): Promise<ResolvedDevice> {
  quietOrt();
  if (request !== 'auto') {
    try {
      await probe(request);
    } catch (e) {
      const hint = HINT[request] ? `; ${HINT[request]}` : '';
      throw new AvgCkptError('device-unavailable', `--device ${request} is not available: ${shortReason(e)}${hint}`, { cause: e });
    }
    return { device: request, notes: [] };
  }
  const notes: string[] = [];
  for (const device of ['cuda', 'webgpu', 'cpu'] as const) {
    try {
      await probe(device);
      return { device, notes };
    } catch (e) {
      notes.push(`${device} not used: ${shortReason(e)}`);
    }
  }
  throw new AvgCkptError('device-unavailable', `no execution provider works: ${notes.join('; ')}`);
}
