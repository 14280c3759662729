/** The file formats the benchmarks write their synthetic runs and validation data in. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The 8-byte length prefix and the space-padded JSON header of a safetensors file whose tensors
 * follow in the given order.
 * @param {{ name: string, dtype: string, shape: number[], bytes: number }[]} tensors
 */
export function safetensorsHeader(tensors) {
  const header = {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes] };
    offset += t.bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([prefix, Buffer.from(json)]);
}

/** A version-1 .npy file (C order). */
export function npyBytes(descr, shape, data) {
  let head = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  head += `${' '.repeat(63 - ((head.length + 10) % 64))}\n`;
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre.writeUInt16LE(head.length, 8);
  return Buffer.concat([pre, Buffer.from(head, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

/** Where the benchmarks write, and the size of their synthetic runs (AVG_BENCH_CKPTS, _MB, _PAIRS). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const OUT = join(ROOT, 'bench', 'out');
export const RUN_SIZE = {
  checkpoints: Number(process.env.AVG_BENCH_CKPTS ?? 8),
  mb: Number(process.env.AVG_BENCH_MB ?? 256),
  pairs: Number(process.env.AVG_BENCH_PAIRS ?? 3),
};
