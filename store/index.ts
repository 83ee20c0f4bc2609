export type * from './types.js';
export type { StoreDb, RangeOptions } from './db.js';
export { LevelStore, type LevelStoreOptions } from './level-store.js';
export { levelStore, openLevelStore, memoryStore, type StoreCaps } from './factories.js';
