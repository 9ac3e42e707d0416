// Generated from clients/typescript/src by `node scripts/console.mjs write` (there).
// Do not edit: make test-client fails when it differs from a fresh build.
/** The tenant-jobs API client: see README.md. React hooks are in "./react". */
export * from "./client.js";
export { readEvents } from "./sse.js";
export * from "./watch.js";
