import { afterAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadServerConfig } from '../config.js';
import { ALERT_KINDS, parseAlertConfig } from './config.js';
import { TempDirs } from '../../test/tmp.js';

const temp = new TempDirs();
afterAll(() => temp.removeAll());

async function configFile(text: string): Promise<string> {
  const dir = await temp.make('orca-alert-config-');
  const p = join(dir, 'cluster.toml');
  await writeFile(p, text);
  return p;
}

async function errorsOf(text: string): Promise<string[]> {
  const config = await configFile(text);
  const r = await loadServerConfig({ config, dataDir: '/tmp/x', nodeName: 'n1' });
  if (r.ok) throw new Error('expected errors');
  return r.errors.map((e) => e.replace(config, 'cluster.toml'));
}

describe('[[alert]] in cluster.toml', () => {
  it('reads several webhooks with their kinds and headers; on left out means every kind', async () => {
    const config = await configFile(
      [
        '[[alert]]',
        'webhook = "https://hooks.example.com/orca"',
        'on = ["crashloop", "node-down"]',
        'headers = { Authorization = "Bearer s3cret" }',
        '',
        '[[alert]]',
        'webhook = "http://127.0.0.1:9000/alerts"',
      ].join('\n'),
    );
    const r = await loadServerConfig({ config, dataDir: '/tmp/x', nodeName: 'n1' });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.alerts).toEqual([
      { name: 'alert[0]', url: 'https://hooks.example.com/orca', kinds: ['crashloop', 'node-down'], headers: { Authorization: 'Bearer s3cret' } },
      { name: 'alert[1]', url: 'http://127.0.0.1:9000/alerts', kinds: [...ALERT_KINDS], headers: {} },
    ]);
  });

  it('has no alerts without [[alert]]', async () => {
    const r = await loadServerConfig({ config: await configFile('cluster_id = "c1"\n'), dataDir: '/tmp/x', nodeName: 'n1' });
    expect(r.ok && r.value.alerts).toBeUndefined();
  });

  it('refuses a webhook that is not http or https, naming alert[i].webhook', async () => {
    const errors = await errorsOf(['[[alert]]', 'webhook = "http://ok.example/"', '[[alert]]', 'webhook = "ftp://files.example/x"'].join('\n'));
    expect(errors).toEqual(['cluster.toml: alert[1].webhook: "ftp://files.example/x": only http:// and https:// webhooks are supported, not ftp://']);
  });

  it('refuses a missing webhook, a non-URL and a non-string', async () => {
    const errors = await errorsOf(['[[alert]]', 'on = ["oom"]', '[[alert]]', 'webhook = "not a url"', '[[alert]]', 'webhook = 42'].join('\n'));
    expect(errors).toEqual([
      'cluster.toml: alert[0].webhook: is required: the URL alerts are POSTed to (http:// or https://)',
      'cluster.toml: alert[1].webhook: "not a url" is not a URL; expected http://HOST[:PORT]/PATH or https://…',
      'cluster.toml: alert[2].webhook: must be a URL string, got 42',
    ]);
  });

  it('refuses an unknown kind, naming it and listing the valid ones', async () => {
    const errors = await errorsOf(['[[alert]]', 'webhook = "http://127.0.0.1:9/"', 'on = ["crashloop", "crash-loop"]'].join('\n'));
    expect(errors).toEqual([`cluster.toml: alert[0].on: unknown kind "crash-loop"; valid kinds: crashloop, rollout-failed, oom, node-unreachable, node-down, cert-failed`]);
  });

  it('refuses an empty on, an unknown key, and a bad header without showing its value', async () => {
    const errors = await errorsOf(
      ['[[alert]]', 'webhook = "http://127.0.0.1:9/"', 'on = []', 'retries = 3', 'headers = { "Content-Type" = "text/plain", "X-Token" = "abc\\r\\nEvil: 1", "bad name" = "x" }'].join('\n'),
    );
    expect(errors).toEqual([
      'cluster.toml: alert[0]: unknown key "retries" (allowed: webhook, on, headers)',
      'cluster.toml: alert[0].on: is empty; list at least one kind, or leave "on" out for all of them',
      'cluster.toml: alert[0].headers.Content-Type: is set by Orca and cannot be configured',
      'cluster.toml: alert[0].headers.X-Token: must not hold control characters (line breaks included) or characters beyond Latin-1',
      'cluster.toml: alert[0].headers.bad name: not a valid HTTP header name',
    ]);
    expect(errors.join('\n')).not.toContain('Evil');
  });

  it('refuses alert as a plain table and too many tables', () => {
    const errors: string[] = [];
    expect(parseAlertConfig({ webhook: 'http://x/' }, 'c.toml', errors)).toEqual([]);
    expect(errors).toEqual(['c.toml: alert: must be [[alert]] tables']);
    const many: string[] = [];
    parseAlertConfig(Array.from({ length: 17 }, () => ({ webhook: 'http://x/' })), 'c.toml', many);
    expect(many).toEqual(['c.toml: alert: at most 16 [[alert]] tables, got 17']);
  });
});
