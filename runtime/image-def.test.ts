import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { extract, type Header } from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';
import { busyboxBase, dockerfile, imageContextTar, imageDefHash, type ImageDef } from './image-def.js';
import { TempDirs } from '../test/tmp.js';

const temp = new TempDirs();
afterAll(() => temp.removeAll());

const def = (over: Partial<ImageDef> = {}): ImageDef => ({
  tag: 'orca-test/unit:1',
  files: [{ path: '/www/index.html', content: 'hi' }],
  symlinks: [{ path: '/bin/sh', target: '/bin/busybox' }],
  dirs: ['/tmp'],
  cmd: ['sleep', '3600'],
  ...over,
});

async function entries(tar: Buffer): Promise<Array<Pick<Header, 'name' | 'type' | 'mode' | 'linkname'> & { body: string }>> {
  const ex = extract();
  const out: Array<Pick<Header, 'name' | 'type' | 'mode' | 'linkname'> & { body: string }> = [];
  const done = (async () => {
    for await (const entry of ex) {
      const parts: Buffer[] = [];
      for await (const c of entry) parts.push(c as Buffer);
      const h = entry.header;
      out.push({ name: h.name, type: h.type, mode: h.mode, linkname: h.linkname, body: Buffer.concat(parts).toString() });
    }
  })();
  ex.end(tar);
  await done;
  return out;
}

describe('imageDefHash', () => {
  it('is stable, order-insensitive for env, and changes with any content', async () => {
    const h = await imageDefHash(def({ env: { A: '1', B: '2' } }));
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(await imageDefHash(def({ env: { B: '2', A: '1' } }))).toBe(h);
    expect(await imageDefHash(def({ env: { A: '1', B: '3' } }))).not.toBe(h);
    expect(await imageDefHash(def({ env: { A: '1', B: '2' }, cmd: ['sleep', '1'] }))).not.toBe(h);
  });

  it('covers the bytes of hostPath files', async () => {
    const dir = await temp.make('orca-image-def-');
    const file = join(dir, 'f');
    await writeFile(file, 'one');
    const d = def({ files: [{ path: '/f', hostPath: file }] });
    const before = await imageDefHash(d);
    await writeFile(file, 'two');
    expect(await imageDefHash(d)).not.toBe(before);
  });

  it('rejects relative paths, duplicates and newlines in metadata', async () => {
    await expect(imageDefHash(def({ files: [{ path: 'www/x', content: '' }] }))).rejects.toThrow(/absolute/);
    await expect(imageDefHash(def({ dirs: ['/tmp', '/tmp'] }))).rejects.toThrow(/twice/);
    await expect(imageDefHash(def({ labels: { a: 'x\ny' } }))).rejects.toThrow(/newlines/);
  });
});

describe('dockerfile', () => {
  it('builds FROM scratch with metadata and the hash label, quoting values literally', () => {
    const text = dockerfile(
      def({
        env: { GREETING: 'say "hi" $HOME' },
        exposedPorts: [80],
        labels: { team: 'web' },
        entrypoint: ['/bin/sh', '-c'],
        healthcheck: { test: ['CMD', '/bin/cat', '/tmp/healthy'], intervalSecs: 0.2, retries: 3, timeoutSecs: 1 },
      }),
      'abc',
    );
    expect(text.split('\n')).toEqual([
      'FROM scratch',
      'COPY rootfs/ /',
      'ENV GREETING="say \\"hi\\" \\$HOME"',
      'EXPOSE 80/tcp',
      'HEALTHCHECK --interval=200ms --retries=3 --timeout=1000ms CMD ["/bin/cat","/tmp/healthy"]',
      'LABEL "team"="web"',
      'LABEL "orca.image-hash"="abc"',
      'ENTRYPOINT ["/bin/sh","-c"]',
      'CMD ["sleep","3600"]',
      '',
    ]);
  });
});

describe('imageContextTar', () => {
  it('holds the Dockerfile and rootfs with parents, symlinks and a sticky /tmp; deterministic', async () => {
    const tar = await imageContextTar(def());
    expect((await imageContextTar(def())).equals(tar)).toBe(true);
    const list = await entries(tar);
    expect(list.map((e) => e.name)).toEqual(['Dockerfile', 'rootfs/', 'rootfs/bin/', 'rootfs/tmp/', 'rootfs/www/', 'rootfs/www/index.html', 'rootfs/bin/sh']);
    expect(list.find((e) => e.name === 'rootfs/tmp/')?.mode).toBe(0o1777);
    expect(list.find((e) => e.name === 'rootfs/bin/sh')).toMatchObject({ type: 'symlink', linkname: '/bin/busybox' });
    expect(list.find((e) => e.name === 'rootfs/www/index.html')?.body).toBe('hi');
    expect(list[0]?.body).toContain('LABEL "orca.image-hash"=');
  });

  it('busyboxBase links the applets the tests and examples use', () => {
    const links = busyboxBase().symlinks?.map((s) => s.path) ?? [];
    for (const a of ['sh', 'httpd', 'sleep', 'cat', 'yes', 'head', 'wget', 'nc']) expect(links).toContain(`/bin/${a}`);
  });
});
