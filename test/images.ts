/**
 * Images the Docker tests use, built locally from the host's static busybox (never pulled).
 */
import type { DockerRuntime } from '../runtime/docker-runtime.js';
import { busyboxBase, type ImageDef } from '../runtime/image-def.js';

/** busybox with applet links in /bin; default command `sleep 3600`. */
export const TEST_IMAGE = 'orca-test/busybox:1';
/** Like TEST_IMAGE, plus a HEALTHCHECK that passes while /tmp/healthy exists (checked every 200 ms). */
export const HEALTHCHECK_IMAGE = 'orca-test/healthcheck:1';

export const testImageDef: ImageDef = {
  tag: TEST_IMAGE,
  ...busyboxBase(),
  cmd: ['sleep', '3600'],
};

export const healthcheckImageDef: ImageDef = {
  tag: HEALTHCHECK_IMAGE,
  ...busyboxBase(),
  cmd: ['sleep', '3600'],
  healthcheck: { test: ['CMD', '/bin/cat', '/tmp/healthy'], intervalSecs: 0.2, timeoutSecs: 1, retries: 1 },
};

/** Builds the test images unless already present with the same content. */
export async function ensureTestImages(rt: DockerRuntime): Promise<void> {
  for (const def of [testImageDef, healthcheckImageDef]) await rt.ensureImage(def);
}
