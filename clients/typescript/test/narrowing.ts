/**
 * Compiled by `npm run typecheck`, never run: the generated `Job` is a union by `status`,
 * so a project reads `result` only once it has checked `status === "completed"` (and
 * `error` only on "failed"); each `@ts-expect-error` fails the build if the narrowing is lost.
 */
import type { Job, JobSubmit } from "../src/client.ts";

export function resultOf(job: Job): unknown {
  // @ts-expect-error: a job of unknown status has no `result`
  void job.result;
  // @ts-expect-error: nor an `error`
  void job.error;
  if (job.status === "failed") {
    // @ts-expect-error: a failed job has no `result`
    void job.result;
    return job.error satisfies string;
  }
  if (job.status === "completed") return job.result;
  return undefined;
}

export const sleep: JobSubmit = { type: "demo.sleep", payload: { seconds: 2 } };
// @ts-expect-error: demo.sleep's payload needs `seconds`
export const sleepWithoutSeconds: JobSubmit = { type: "demo.sleep", payload: {} };
// @ts-expect-error: only registered types
export const unknownType: JobSubmit = { type: "no.such.type" };
