/**
 * `sweep-window --plot --html` through the CLI on digits-mlp: the chart has a line per family, and
 * the page names the winner the oracle expects (lawa-8 has the lowest loss of these candidates,
 * `lawa_end` in fixtures/runs/oracle.json) with a command that writes it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XMLValidator } from 'fast-xml-parser';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

const FIX = 'fixtures/runs/digits-mlp';
const dir = mkdtempSync(join(tmpdir(), 'avg-ckpt-sweep-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sweep-window --plot --html', () => {
  it('writes the chart and the page', async () => {
    const plot = join(dir, 'sweep.svg');
    const html = join(dir, 'sweep.html');
    const { code } = await runCli(
      [
        'sweep-window',
        `${FIX}/run`,
        '--onnx',
        `${FIX}/model.onnx`,
        '--input',
        `input=${FIX}/val_input.npy`,
        '--labels',
        `${FIX}/val_labels.npy`,
        '--device',
        'cpu',
        '--windows',
        '2,8,60',
        '--ema',
        '0.9',
        '--last',
        '60',
        '--plot',
        plot,
        '--html',
        html,
      ],
      { inProcess: true },
    );
    expect(code).toBe(0);
    const svg = readFileSync(plot, 'utf8');
    expect(XMLValidator.validate(svg)).toBe(true);
    expect(svg.match(/aria-roledescription="line mark"/g)).toHaveLength(2); // LAWA and EMA panels
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('<tr class="mark"><td>lawa-8</td>');
    expect(page).toContain(
      `<pre><code>avg-ckpt merge ${FIX}/run --last 60 --method lawa --k 8 -o lawa-8.safetensors</code></pre>`,
    );
  });
});
