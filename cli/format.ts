import { InvalidArgumentError, Option } from 'commander';

/** The output formats of every read command (and of apply and diff). */
export const FORMATS = ['table', 'json'] as const;
export type Format = (typeof FORMATS)[number];

/**
 * Parses `-o FORMAT`. `aliases` maps accepted but undocumented names onto a format (events
 * keeps `text`, its name before every command said `table`). Anything else is a usage error
 * naming the allowed formats.
 */
export function parseFormat(value: string, aliases: Readonly<Record<string, Format>> = {}): Format {
  const v = aliases[value] ?? value;
  if ((FORMATS as readonly string[]).includes(v)) return v as Format;
  throw new InvalidArgumentError(`Allowed choices are ${FORMATS.join(', ')}.`);
}

/** `-o, --output <format>`: table (default) or json; `json` describes what JSON means here. */
export function outputOption(json = 'one JSON document', aliases: Readonly<Record<string, Format>> = {}): Option {
  const opt = new Option('-o, --output <format>', `output format (json: ${json})`).default('table');
  // choices() lists the formats in help; argParser (set after it) also accepts the aliases.
  return opt.choices([...FORMATS]).argParser((v: string) => parseFormat(v, aliases));
}

/** One JSON document on one line: what every `-o json` prints (JSON Lines for streams). */
export const jsonLine = (value: unknown): string => JSON.stringify(value) + '\n';
