/**
 * The two ways Orca writes a point in time. Every timestamp field has one of these types, so a
 * field's unit is in its type: `SlotState.nextRetryAt` is EpochMs (memory and the agent's disk),
 * `InstanceReport.nextRetryAt` is IsoTime (the wire and `orca status`).
 */

/** Milliseconds since the epoch, the clock's unit: for what is computed with (deadlines, backoffs). */
export type EpochMs = number;

/** ISO-8601 in UTC with milliseconds (`2026-01-01T00:00:00.000Z`): for what is sent or shown. */
export type IsoTime = string;
