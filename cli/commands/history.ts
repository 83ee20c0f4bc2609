import { Client, type ClientOptions } from '../client.js';
import { CliError, EXIT } from '../exit.js';
import { table } from '../table.js';
import { jsonLine, type Format } from '../format.js';

interface Revision {
  revision: number;
  createdAt: string;
  specHash: string;
  spec: { image: string; replicas: number };
  source: string;
  rollbackOf?: number;
  reason?: string;
  outcome: string;
  outcomeReason?: string;
}

/**
 * `orca history SERVICE [-o table|json]`. JSON: `{"service","current","revisions":[…]}` where
 * `current` is the running revision (null once the service is deleted) and each revision has
 * `revision`, `createdAt`, `specHash`, `spec` (the normalised spec), `source` (apply, rollback,
 * or secret: a new value of a secret it uses), `rollbackOf`, `reason` (`secret db-password
 * changed (version 2)`), `secretVersions`, `outcome` and `outcomeReason`.
 */
export async function history(g: ClientOptions, service: string, opts: { output?: Format } = {}): Promise<void> {
  const body = await new Client(g).json<{ current: number | null; revisions: Revision[] }>('GET', `/v1/services/${encodeURIComponent(service)}/history`);
  if (opts.output === 'json') {
    process.stdout.write(jsonLine({ service, current: body.current, revisions: body.revisions }));
    return;
  }
  process.stdout.write(
    table(
      ['REVISION', 'CREATED', 'SPEC HASH', 'IMAGE', 'REPLICAS', 'SOURCE', 'OUTCOME'],
      body.revisions.map((r) => [
        (r.revision === body.current ? '*' : ' ') + String(r.revision),
        r.createdAt,
        r.specHash.slice(0, 12),
        r.spec.image,
        String(r.spec.replicas),
        r.source === 'rollback' ? `rollback of ${r.rollbackOf}` : r.source === 'secret' && r.reason ? r.reason : r.source,
        r.outcome + (r.outcomeReason ? ` (${r.outcomeReason})` : ''),
      ]),
    ),
  );
  if (body.current === null) process.stdout.write(`service/${service} is deleted; its history is kept\n`);
}

/** `orca rollback SERVICE [--to-revision N]` */
export async function rollback(g: ClientOptions, service: string, opts: { toRevision?: string }): Promise<void> {
  let toRevision: number | undefined;
  if (opts.toRevision !== undefined) {
    toRevision = Number(opts.toRevision);
    if (!Number.isInteger(toRevision) || toRevision < 1) throw new CliError(EXIT.invalid, `--to-revision: must be a whole number ≥ 1, got "${opts.toRevision}"`);
  }
  const r = await new Client(g).json<{ service: string; action: string; revision: number; from: number }>(
    'POST',
    `/v1/services/${encodeURIComponent(service)}/rollback`,
    { toRevision },
  );
  process.stdout.write(
    r.action === 'unchanged'
      ? `service/${r.service} unchanged (revision ${r.from} is what runs already)\n`
      : `service/${r.service} rolled back to revision ${r.from} as revision ${r.revision}\n`,
  );
}
