/**
 * A pickle virtual machine of our own, for the pickles `torch.save` writes (protocols 0 to 5).
 * It never imports or calls anything: a global is a name, a call is a record of the name and
 * its arguments, and what a known call means is decided by the caller's `reduce` hook (only
 * torch's rebuild functions, storages and containers get a meaning; see torch-pickle.ts).
 * Globals that can run code (os.system, builtins.eval, ...) are refused the moment they are
 * named. Every size is bounded, so a hostile pickle cannot exhaust memory or time: each opcode
 * consumes at least one byte and does O(1) work apart from copying what it read.
 */
import { AvgCkptError } from '../../errors.js';

export interface PyGlobal {
  readonly kind: 'global';
  readonly module: string;
  readonly name: string;
}
export interface PyList {
  readonly kind: 'list';
  readonly items: PyValue[];
}
export interface PyTuple {
  readonly kind: 'tuple';
  readonly items: readonly PyValue[];
}
export interface PyDict {
  readonly kind: 'dict';
  readonly entries: [PyValue, PyValue][];
  /** Attributes set by BUILD (an OrderedDict's `_metadata`). */
  attrs?: PyValue;
}
/** A call to a global the caller gave no meaning to: inert, its arguments kept only as data. */
export interface PyObject {
  readonly kind: 'object';
  readonly global: PyGlobal;
  readonly args: PyValue;
  state?: PyValue;
}
/** What the caller's hooks return for the calls they understand (tensors, storages). */
export interface PyHost {
  readonly kind: 'host';
  readonly value: unknown;
}
export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyList
  | PyTuple
  | PyDict
  | PyGlobal
  | PyObject
  | PyHost;

export interface PickleHooks {
  /** Meaning of `global(*args)` (REDUCE, NEWOBJ); undefined keeps it an inert PyObject. */
  reduce(global: PyGlobal, args: PyTuple): PyValue | undefined;
  /** BINPERSID / PERSID: what torch's persistent ids (storages) stand for. */
  persistentLoad(pid: PyValue): PyValue;
}

export interface PickleLimits {
  /** Longest string or bytes object. */
  readonly maxString: number;
  /** Most memo entries. */
  readonly maxMemo: number;
  /** Most items on the stack (and most open MARKs). */
  readonly maxStack: number;
  /** Most values created in all (containers and their items). */
  readonly maxValues: number;
}

export const DEFAULT_LIMITS: PickleLimits = {
  maxString: 64 << 20,
  maxMemo: 1 << 22,
  maxStack: 1 << 20,
  maxValues: 1 << 25,
};

/** Raised internally when the bytes end before STOP: the caller may retry with more bytes. */
export class PickleTruncated extends Error {}

const DANGEROUS_MODULES = new Set([
  'os',
  'posix',
  'nt',
  'subprocess',
  'sys',
  'shutil',
  'socket',
  'importlib',
  'pty',
  'runpy',
  'ctypes',
  'multiprocessing',
  'webbrowser',
  'code',
  'codeop',
  'pickle',
  '_pickle',
  'marshal',
  'io',
  '_io',
  'pdb',
  'bdb',
  'timeit',
  'types',
  'commands',
  'popen2',
  '_posixsubprocess',
]);
const DANGEROUS_BUILTINS = new Set([
  'eval',
  'exec',
  'execfile',
  'compile',
  '__import__',
  'open',
  'file',
  'getattr',
  'setattr',
  'delattr',
  'globals',
  'locals',
  'vars',
  'input',
  'raw_input',
  'breakpoint',
  'exit',
  'quit',
  'apply',
  'reload',
  'help',
  'memoryview',
  'super',
  'type',
]);
const DANGEROUS_GLOBALS = new Set([
  'operator.attrgetter',
  'operator.methodcaller',
  'operator.itemgetter',
  'functools.partial',
  'functools.reduce',
]);

/** Why a global may never appear in a checkpoint, or undefined when it is merely unknown. */
export function dangerOf(module: string, name: string): string | undefined {
  const root = module.split('.')[0];
  if (DANGEROUS_MODULES.has(root)) return `module ${root} runs programs or touches files`;
  if ((module === 'builtins' || module === '__builtin__') && DANGEROUS_BUILTINS.has(name))
    return 'it evaluates code or reaches any object';
  if (DANGEROUS_GLOBALS.has(`${module}.${name}`)) return 'it reaches any attribute or calls any function';
  return undefined;
}

export function globalName(g: PyGlobal): string {
  return `${g.module}.${g.name}`;
}

const tuple = (items: readonly PyValue[]): PyTuple => ({ kind: 'tuple', items });

/** Runs a pickle from `start` to its STOP. Returns the value and the position after STOP. */
export function runPickle(
  bytes: Uint8Array,
  file: string,
  hooks: PickleHooks,
  start = 0,
  limits: PickleLimits = DEFAULT_LIMITS,
): { value: PyValue; end: number } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const latin1 = new TextDecoder('latin1');
  const utf8 = new TextDecoder('utf-8', { fatal: false });
  let p = start;
  let stack: PyValue[] = [];
  const marks: PyValue[][] = [];
  const memo = new Map<number, PyValue>();
  let values = 0;

  const bad = (why: string) => new AvgCkptError('invalid-pickle', `corrupt pickle at byte ${p}: ${why}`, { file });
  const need = (n: number) => {
    if (p + n > bytes.byteLength) throw new PickleTruncated();
  };
  const u8 = () => {
    need(1);
    return bytes[p++];
  };
  const take = (n: number) => {
    if (!Number.isSafeInteger(n) || n < 0) throw bad(`length ${n}`);
    if (n > limits.maxString) throw bad(`a string or bytes of ${n} bytes exceeds the ${limits.maxString}-byte limit`);
    need(n);
    p += n;
    return bytes.subarray(p - n, p);
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, p);
    if (end < 0) throw new PickleTruncated();
    if (end - p > limits.maxString) throw bad('a text line exceeds the string limit');
    const s = latin1.decode(bytes.subarray(p, end));
    p = end + 1;
    return s;
  };
  const u32 = () => {
    need(4);
    p += 4;
    return dv.getUint32(p - 4, true);
  };
  const len64 = () => {
    need(8);
    p += 8;
    const v = dv.getBigUint64(p - 8, true);
    if (v > BigInt(limits.maxString))
      throw bad(`a string or bytes of ${v} bytes exceeds the ${limits.maxString}-byte limit`);
    return Number(v);
  };
  const count = (n = 1) => {
    values += n;
    if (values > limits.maxValues) throw bad(`more than ${limits.maxValues} values`);
  };
  const push = (v: PyValue) => {
    if (stack.length >= limits.maxStack) throw bad(`stack deeper than ${limits.maxStack}`);
    count();
    stack.push(v);
  };
  const pop = (): PyValue => {
    if (stack.length === 0) throw bad('pop from an empty stack');
    return stack.pop()!;
  };
  const top = (): PyValue => {
    if (stack.length === 0) throw bad('empty stack');
    return stack[stack.length - 1];
  };
  const popMark = (): PyValue[] => {
    const items = stack;
    const prev = marks.pop();
    if (prev === undefined) throw bad('no MARK');
    stack = prev;
    return items;
  };
  const put = (i: number) => {
    if (!memo.has(i) && memo.size >= limits.maxMemo) throw bad(`more than ${limits.maxMemo} memo entries`);
    memo.set(i, top());
  };
  const get = (i: number) => {
    const v = memo.get(i);
    if (v === undefined) throw bad(`memo entry ${i} was never stored`);
    push(v);
  };
  const makeGlobal = (module: string, name: string): PyGlobal => {
    const danger = dangerOf(module, name);
    if (danger !== undefined) {
      throw new AvgCkptError(
        'unsafe-pickle',
        `refused: the pickle names the global ${module}.${name} (${danger}); nothing was executed`,
        { file },
      );
    }
    return { kind: 'global', module, name };
  };
  const call = (fn: PyValue, args: PyValue): PyValue => {
    if (fn === null || typeof fn !== 'object' || !('kind' in fn) || fn.kind !== 'global')
      throw bad('a call to something that is not a global');
    if (args === null || typeof args !== 'object' || !('kind' in args) || args.kind !== 'tuple')
      throw bad(`arguments to ${globalName(fn)} are not a tuple`);
    return hooks.reduce(fn, args) ?? { kind: 'object', global: fn, args };
  };
  const asDict = (v: PyValue, op: string): PyDict | PyObject => {
    if (v !== null && typeof v === 'object' && 'kind' in v && (v.kind === 'dict' || v.kind === 'object')) return v;
    throw bad(`${op} on something that is not a dict`);
  };
  const setItems = (target: PyValue, flat: PyValue[]) => {
    if (flat.length % 2 !== 0) throw bad('SETITEMS with an odd number of items');
    const d = asDict(target, 'SETITEM');
    if (d.kind === 'object') return; // an inert object's items are not kept
    for (let i = 0; i < flat.length; i += 2) d.entries.push([flat[i], flat[i + 1]]);
  };
  const appendItems = (target: PyValue, items: PyValue[]) => {
    if (target !== null && typeof target === 'object' && 'kind' in target) {
      if (target.kind === 'list') {
        for (const it of items) target.items.push(it);
        return;
      }
      if (target.kind === 'object') return; // e.g. a set or deque subclass: inert
    }
    throw bad('APPEND to something that is not a list');
  };
  const long = (b: Uint8Array): number | bigint => {
    if (b.byteLength === 0) return 0;
    let v = 0n;
    for (let i = b.byteLength - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.byteLength - 1] & 0x80) v -= 1n << BigInt(8 * b.byteLength);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const textInt = (s: string): number | bigint | boolean => {
    const t = s.endsWith('L') ? s.slice(0, -1) : s;
    if (t === '01') return true;
    if (t === '00') return false;
    if (!/^[+-]?\d+$/.test(t)) throw bad(`integer literal ${JSON.stringify(s.slice(0, 40))}`);
    const v = BigInt(t);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const quoted = (s: string): string => {
    const q = s[0];
    if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) throw bad('STRING without quotes');
    return s
      .slice(1, -1)
      .replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, e: string) =>
        e[0] === 'x'
          ? String.fromCharCode(parseInt(e.slice(1), 16))
          : e === 'n'
            ? '\n'
            : e === 't'
              ? '\t'
              : e === 'r'
                ? '\r'
                : e,
      );
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) throw bad('pickle protocol newer than 5');
        break;
      case 0x95: // FRAME: a length prefix only, the ops follow inline
        need(8);
        p += 8;
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || marks.length !== 0) throw bad(`STOP with ${stack.length} values on the stack`);
        return { value: stack[0], end: p };
      case 0x28: // MARK
        if (marks.length >= limits.maxStack) throw bad('too many MARKs');
        marks.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        if (stack.length === 0 && marks.length > 0)
          popMark(); // POP of a MARK (pickletools allows it)
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x4a: // BININT
        need(4);
        p += 4;
        push(dv.getInt32(p - 4, true));
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        need(2);
        p += 2;
        push(dv.getUint16(p - 2, true));
        break;
      case 0x8a: // LONG1
        push(long(take(u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = u32();
        push(long(take(n)));
        break;
      }
      case 0x49: // INT
        push(textInt(line()));
        break;
      case 0x4c: // LONG
        push(textInt(line()));
        break;
      case 0x46: {
        // FLOAT
        const v = Number(line());
        if (Number.isNaN(v)) throw bad('FLOAT literal');
        push(v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        p += 8;
        push(dv.getFloat64(p - 8, false));
        break;
      case 0x58: // BINUNICODE
        push(utf8.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(utf8.decode(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        push(utf8.decode(take(len64())));
        break;
      case 0x56: // UNICODE (raw-unicode-escape)
        push(line().replace(/\\u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))));
        break;
      case 0x53: // STRING
        push(quoted(line()));
        break;
      case 0x54: // BINSTRING
        push(latin1.decode(take(u32())));
        break;
      case 0x55: // SHORT_BINSTRING
        push(latin1.decode(take(u8())));
        break;
      case 0x42: // BINBYTES
        push(take(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        push(take(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        push(take(len64()).slice());
        break;
      case 0x97: // NEXT_BUFFER
      case 0x98: // READONLY_BUFFER
        throw bad('out-of-band buffers (pickle protocol 5 buffers) are not used by torch.save');
      case 0x29: // EMPTY_TUPLE
        push(tuple([]));
        break;
      case 0x85: // TUPLE1
        push(tuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        push(tuple([a, b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        push(tuple([a, b, c]));
        break;
      }
      case 0x74: // TUPLE
        push(tuple(popMark()));
        break;
      case 0x5d: // EMPTY_LIST
        push({ kind: 'list', items: [] });
        break;
      case 0x6c: // LIST
        push({ kind: 'list', items: popMark() });
        break;
      case 0x7d: // EMPTY_DICT
        push({ kind: 'dict', entries: [] });
        break;
      case 0x64: {
        // DICT
        const d: PyDict = { kind: 'dict', entries: [] };
        setItems(d, popMark());
        push(d);
        break;
      }
      case 0x8f: // EMPTY_SET
        push({ kind: 'list', items: [] });
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x91: // FROZENSET
        push({ kind: 'list', items: popMark() });
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x70: // PUT
        put(Number(textInt(line())));
        break;
      case 0x71: // BINPUT
        put(u8());
        break;
      case 0x72: // LONG_BINPUT
        put(u32());
        break;
      case 0x94: // MEMOIZE
        put(memo.size);
        break;
      case 0x67: // GET
        get(Number(textInt(line())));
        break;
      case 0x68: // BINGET
        get(u8());
        break;
      case 0x6a: // LONG_BINGET
        get(u32());
        break;
      case 0x63: {
        // GLOBAL
        const module = line();
        push(makeGlobal(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw bad('STACK_GLOBAL of non-strings');
        push(makeGlobal(module, name));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        push(call(fn, args));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop();
        push(call(cls, args));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        pop(); // keyword arguments: kept by no known call
        const args = pop();
        const cls = pop();
        push(call(cls, args));
        break;
      }
      case 0x69: {
        // INST
        const module = line();
        const g = makeGlobal(module, line());
        push(call(g, tuple(popMark())));
        break;
      }
      case 0x6f: {
        // OBJ
        const items = popMark();
        if (items.length === 0) throw bad('OBJ without a class');
        push(call(items[0], tuple(items.slice(1))));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const target = top();
        if (target !== null && typeof target === 'object' && 'kind' in target) {
          if (target.kind === 'dict') target.attrs = state;
          else if (target.kind === 'object') target.state = state;
          // BUILD on a tensor (torch 1.x parameters) sets Python attributes: nothing to keep
          else if (target.kind !== 'host') throw bad(`BUILD on a ${target.kind}`);
        } else throw bad('BUILD on a plain value');
        break;
      }
      case 0x51: // BINPERSID
        push(hooks.persistentLoad(pop()));
        break;
      case 0x50: // PERSID
        push(hooks.persistentLoad(line()));
        break;
      case 0x82: // EXT1
      case 0x83: // EXT2
      case 0x84: // EXT4
        throw new AvgCkptError(
          'unsafe-pickle',
          'refused: the pickle uses the copyreg extension registry (EXT opcodes), which torch.save never writes',
          { file },
        );
      default:
        throw bad(`unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }
}
