/**
 * Where instances answer: the one declaration of the endpoint types that the protocol, the
 * route reconciler and the proxy share (each names the one it needs).
 */

/** An instance and the address the proxy connects to. */
export interface Backend {
  instance: string;
  /** `host:port` on its node's advertise address, e.g. "127.0.0.1:49153" or "[::1]:8080". */
  address: string;
}

/** A ready instance of a service, as its node reports it. */
export interface Endpoint extends Backend {
  service: string;
}

/** An endpoint and the node that reported it. */
export interface NodeEndpoint extends Endpoint {
  node: string;
}
