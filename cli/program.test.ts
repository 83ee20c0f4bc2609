import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildProgram, invokedCommand } from './program.js';

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

  describe('only the command that runs is defined in full', () => {
    const argv = (...args: string[]) => ['node', 'orca', ...args];

    it('finds the command past the global options and their values', () => {
      expect(invokedCommand(argv('status'))).toBe('status');
      expect(invokedCommand(argv('--api', 'http://a:6880', '--data-dir', '/d', 'status', '-o', 'json'))).toBe('status');
      expect(invokedCommand(argv('--token=t', '--api=http://a', 'events', '-f'))).toBe('events');
      expect(invokedCommand(argv('--api', 'status', 'nodes'))).toBe('nodes'); // "status" is --api's value here
      expect(invokedCommand(argv('token', 'create'))).toBe('token');
    });

    it('is unsure, and so defines everything, for help, --version, no command or an unknown option first', () => {
      for (const a of [[], ['help', 'status'], ['-h'], ['--help', 'status'], ['-V'], ['--apix', 'u', 'status'], ['--api']]) expect(invokedCommand(argv(...a)), a.join(' ')).toBeUndefined();
      const all = buildProgram(argv('help', 'server'));
      expect(all.commands.find((c) => c.name() === 'server')!.options.length).toBeGreaterThan(20);
    });

    it('`orca status` builds status in full and the others by name and description only', () => {
      const p = buildProgram(argv('--api', 'http://a', 'status'));
      const full = buildProgram();
      expect(p.commands.map((c) => [c.name(), c.description()])).toEqual(full.commands.map((c) => [c.name(), c.description()]));
      const cmd = (prog: typeof p, name: string) => prog.commands.find((c) => c.name() === name)!;
      expect(cmd(p, 'status').helpInformation()).toBe(cmd(full, 'status').helpInformation());
      expect(cmd(p, 'server').options).toEqual([]);
      expect(cmd(p, 'token').commands).toEqual([]);
    });

    it('a command defined in full parses as before: `orca nodes rm n2`, `orca token create --ttl 1h`', async () => {
      const calls: string[] = [];
      const p = buildProgram(argv('nodes', 'rm', 'n2'));
      p.commands.find((c) => c.name() === 'nodes')!.commands.find((c) => c.name() === 'rm')!.action((n: string) => void calls.push(`rm ${n}`));
      await p.parseAsync(argv('nodes', 'rm', 'n2'));
      const t = buildProgram(argv('token', 'create', '--ttl', '1h'));
      t.commands.find((c) => c.name() === 'token')!.commands.find((c) => c.name() === 'create')!.action((o: { ttl: string }) => void calls.push(`create ${o.ttl}`));
      await t.parseAsync(argv('token', 'create', '--ttl', '1h'));
      expect(calls).toEqual(['rm n2', 'create 1h']);
    });
  });
});
