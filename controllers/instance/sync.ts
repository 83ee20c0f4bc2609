import { stateName, type InstanceEvent, type InstanceSnapshot } from './machine.js';

/** What Docker shows for one instance's container right now; `missing` when there is none. */
export interface ObservedInstance {
  status: 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead' | 'missing';
  exitCode: number | null;
  oomKilled: boolean;
  /**
   * ms since epoch: when Docker says the status began (startedAt while running, finishedAt
   * once exited or dead), else when it was observed. Becomes the `at` of the events sent.
   */
  at: number;
  /** The container's id; needed to adopt a container the tracker has not been told about. */
  containerId?: string;
  /** The error Docker recorded (e.g. a failed start), if any. */
  error?: string | null;
}

const EXISTS = new Set<ObservedInstance['status']>(['created', 'running', 'paused', 'restarting', 'exited', 'dead']);
const UP = new Set<ObservedInstance['status']>(['running', 'paused']);
const ENDED = new Set<ObservedInstance['status']>(['exited', 'dead']);

/**
 * The next event that moves an instance one step closer to what Docker shows, or null
 * when they agree (or no legal event could make them agree). Pure.
 *
 * | tracker  | Docker shows                           | event                     |
 * |----------|----------------------------------------|---------------------------|
 * | pending  | any container, id known                | CREATE                    |
 * | creating | any container, id known                | CREATED {containerId}     |
 * | starting | running, paused                        | STARTED                   |
 * | starting | exited, dead                           | EXITED                    |
 * | starting | missing                                | VANISHED                  |
 * | running  | exited, dead                           | EXITED                    |
 * | running  | missing                                | VANISHED                  |
 * | stopping | exited, dead                           | EXITED                    |
 * | stopping | missing                                | REMOVED                   |
 * | exited   | missing                                | REMOVED                   |
 * | anything else                                     | none                      |
 *
 * Not healed here, on purpose: backoff (the planner creates the replacement when it is due,
 * and CREATE comes from the executor), a container seen again after
 * the tracker recorded its exit (instances are one-shot; the planner replaces it),
 * `removing` (it will be `missing` next), and readiness (the health reconciler's job).
 */
export function nextSyncEvent(snapshot: InstanceSnapshot, observed: ObservedInstance): InstanceEvent | null {
  const { status, at } = observed;
  const exited = (): InstanceEvent => ({
    type: 'EXITED',
    code: observed.exitCode,
    oomKilled: observed.oomKilled,
    at,
    ...(observed.error ? { error: observed.error } : {}),
  });
  switch (stateName(snapshot)) {
    case 'pending':
      return EXISTS.has(status) && observed.containerId ? { type: 'CREATE', at } : null;
    case 'creating':
      return EXISTS.has(status) && observed.containerId ? { type: 'CREATED', containerId: observed.containerId, at } : null;
    case 'starting':
      if (UP.has(status)) return { type: 'STARTED', at };
      if (ENDED.has(status)) return exited();
      return status === 'missing' ? { type: 'VANISHED', at } : null;
    case 'running':
      if (ENDED.has(status)) return exited();
      return status === 'missing' ? { type: 'VANISHED', at } : null;
    case 'stopping':
      if (ENDED.has(status)) return exited();
      return status === 'missing' ? { type: 'REMOVED', at } : null;
    case 'exited':
      return status === 'missing' ? { type: 'REMOVED', at } : null;
    case 'crashloop':
    case 'removed':
      return null;
  }
}
