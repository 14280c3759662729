/**
 * Execution providers. ORT does not fall back from a failed EP (`['cuda','cpu']` throws when
 * CUDA's library is missing), so each device is probed with a one-node session and the reason
 * for every failure is kept: `auto` says which ran and why the others did not.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { AvgCkptError } from '../errors.js';
import { ONNX_DTYPE } from '../io/dtype.js';
import { encodeModel, onnx } from '../io/onnx/model.js';

export type Device = 'cpu' | 'webgpu' | 'cuda';
export type DeviceRequest = Device | 'auto';

export interface ResolvedDevice {
  readonly device: Device;
  /** At most one line: why each device before the one that ran was not used. */
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

/** onnxruntime's threads for one operator (`--threads`; by default its own choice, the cores). */
export function sessionThreads(
  threads: number | undefined,
): Pick<ort.InferenceSession.SessionOptions, 'intraOpNumThreads'> {
  return threads === undefined ? {} : { intraOpNumThreads: threads };
}

function probeModel(): Uint8Array {
  const vi = (name: string) => ({
    name,
    type: { tensorType: { elemType: ONNX_DTYPE.FLOAT, shape: { dim: [{ dimValue: 1 }] } } },
  });
  return encodeModel(
    onnx.ModelProto.fromObject({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      graph: {
        name: 'probe',
        node: [{ opType: 'Relu', input: ['x'], output: ['y'] }],
        input: [vi('x')],
        output: [vi('y')],
      },
    }),
  );
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
  webgpu:
    'WebGPU needs a Vulkan driver with a supported adapter (on Linux: libvulkan1 and a GPU driver, or Mesa >= 25 lavapipe)',
};

/** Where Linux looks for libraries and Vulkan driver manifests besides what the environment names. */
export interface VulkanSearch {
  readonly ldCache: string;
  readonly libDirs: readonly string[];
  readonly icdDirs: readonly string[];
}

const SYSTEM: VulkanSearch = {
  ldCache: '/etc/ld.so.cache',
  libDirs: [
    '/lib/x86_64-linux-gnu',
    '/usr/lib/x86_64-linux-gnu',
    '/lib/aarch64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/lib64',
    '/usr/lib64',
    '/lib',
    '/usr/lib',
  ],
  icdDirs: ['/etc/vulkan/icd.d', '/usr/local/etc/vulkan/icd.d'],
};

function hasJson(dir: string): boolean {
  try {
    return readdirSync(dir).some((f) => f.endsWith('.json'));
  } catch {
    return false;
  }
}

/**
 * Why Vulkan cannot work on this Linux machine, if that is certain from files alone: no
 * libvulkan.so.1 where the dynamic linker looks, or no driver manifest where the Vulkan loader
 * looks. WebGPU (Dawn) prints multi-line native warnings to stderr in both cases, which no
 * onnxruntime log level silences, so `auto` does not try it then.
 */
export function vulkanMissing(env: NodeJS.ProcessEnv = process.env, search: VulkanSearch = SYSTEM): string | undefined {
  const libDirs = [...(env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), ...search.libDirs];
  let cached = false;
  try {
    cached = readFileSync(search.ldCache).includes('libvulkan.so.1');
  } catch {
    // no cache: the directories decide
  }
  if (!cached && !libDirs.some((d) => existsSync(join(d, 'libvulkan.so.1'))))
    return 'no Vulkan loader libvulkan.so.1 found';
  if (env.VK_ICD_FILENAMES || env.VK_DRIVER_FILES || env.VK_ADD_DRIVER_FILES) return undefined;
  const home = env.HOME ?? homedir();
  const config = [env.XDG_CONFIG_HOME ?? join(home, '.config'), ...(env.XDG_CONFIG_DIRS ?? '/etc/xdg').split(':')];
  const data = [
    env.XDG_DATA_HOME ?? join(home, '.local/share'),
    ...(env.XDG_DATA_DIRS ?? '/usr/local/share:/usr/share').split(':'),
  ];
  const icd = [
    ...config.filter(Boolean).map((d) => join(d, 'vulkan/icd.d')),
    ...search.icdDirs,
    ...data.filter(Boolean).map((d) => join(d, 'vulkan/icd.d')),
  ];
  return icd.some(hasJson) ? undefined : 'no Vulkan driver manifest found in vulkan/icd.d';
}

/** Picks the device: an explicit one must work; `auto` tries cuda, webgpu, then cpu. */
export async function resolveDevice(request: DeviceRequest): Promise<ResolvedDevice> {
  quietOrt();
  if (request !== 'auto') {
    try {
      await probe(request);
    } catch (e) {
      const hint = HINT[request] ? `; ${HINT[request]}` : '';
      throw new AvgCkptError('device-unavailable', `--device ${request} is not available: ${shortReason(e)}${hint}`, {
        cause: e,
      });
    }
    return { device: request, notes: [] };
  }
  const skipped: string[] = [];
  for (const device of ['cuda', 'webgpu', 'cpu'] as const) {
    const missing = device === 'webgpu' && process.platform === 'linux' ? vulkanMissing() : undefined;
    if (missing !== undefined) {
      skipped.push(`${device} not used: ${missing}`);
      continue;
    }
    try {
      await probe(device);
      // one line for everything skipped: on a CPU-only machine this is the only note
      return { device, notes: skipped.length > 0 ? [skipped.join('; ')] : [] };
    } catch (e) {
      skipped.push(`${device} not used: ${shortReason(e)}`);
    }
  }
  throw new AvgCkptError('device-unavailable', `no execution provider works: ${skipped.join('; ')}`);
}
