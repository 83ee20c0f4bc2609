import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The temporary directories a test file makes, so that it removes what it created: make() in
 * the tests, removeAll() in the file's afterAll.
 */
export class TempDirs {
  private readonly dirs: string[] = [];

  /** A new directory under the OS's temp directory, named `<prefix>XXXXXX`. */
  async make(prefix: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  async removeAll(): Promise<void> {
    await Promise.all(this.dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  }
}
