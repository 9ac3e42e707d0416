/** The tenant-jobs API client: see README.md. React hooks are in "./react". */
export * from "./client.ts";
export { readEvents, type ServerEvent } from "./sse.ts";
export * from "./watch.ts";
