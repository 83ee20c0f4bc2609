/**
 * The secret values this node's instances use (SPEC §3.9), kept so the agent heals while cut off
 * from the server: in memory, and in its store (`agent.db`) only sealed with the node's own key
 * `<data-dir>/agent.key` (32 random bytes, 0600, made on first start) — AES-256-GCM over the
 * whole set. That keeps the values out of a copy of agent.db taken without the key (a backup,
 * a disk image of the store alone); it does not protect them from root on the node, who can
 * read the key, the tmpfs and the containers anyway. Values never reach a log line.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { OrcaError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Store } from '../store/types.js';
import type { SlotAssignment } from '../controllers/container/types.js';
import type { SecretValue } from '../protocol/messages.js';

export const AGENT_KEY_FILE = 'agent.key';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const KV_KEY = 'secret-values';
const AAD = Buffer.from('orca.agent-secrets.v1', 'utf8');
/** The largest value (bytes), as the server refuses larger ones. */
const MAX_VALUE_BYTES = 64 * 1024;

const vkey = (name: string, version: number) => `${name}@${version}`;

/**
 * The node's key for its cache of secret values: `<dataDir>/agent.key`, made (0600) when
 * missing. Refuses (OrcaError ORCA_UNAUTHORIZED) a key that is not a regular file, is open to
 * group or others, or is not exactly 32 bytes.
 */
export async function loadAgentKey(dataDir: string): Promise<Buffer> {
  const path = join(dataDir, AGENT_KEY_FILE);
  const refuse = (why: string) => new OrcaError('ORCA_UNAUTHORIZED', `the agent key ${path} ${why}`);
  for (;;) {
    let st;
    try {
      st = await stat(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw refuse(`cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const key = randomBytes(KEY_BYTES);
      try {
        const fh = await open(path, 'wx', 0o600);
        try {
          await fh.writeFile(key);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await chmod(path, 0o600);
        return key;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw e;
      }
    }
    if (!st.isFile()) throw refuse('is not a regular file');
    if ((st.mode & 0o077) !== 0) throw refuse(`has mode 0${(st.mode & 0o777).toString(8)}: it must be readable by its owner only (chmod 600 ${path})`);
    if (st.size !== KEY_BYTES) throw refuse(`holds ${st.size} bytes, not ${KEY_BYTES}: remove it (the agent makes a new one; the server sends the secrets again)`);
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(KEY_BYTES);
      const { bytesRead } = await fh.read(buf, 0, KEY_BYTES, 0);
      if (bytesRead !== KEY_BYTES) throw refuse(`could not be read whole`);
      return buf;
    } finally {
      await fh.close();
    }
  }
}

interface Sealed {
  iv: string;
  tag: string;
  data: string;
}

/**
 * Secret values by name and version. `update` takes what came with an assignment set and keeps
 * only the versions the set's slots use (a value no slot uses any more is forgotten, in memory
 * and in the store); a version already held stays when the server no longer sends it (a slot
 * still on an older revision is healed with the value it was made with).
 */
export class SecretCache {
  private values = new Map<string, Buffer>();

  constructor(
    private readonly store: Store,
    private readonly key: Buffer,
    private readonly log: Logger,
  ) {
    if (key.length !== KEY_BYTES) throw new OrcaError('ORCA_INTERNAL', `bug: an agent key of ${key.length} bytes`);
  }

  /** Reads the sealed set from the store; one that does not open (another key) is dropped with a warning. */
  async load(): Promise<void> {
    const sealed = await this.store.getKv<Sealed>(KV_KEY);
    if (!sealed) return;
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, Buffer.from(sealed.iv, 'base64'));
      d.setAAD(AAD);
      d.setAuthTag(Buffer.from(sealed.tag, 'base64'));
      const list = JSON.parse(Buffer.concat([d.update(Buffer.from(sealed.data, 'base64')), d.final()]).toString('utf8')) as SecretValue[];
      this.values = new Map(list.map((v) => [vkey(v.name, v.version), Buffer.from(v.value, 'base64')]));
    } catch {
      this.log.warn({}, 'the cached secret values do not open with this agent key; they are dropped (the server sends them again)');
      this.values = new Map();
    }
  }

  /** Takes the values that came with an assignment set; keeps those `slots` use; persists when anything changed. */
  async update(incoming: readonly SecretValue[], slots: readonly SlotAssignment[]): Promise<void> {
    const used = new Set<string>();
    for (const a of slots) for (const [n, v] of Object.entries(a.secretVersions ?? {})) used.add(vkey(n, v));
    const next = new Map<string, Buffer>();
    for (const [k, v] of this.values) if (used.has(k)) next.set(k, v);
    for (const v of incoming) {
      const k = vkey(v.name, v.version);
      const data = Buffer.from(v.value, 'base64');
      if (used.has(k) && data.length <= MAX_VALUE_BYTES) next.set(k, data);
    }
    const same = next.size === this.values.size && [...next].every(([k, v]) => this.values.get(k)?.equals(v));
    this.values = next;
    if (!same) await this.persist();
  }

  /**
   * A slot's values by secret name; throws OrcaError ORCA_NOT_FOUND naming the first secret
   * whose version this node does not hold (yet).
   */
  valuesFor(a: SlotAssignment): Map<string, Buffer> {
    const out = new Map<string, Buffer>();
    for (const [name, version] of Object.entries(a.secretVersions ?? {})) {
      const v = this.values.get(vkey(name, version));
      if (!v) throw new OrcaError('ORCA_NOT_FOUND', `secret "${name}" version ${version} has not reached this node yet (it comes from the server with the assignment)`, { transient: true });
      out.set(name, v);
    }
    return out;
  }

  private async persist(): Promise<void> {
    if (this.values.size === 0) return this.store.delKv(KV_KEY);
    const plain = Buffer.from(JSON.stringify([...this.values].map(([k, v]) => ({ name: k.slice(0, k.lastIndexOf('@')), version: Number(k.slice(k.lastIndexOf('@') + 1)), value: v.toString('base64') }))), 'utf8');
    const iv = randomBytes(IV_BYTES);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(AAD);
    const data = Buffer.concat([c.update(plain), c.final()]);
    plain.fill(0);
    const sealed: Sealed = { iv: iv.toString('base64'), tag: c.getAuthTag().toString('base64'), data: data.toString('base64') };
    await this.store.putKv(KV_KEY, sealed);
  }
}
