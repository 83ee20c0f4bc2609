import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildProgram } from './program.js';

const READ_COMMANDS = ['status', 'nodes', 'history', 'events'];

describe('the orca program', () => {
  const program = buildProgram();
  const sub = (name: string) => {
    const c = program.commands.find((x) => x.name() === name);
    if (!c) throw new Error(`no command ${name}`);
    return c;
  };

  it('every subcommand’s help shows the global flags', () => {
    expect(program.commands.length).toBeGreaterThan(10);
    for (const c of program.commands) {
      const help = c.helpInformation();
      for (const flag of ['--api <url>', '--token <token>', '--data-dir <dir>']) expect(help, `orca ${c.name()} --help`).toContain(flag);
    }
  });

  it('every read command, apply and diff take -o table|json under the same name', () => {
    for (const name of [...READ_COMMANDS, 'apply', 'diff']) {
      const opt = sub(name).options.find((o) => o.long === '--output');
      expect(opt, name).toBeDefined();
      expect(opt!.short).toBe('-o');
      expect(opt!.argChoices).toEqual(['table', 'json']);
      expect(opt!.defaultValue).toBe('table');
    }
    expect(sub('events').helpInformation()).toMatch(/JSON Lines/);
  });

  it('`orca nodes` lists and `orca nodes rm NODE` removes: the subcommand does not swallow the list, nor the list the subcommand', async () => {
    const calls: string[] = [];
    for (const argv of [['nodes', '-o', 'json'], ['nodes', 'rm', 'n2'], ['nodes']]) {
      const p = buildProgram();
      const nodes = p.commands.find((c) => c.name() === 'nodes')!;
      nodes.action((o: { output: string }) => void calls.push(`ls ${o.output}`));
      nodes.commands.find((c) => c.name() === 'rm')!.action((n: string) => void calls.push(`rm ${n}`));
      await p.parseAsync(['node', 'orca', ...argv]);
    }
    expect(calls).toEqual(['ls json', 'rm n2', 'ls table']);
  });

  it('--version is the version of package.json', () => {
    const { version } = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { version: string };
    expect(program.version()).toBe(version);
    expect(program.helpInformation()).toContain('-V, --version');
  });
});
