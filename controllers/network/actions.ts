/**
 * The network reconciler's actions: the node's cluster network made again, and running instances
 * attached to it with their DNS aliases. Data only; each is idempotent and carries a stable key
 * and the reason it was planned. Applied by applyNetworkActions (executor.ts).
 */

export type NetworkAction =
  | {
      kind: 'network.create';
      key: string;
      /** `missing`: there is none; `not-a-bridge`: one of that name with another driver (an error to report, never removed). */
      reason: 'missing' | 'not-a-bridge';
      network: string;
      labels: Record<string, string>;
    }
  | {
      kind: 'network.connect';
      key: string;
      /** `network-missing`: the network is being made again; `not-attached`: it exists without this container. */
      reason: 'network-missing' | 'not-attached';
      service: string;
      instance: string;
      containerId: string;
      network: string;
      aliases: string[];
    };

export type NetworkActionKind = NetworkAction['kind'];
