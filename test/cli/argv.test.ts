/**
 * argv -> options, per command, as a table (as changesets tests its CLI): each row is a command
 * line and the options the command function receives, written out by hand. A renamed option, a
 * dropped flag or a changed default shows up here without running a job.
 */
import yargs, { type ArgumentsCamelCase, type CommandModule } from 'yargs';
import { describe, expect, it } from 'vitest';
import { curveCommand, curveRequest } from '../../src/cli/curve.js';
import { inspectCommand, inspectRequest } from '../../src/cli/inspect.js';
import { mergeCommand, mergeRequest } from '../../src/cli/merge.js';
import { sweepRequest, sweepWindowCommand } from '../../src/cli/sweep-window.js';

/** The arguments yargs hands the command's handler for `argv` (the handler itself does not run). */
async function parse<U>(command: CommandModule<object, U>, argv: string[]): Promise<ArgumentsCamelCase<U>> {
  let got: ArgumentsCamelCase<U> | undefined;
  await yargs(argv)
    .command({ ...command, handler: (a) => void (got = a) })
    .strict()
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    })
    .parseAsync();
  if (got === undefined) throw new Error(`no command ran for ${argv.join(' ')}`);
  return got;
}

const NO_SELECTION = { fromStep: undefined, toStep: undefined, every: undefined, last: undefined };

describe('merge: argv -> options', () => {
  const base = { force: false, dtype: undefined, shardSize: undefined, allowNonfinite: false };
  it.each([
    [['merge', 'run'], { inputs: ['run'], dryRun: false }, { method: { method: 'uniform' }, select: NO_SELECTION }],
    [
      ['merge', 'a', 'b', '--method', 'lawa', '--k', '4', '--last', '10', '--dry-run'],
      { inputs: ['a', 'b'], dryRun: true },
      { method: { method: 'lawa', k: 4 }, select: { ...NO_SELECTION, last: 10 }, output: undefined },
    ],
    [
      [
        'merge',
        'run',
        '-m',
        'ema',
        '--decay-per-step',
        '0.999',
        '--every',
        '2',
        '--from-step',
        '100',
        '-o',
        'x/',
        '--dtype',
        'bf16',
        '--shard-size',
        '2GiB',
        '--force',
      ],
      { inputs: ['run'], dryRun: false },
      {
        method: { method: 'ema', decayPerStep: 0.999 },
        select: { ...NO_SELECTION, every: 2, fromStep: 100 },
        output: 'x/',
        dtype: 'BF16',
        shardSize: 2 * 1024 ** 3,
        force: true,
      },
    ],
    [
      [
        'merge',
        'run',
        '--method',
        'phema',
        '--sigma-rel',
        '0.05',
        '--to-step',
        '900',
        '-o',
        'p.safetensors',
        '--allow-nonfinite',
      ],
      { inputs: ['run'], dryRun: false },
      {
        method: { method: 'phema', sigmaRel: 0.05 },
        select: { ...NO_SELECTION, toStep: 900 },
        output: 'p.safetensors',
        allowNonfinite: true,
      },
    ],
    [
      ['merge', 'run', '--method', 'weights', '--weights', '1,0,2', '-o', 'w.safetensors', '--shard-size', '500MB'],
      { inputs: ['run'], dryRun: false },
      {
        method: { method: 'weights', weights: '1,0,2' },
        select: NO_SELECTION,
        output: 'w.safetensors',
        shardSize: 500e6,
      },
    ],
  ] as const)('%j', async (argv, top, options) => {
    const words: string[] = [...argv];
    const r = mergeRequest(
      await parse(mergeCommand, [
        ...words,
        ...(words.includes('-o') || words.includes('--dry-run') ? [] : ['-o', 'out.safetensors']),
      ]),
    );
    expect({ inputs: r.inputs, dryRun: r.dryRun }).toEqual(top);
    expect(r.options).toEqual({ ...base, output: 'out.safetensors', ...options });
  });

  it('without -o and without --dry-run: a usage error', async () => {
    const a = await parse(mergeCommand, ['merge', 'run', '--method', 'lawa']);
    expect(() => mergeRequest(a)).toThrow(/merge needs -o OUTPUT/);
  });
});

describe('inspect: argv -> options', () => {
  it.each([
    [['inspect', 'run'], { inputs: ['run'], selection: NO_SELECTION, onnx: undefined, maps: undefined }],
    [
      ['inspect', 'r1', 'r2', '--last', '5', '--onnx', 'm.onnx', '--map', 'a=>b', '--map', 'c=>d'],
      { inputs: ['r1', 'r2'], selection: { ...NO_SELECTION, last: 5 }, onnx: 'm.onnx', maps: ['a=>b', 'c=>d'] },
    ],
  ] as const)('%j', async (argv, expected) => {
    expect(inspectRequest(await parse(inspectCommand, [...argv]))).toEqual(expected);
  });
});

/** The evaluator options every scoring command builds, for `--onnx m.onnx --data val/` and defaults. */
const SCORING = {
  onnx: 'm.onnx',
  data: { dataDir: 'val/', inputs: {}, labels: undefined, batchSize: 256 },
  metric: undefined,
  direction: undefined,
  maps: undefined,
  allowUnmapped: false,
  engine: 'auto',
  memoryBudget: undefined,
  device: 'auto',
};
const GRID_NONE = {
  windows: undefined,
  ema: undefined,
  emaPerStep: undefined,
  uniformFrom: undefined,
  phema: undefined,
};

describe('sweep-window: argv -> options', () => {
  it.each([
    [
      ['sweep-window', 'run', '--onnx', 'm.onnx', '--data', 'val/'],
      {
        ...SCORING,
        inputs: ['run'],
        selection: NO_SELECTION,
        grid: GRID_NONE,
        greedy: undefined,
        writeBest: undefined,
        emitOnnx: undefined,
        outputs: {},
      },
    ],
    [
      [
        'sweep-window',
        'run',
        '--onnx',
        'm.onnx',
        '--data',
        'val/',
        '--windows',
        '2,4',
        '--windows',
        '8',
        '--ema',
        '0.9',
        '--ema-per-step',
        '0.999',
        '--uniform-from',
        '500',
        '--phema',
        '0.05,0.1',
        '--greedy',
        '10',
        '--holdout',
        '0.5',
        '--last',
        '20',
      ],
      {
        ...SCORING,
        inputs: ['run'],
        selection: { ...NO_SELECTION, last: 20 },
        grid: { windows: [2, 4, 8], ema: [0.9], emaPerStep: [0.999], uniformFrom: [500], phema: [0.05, 0.1] },
        greedy: 10,
        holdout: 0.5,
        writeBest: undefined,
        emitOnnx: undefined,
        outputs: {},
      },
    ],
    [
      [
        'sweep-window',
        'run',
        '--onnx',
        'm.onnx',
        '--input',
        'x=a.npy',
        '--input',
        'mask=b.npy',
        '--labels',
        'y.npy',
        '--batch-size',
        '64',
        '--metric',
        'accuracy',
        '--maximize',
        '--map',
        'p=>q',
        '--allow-unmapped',
        '--engine',
        'materialize',
        '--memory-budget',
        '8GB',
        '--device',
        'cpu',
        '--write-best',
        'best/',
        '--dtype',
        'f16',
        '--emit-onnx',
        'b.onnx',
        '--force',
        '--report',
        'r.json',
        '--plot',
        'p.svg',
        '--html',
        'p.html',
        '--threads',
        '3',
      ],
      {
        onnx: 'm.onnx',
        data: { dataDir: undefined, inputs: { x: 'a.npy', mask: 'b.npy' }, labels: 'y.npy', batchSize: 64 },
        metric: 'accuracy',
        direction: 'max',
        maps: ['p=>q'],
        allowUnmapped: true,
        engine: 'materialize',
        memoryBudget: 8e9,
        device: 'cpu',
        threads: 3,
        inputs: ['run'],
        selection: NO_SELECTION,
        grid: GRID_NONE,
        greedy: undefined,
        writeBest: { output: 'best/', force: true, dtype: 'F16' },
        emitOnnx: { output: 'b.onnx', force: true },
        outputs: { report: 'r.json', plot: 'p.svg', html: 'p.html' },
      },
    ],
  ] as const)('%j', async (argv, expected) => {
    const r = sweepRequest(await parse(sweepWindowCommand, [...argv]));
    expect({
      ...r,
      outputs: Object.fromEntries(Object.entries(r.outputs ?? {}).filter(([, v]) => v !== undefined)),
    }).toEqual(expected);
  });
});

describe('curve: argv -> options', () => {
  it.each([
    [
      ['curve', 'run', '--onnx', 'm.onnx', '--data', 'val/', '--window', '5,10', '--ema', '0.9'],
      {
        ...SCORING,
        inputs: ['run'],
        selection: { fromStep: undefined, toStep: undefined },
        averages: { windows: [5, 10], ema: [0.9] },
        every: undefined,
        target: undefined,
      },
    ],
    [
      [
        'curve',
        'run',
        '--onnx',
        'm.onnx',
        '--data',
        'val/',
        '--window',
        '20',
        '--every',
        '5',
        '--from-step',
        '400',
        '--to-step',
        '1000',
        '--target',
        '3.28',
        '--minimize',
        '--threads',
        '2',
      ],
      {
        ...SCORING,
        direction: 'min',
        threads: 2,
        inputs: ['run'],
        selection: { fromStep: 400, toStep: 1000 },
        averages: { windows: [20], ema: undefined },
        every: 5,
        target: 3.28,
      },
    ],
  ] as const)('%j', async (argv, expected) => {
    const { outputs, ...r } = curveRequest(await parse(curveCommand, [...argv]));
    expect(r).toEqual(expected);
    expect(outputs).toEqual({ report: undefined, plot: undefined, html: undefined });
  });
});
