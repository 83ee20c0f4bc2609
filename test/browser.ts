/**
 * Chromium for the dashboard's browser tests and bench: Debian's `chromium` (scripts/ensure-chromium.sh
 * installs it) driven by playwright-core, which downloads no browser of its own.
 */
import { execFileSync } from 'node:child_process';
import { chromium, type Browser, type Page } from 'playwright-core';

/** The path of the `chromium` on PATH (throws, naming the script that installs it, when none). */
export function chromiumPath(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('chromium is not installed: run bash scripts/ensure-chromium.sh');
  }
}

/** Headless chromium; as root it needs --no-sandbox. */
export function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox', ...extraArgs] });
}

/** Signs in on /ui/login with the admin token and waits for the dashboard's stream to be live. */
export async function signIn(page: Page, base: string, token: string): Promise<void> {
  await page.goto(`${base}/ui/login`);
  await page.getByTestId('login-token').fill(token);
  await page.getByTestId('login-submit').click();
  await page.waitForURL(`${base}/ui`);
  await page.locator('[data-testid="connection-state"][data-state="live"]').waitFor({ timeout: 15_000 });
}

/** window.__orcaUi.lastRenderAt[service] (epoch ms, the page's clock), or 0. */
export function lastRenderAt(page: Page, service: string): Promise<number> {
  return page.evaluate((s) => (window as unknown as { __orcaUi: { lastRenderAt: Record<string, number> } }).__orcaUi.lastRenderAt[s] ?? 0, service);
}

/** The page's JS heap in use (bytes) and its DOM node count, through the DevTools protocol. */
export async function pageMetrics(page: Page): Promise<{ heapBytes: number; domNodes: number }> {
  const cdp = await page.context().newCDPSession(page);
  try {
    await cdp.send('Performance.enable');
    const { metrics } = await cdp.send('Performance.getMetrics');
    const get = (name: string) => metrics.find((m) => m.name === name)?.value ?? NaN;
    return { heapBytes: get('JSHeapUsedSize'), domNodes: get('Nodes') };
  } finally {
    await cdp.detach();
  }
}
