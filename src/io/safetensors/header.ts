/**
 * The safetensors header: parsed and validated in one straight line, in the reference reader's
 * order (huggingface/safetensors, src/tensor.rs). A `SafetensorsHeader` can only be had from
 * `parseHeader`, so unvalidated metadata never exists.
 */
import { AvgCkptError } from '../../errors.js';
import { type DType, dtypeBits, isDType } from '../dtype.js';

export const MAX_HEADER_SIZE = 100_000_000;

export interface TensorEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Byte offsets relative to the start of the data buffer. */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  /** Length of the JSON header in bytes (N). */
  readonly headerSize: number;
  /** Absolute file position of the data buffer: 8 + N. */
  readonly dataStart: number;
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensors in the header's order. */
  readonly tensors: readonly TensorEntry[];
}

/** Reads N from the 8-byte prefix and checks it against the file size (checks 1-3). */
export function parseHeaderSize(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || prefix.byteLength < 8) {
    throw new AvgCkptError(
      'header-too-small',
      `not a safetensors file: ${fileSize} bytes, shorter than the 8-byte header length`,
      { file },
    );
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_SIZE)) {
    throw new AvgCkptError(
      'header-too-large',
      `header length ${n} exceeds the ${MAX_HEADER_SIZE}-byte limit (not a safetensors file?)`,
      { file },
    );
  }
  const size = Number(n);
  if (8 + size > fileSize) {
    throw new AvgCkptError(
      'invalid-header-length',
      `header length ${size} runs past the end of the ${fileSize}-byte file (truncated?)`,
      { file },
    );
  }
  return size;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Validates the JSON header bytes (checks 4-9) for a file of `fileSize` bytes. */
export function parseHeader(json: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  const headerSize = json.byteLength;
  let text: string;
  try {
    text = utf8.decode(json);
  } catch {
    throw new AvgCkptError('invalid-header', 'header is not valid UTF-8', { file });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new AvgCkptError('invalid-header-schema', `header is not valid JSON (${(e as Error).message})`, { file });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new AvgCkptError('invalid-header-schema', 'header is not a JSON object', { file });
  }
  const dup = firstDuplicateTopLevelKey(text);
  if (dup !== undefined) {
    throw new AvgCkptError('duplicate-key', 'appears twice in the header', { file, tensor: dup });
  }

  let metadata: Record<string, string> = {};
  const tensors: TensorEntry[] = [];
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(value, file);
      continue;
    }
    tensors.push(parseEntry(name, value, file));
  }

  // 6. offsets: sorted, starting at 0, contiguous, no negative extents
  const sorted = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const t of sorted) {
    if (t.begin !== expected || t.end < t.begin) {
      throw new AvgCkptError(
        'invalid-offset',
        `data_offsets [${t.begin}, ${t.end}] do not follow the previous tensor's end ${expected} (gap or overlap)`,
        { file, tensor: t.name },
      );
    }
    expected = t.end;
  }
  // 7-8. sizes
  for (const t of tensors) {
    let numel = 1;
    for (const d of t.shape) {
      numel *= d;
      if (!Number.isSafeInteger(numel)) {
        throw new AvgCkptError('validation-overflow', `shape [${t.shape.join(', ')}] overflows`, {
          file,
          tensor: t.name,
        });
      }
    }
    const bits = numel * dtypeBits(t.dtype);
    if (!Number.isSafeInteger(bits)) {
      throw new AvgCkptError('validation-overflow', `shape [${t.shape.join(', ')}] of ${t.dtype} overflows`, {
        file,
        tensor: t.name,
      });
    }
    if (bits % 8 !== 0 || t.end - t.begin !== bits / 8) {
      throw new AvgCkptError(
        'tensor-invalid-info',
        `data_offsets span ${t.end - t.begin} bytes, but ${t.dtype} [${t.shape.join(', ')}] needs ${bits / 8}`,
        { file, tensor: t.name },
      );
    }
  }
  // 9. the buffer is covered exactly
  if (8 + headerSize + expected !== fileSize) {
    const what = 8 + headerSize + expected < fileSize ? 'trailing bytes after the last tensor' : 'file is truncated';
    throw new AvgCkptError(
      'metadata-incomplete-buffer',
      `${what}: header says ${8 + headerSize + expected} bytes, file has ${fileSize}`,
      { file },
    );
  }
  return { headerSize, dataStart: 8 + headerSize, metadata, tensors };
}

function parseMetadata(value: unknown, file: string): Record<string, string> {
  if (value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new AvgCkptError('invalid-header-schema', '__metadata__ must be an object of strings', { file });
  }
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string') {
      throw new AvgCkptError('invalid-header-schema', `__metadata__ value "${k}" is not a string`, { file });
    }
  }
  return value as Record<string, string>;
}

function isNonNegativeInteger(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function parseEntry(name: string, value: unknown, file: string): TensorEntry {
  const bad = (why: string): never => {
    throw new AvgCkptError('invalid-header-schema', why, { file, tensor: name });
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad('entry is not an object');
  const v = value as Record<string, unknown>;
  if (!isDType(v.dtype)) bad(`unknown dtype ${JSON.stringify(v.dtype)}`);
  if (!Array.isArray(v.shape) || !v.shape.every(isNonNegativeInteger))
    bad('shape must be a list of non-negative integers');
  const off = v.data_offsets;
  if (!Array.isArray(off) || off.length !== 2 || !off.every(isNonNegativeInteger))
    bad('data_offsets must be two non-negative integers');
  const [begin, end] = off as [number, number];
  return { name, dtype: v.dtype as DType, shape: v.shape as number[], begin, end };
}

/**
 * JSON.parse keeps the last of duplicate keys silently; the format forbids them, so we scan the
 * top-level keys ourselves.
 */
function firstDuplicateTopLevelKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      if (depth === 1 && c === '{') expectKey = true;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return undefined;
}
