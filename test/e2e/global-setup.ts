import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { DockerRuntime } from '../../runtime/docker-runtime.js';
import { ensureTestImages } from '../images.js';
import { buildExampleImages } from '../../examples/images.js';

/**
 * Once before the e2e project: Docker is up, etcd, pebble and chromium installed (if needed), the CLI is built,
 * and the images the tests use exist (built locally, cached by content).
 */
export default async function setup(): Promise<void> {
  execFileSync('bash', ['scripts/ensure-docker.sh'], { stdio: 'inherit' });
  execFileSync('bash', ['scripts/ensure-etcd.sh'], { stdio: 'inherit' });
  execFileSync('bash', ['scripts/ensure-pebble.sh'], { stdio: 'inherit' });
  execFileSync('bash', ['scripts/ensure-chromium.sh'], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (!existsSync('dist/cli/main.js') || !existsSync('dist/cli/orca.cjs')) execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  const rt = new DockerRuntime();
  await ensureTestImages(rt);
  await buildExampleImages(rt);
}
