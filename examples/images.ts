/**
 * The images the example manifests use, built locally from the host's static busybox (Orca
 * never pulls). `orca-example/web:N` is busybox httpd serving /www on port 80: `/` (index.html)
 * says `orca-example web vN`, `/ready` and `/healthz` say `ok`. It logs one line on start.
 */
import type { DockerRuntime } from '../runtime/docker-runtime.js';
import { busyboxBase, type ImageDef } from '../runtime/image-def.js';
import { counterImageDef, redisImageDef } from './counter-images.js';

export const EXAMPLE_WEB_V1 = 'orca-example/web:1';
export const EXAMPLE_WEB_V2 = 'orca-example/web:2';

/** The def of orca-example/web:<version>. */
export function webImageDef(version: 1 | 2): ImageDef {
  const base = busyboxBase();
  const banner = `orca-example web v${version}`;
  return {
    tag: `orca-example/web:${version}`,
    files: [
      ...base.files,
      { path: '/www/index.html', content: banner },
      { path: '/www/ready', content: 'ok' },
      { path: '/www/healthz', content: 'ok' },
    ],
    symlinks: base.symlinks ?? [],
    dirs: [...(base.dirs ?? []), '/www'],
    cmd: ['/bin/sh', '-c', `echo "${banner} starting"; exec /bin/httpd -f -v -p 80 -h /www`],
    exposedPorts: [80],
    labels: { 'org.opencontainers.image.title': 'orca-example-web', 'org.opencontainers.image.version': String(version) },
  };
}

/** Every example image: web v1 and v2, and the stateful example's database and counter. */
export async function exampleImageDefs(): Promise<ImageDef[]> {
  return [webImageDef(1), webImageDef(2), await redisImageDef(), counterImageDef()];
}

/** Builds each example image unless present with the same content; one result per image, in order. */
export async function buildExampleImages(rt: DockerRuntime): Promise<Array<{ tag: string; built: boolean }>> {
  const out: Array<{ tag: string; built: boolean }> = [];
  for (const def of await exampleImageDefs()) out.push({ tag: def.tag, ...(await rt.ensureImage(def)) });
  return out;
}
