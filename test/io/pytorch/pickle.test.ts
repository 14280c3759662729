/**
 * The pickle VM on pickles written by CPython's own pickle module (protocols 0 to 5, bytes
 * captured once with python3 and pasted here), on torch's safety cases, and on its limits.
 */
import { describe, expect, it } from 'vitest';
import { AvgCkptError } from '../../../src/errors.js';
import { DEFAULT_LIMITS, runPickle, type PickleHooks, type PyValue } from '../../../src/io/pytorch/pickle.js';
import { torchHooks } from '../../../src/io/pytorch/torch-pickle.js';

const inert: PickleHooks = { reduce: () => undefined, persistentLoad: () => null };
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const run = (bytes: Uint8Array, hooks: PickleHooks = torchHooks('f.pt', new Map()), limits = DEFAULT_LIMITS) =>
  runPickle(bytes, 'f.pt', hooks, 0, limits).value;

/** A PyValue as plain JSON-able data, for comparing with what Python pickled. */
function plain(v: PyValue): unknown {
  if (v === null || typeof v !== 'object') return typeof v === 'bigint' ? `${v}n` : v;
  if (v instanceof Uint8Array) return { bytes: [...v] };
  switch (v.kind) {
    case 'dict':
      return Object.fromEntries(v.entries.map(([k, x]) => [String(k), plain(x)]));
    case 'list':
      return v.items.map(plain);
    case 'tuple':
      return { tuple: v.items.map(plain) };
    case 'object':
      return { object: `${v.global.module}.${v.global.name}` };
    default:
      return v.kind;
  }
}

// pickle.dumps({'a': [1, -2, 3.5, None, True, False], 'b': (1, 2**40, -2**70), 'c': 'héllo', 'd': b'\x00\x01',
//               'e': {'x': (), 'y': []}, 'f': collections.OrderedDict([('k', 1)])}, protocol=p)
const PY: Record<number, string> = {
  0: '286470300a56610a70310a286c70320a49310a61492d320a6146332e350a614e614930310a614930300a617356620a70330a2849310a4c313039393531313632373737364c0a4c2d313138303539313632303731373431313330333432344c0a7470340a7356630a70350a5668e96c6c6f0a70360a7356640a70370a635f636f646563730a656e636f64650a70380a28565c7530303030010a70390a566c6174696e310a7031300a747031310a527031320a7356650a7031330a28647031340a56780a7031350a28747356790a7031360a286c7031370a737356660a7031380a63636f6c6c656374696f6e730a4f726465726564446963740a7031390a2874527032300a566b0a7032310a49310a73732e',
  1: '7d71002858010000006171015d7102284b014afeffffff47400c0000000000004e4930310a4930300a655801000000627103284b014c313039393531313632373737364c0a4c2d313138303539313632303731373431313330333432344c0a7471045801000000637105580600000068c3a96c6c6f71065801000000647107635f636f646563730a656e636f64650a71082858020000000001710958060000006c6174696e31710a74710b52710c580100000065710d7d710e28580100000078710f2958010000007971105d711175580100000066711263636f6c6c656374696f6e730a4f726465726564446963740a71132952711458010000006b71154b0173752e',
  2: '80027d71002858010000006171015d7102284b014afeffffff47400c0000000000004e88896558010000006271034b018a060000000000018a090000000000000000c08771045801000000637105580600000068c3a96c6c6f71065801000000647107635f636f646563730a656e636f64650a710858020000000001710958060000006c6174696e31710a86710b52710c580100000065710d7d710e28580100000078710f2958010000007971105d711175580100000066711263636f6c6c656374696f6e730a4f726465726564446963740a71132952711458010000006b71154b0173752e',
  3: '80037d71002858010000006171015d7102284b014afeffffff47400c0000000000004e88896558010000006271034b018a060000000000018a090000000000000000c08771045801000000637105580600000068c3a96c6c6f7106580100000064710743020001710858010000006571097d710a28580100000078710b29580100000079710c5d710d75580100000066710e63636f6c6c656374696f6e730a4f726465726564446963740a710f2952711058010000006b71114b0173752e',
  4: '80049590000000000000007d94288c0161945d94284b014afeffffff47400c0000000000004e8889658c0162944b018a060000000000018a090000000000000000c087948c0163948c0668c3a96c6c6f948c01649443020001948c0165947d94288c017894298c0179945d94758c0166948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944b0173752e',
  5: '80059590000000000000007d94288c0161945d94284b014afeffffff47400c0000000000004e8889658c0162944b018a060000000000018a090000000000000000c087948c0163948c0668c3a96c6c6f948c01649443020001948c0165947d94288c017894298c0179945d94758c0166948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944b0173752e',
};
const EXPECTED = {
  a: [1, -2, 3.5, null, true, false],
  b: { tuple: [1, 2 ** 40, `${-(2n ** 70n)}n`] },
  c: 'héllo',
  d: { bytes: [0, 1] },
  e: { x: { tuple: [] }, y: [] },
  f: { k: 1 },
};

describe('pickle VM', () => {
  for (const p of [0, 1, 2, 3, 4, 5]) {
    it(`reads CPython's protocol ${p}`, () => expect(plain(run(hex(PY[p])))).toEqual(EXPECTED));
  }

  it('keeps unknown calls as inert objects, never calling them', () => {
    // pickle.dumps(argparse.Namespace(lr=0.1), protocol=2)
    const v = run(
      hex('80026361726770617273650a4e616d6573706163650a7100298171017d710258020000006c727103473fb999999999999a73622e'),
    );
    expect(plain(v)).toEqual({ object: 'argparse.Namespace' });
    expect((v as { state: PyValue }).state).toMatchObject({ kind: 'dict', entries: [['lr', 0.1]] });
  });

  const refused = [
    // pickle.dumps of an object whose __reduce__ is (os.system, ('touch PWNED',)), protocol 2 and 4 (STACK_GLOBAL)
    [
      'posix.system via GLOBAL',
      '800263706f7369780a73797374656d0a7100580b000000746f7563682050574e454471018571025271032e',
      'posix.system',
    ],
    [
      'builtins.eval via STACK_GLOBAL',
      '8004952d000000000000008c086275696c74696e73948c046576616c9493948c116f70656e282750574e4544272c2777272994859452942e',
      'builtins.eval',
    ],
    ['subprocess.Popen', '80026373756270726f636573730a506f70656e0a2e', 'subprocess.Popen'],
    ['builtins.__import__', '8002636275696c74696e730a5f5f696d706f72745f5f0a2e', 'builtins.__import__'],
    ['nt.system', '8002636e740a73797374656d0a2e', 'nt.system'],
  ] as const;
  for (const [what, bytes, global] of refused) {
    it(`refuses ${what} the moment it is named`, () => {
      let err: unknown;
      try {
        run(hex(bytes), inert);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(AvgCkptError);
      expect((err as AvgCkptError).code).toBe('unsafe-pickle');
      expect((err as AvgCkptError).oneLine()).toContain(`f.pt: refused: the pickle names the global ${global}`);
    });
  }

  it('refuses copyreg extensions and out-of-band buffers', () => {
    expect(() => run(hex('8002820a2e'), inert)).toThrow(/extension registry/);
    expect(() => run(hex('8005972e'), inert)).toThrow(/out-of-band/);
  });

  it('bounds strings, memo, stack and values', () => {
    const small = { maxString: 8, maxMemo: 2, maxStack: 4, maxValues: 10 };
    expect(() => run(hex(`80025810000000${'61'.repeat(16)}2e`), inert, small)).toThrow(/exceeds the 8-byte limit/);
    expect(() => run(hex('80024e71004e71014e71022e'), inert, small)).toThrow(/more than 2 memo entries/);
    expect(() => run(hex('80024e4e4e4e4e2e'), inert, small)).toThrow(/stack deeper than 4/);
    expect(() => run(hex(`80025d${'4e61'.repeat(12)}2e`), inert, small)).toThrow(/more than 10 values/);
    // BINUNICODE8 claiming 2^62 bytes is refused before anything is allocated
    expect(() => run(hex('80048d000000000000004041'), inert)).toThrow(/exceeds/);
  });

  it('a self-referencing list (cycles via the memo) does not hang', () => {
    // l = []; l.append(l); pickle.dumps(l, 2)
    const v = run(hex('80025d71006800612e'), inert) as { items: unknown[] };
    expect(v.items[0]).toBe(v);
  });
});
