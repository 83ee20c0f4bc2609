import { describe, expect, it } from 'vitest';
import { Command, CommanderError } from 'commander';
import { jsonLine, outputOption, parseFormat } from './format.js';

/** A one-command program with the option, parsed from args; resolves with the option's value or the commander error. */
function parse(args: string[], aliases?: Record<string, 'table' | 'json'>): string | CommanderError {
  const cmd = new Command('t').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  cmd.addOption(outputOption('x', aliases));
  try {
    cmd.parse(args, { from: 'user' });
    return cmd.opts().output as string;
  } catch (err) {
    return err as CommanderError;
  }
}

describe('output formats', () => {
  it('table is the default; table and json are accepted by name', () => {
    expect(parse([])).toBe('table');
    expect(parse(['-o', 'json'])).toBe('json');
    expect(parse(['--output', 'table'])).toBe('table');
  });

  it('anything else is a usage error naming the allowed formats', () => {
    const err = parse(['-o', 'yaml']);
    expect(err).toBeInstanceOf(CommanderError);
    expect((err as CommanderError).code).toBe('commander.invalidArgument');
    expect((err as CommanderError).message).toContain('Allowed choices are table, json.');
    expect(parse(['-o', 'text'])).toBeInstanceOf(CommanderError);
  });

  it('an alias maps onto its format (events keeps text for table)', () => {
    expect(parse(['-o', 'text'], { text: 'table' })).toBe('table');
    expect(parseFormat('text', { text: 'table' })).toBe('table');
    expect(() => parseFormat('TEXT', { text: 'table' })).toThrow(/table, json/);
  });

  it('help lists the documented formats only', () => {
    const help = new Command('t').addOption(outputOption('JSON Lines', { text: 'table' })).helpInformation().replace(/\s+/g, ' ');
    expect(help).toContain('choices: "table", "json"');
    expect(help).toContain('JSON Lines');
    expect(help).not.toContain('"text"');
  });

  it('jsonLine is one document on one line', () => {
    const s = jsonLine({ a: 'x\ny', b: [1, 2] });
    expect(s.endsWith('\n')).toBe(true);
    expect(s.slice(0, -1)).not.toContain('\n');
    expect(JSON.parse(s)).toEqual({ a: 'x\ny', b: [1, 2] });
  });
});
