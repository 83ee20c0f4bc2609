/** The node planner lives in controllers/node/planner.ts; re-exported for the server's callers. */
export { nextNodeCheckInMs, nodeStateAt, type NodeTimingConfig } from '../controllers/node/planner.js';
