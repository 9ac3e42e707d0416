/**
 * React hooks over watchJob/watchJobs. The client comes from `options.client` or from
 * `<JobsClientContext.Provider value={client}>`.
 */
import { createContext, useContext, useEffect, useRef, useState } from "react";
import {
  type Client,
  type Job,
  type JobListItem,
  type ListJobsQuery,
} from "./client.ts";
import { type WatchMode, type WatchOptions, watchJob, watchJobs } from "./watch.ts";

export const JobsClientContext = createContext<Client | null>(null);

function useClient(explicit: Client | undefined): Client {
  const fromContext = useContext(JobsClientContext);
  const client = explicit ?? fromContext;
  if (!client) throw new Error("no client: pass options.client or use JobsClientContext.Provider");
  return client;
}

export interface UseJobOptions extends Omit<WatchOptions, "onError"> {
  client?: Client;
}

export interface JobState {
  /** The latest state, null until the first one arrives. */
  job: Job | null;
  /** The refusal that ended the watch (e.g. 404), else null. */
  error: unknown;
  /** How the job is read now (stream, long poll or poll). */
  mode: WatchMode | null;
}

/**
 * The live state of job `id` (none while `id` is null), watched until it is final.
 * Options are read when `id`, the client or `accessToken` (a job read token) changes.
 */
export function useJob(id: string | null | undefined, options: UseJobOptions = {}): JobState {
  const client = useClient(options.client);
  const optionsRef = useRef(options);
  optionsRef.current = options;
  const [state, setState] = useState<JobState>({ job: null, error: null, mode: null });

  useEffect(() => {
    setState({ job: null, error: null, mode: null });
    if (!id) return;
    const { client: _ignored, ...watchOptions } = optionsRef.current;
    const watch = watchJob(
      client,
      id,
      (job) => setState({ job, error: null, mode: watch.mode }),
      { ...watchOptions, onError: (error) => setState((last) => ({ ...last, error })) },
    );
    return () => watch.stop();
  }, [client, id, options.accessToken]);

  return state;
}

export type ListedJob = JobListItem | Job;

export interface UseJobsOptions
  extends Omit<WatchOptions, "onError" | "mode" | "wait" | "accessToken"> {
  client?: Client;
  /** Seconds between re-reads of the list while the tenant stream is unavailable (default 5). */
  relistInterval?: number;
}

export interface JobsState {
  jobs: ListedJob[];
  loading: boolean;
  error: unknown;
}

/** Whether `job` belongs in the list of `filter`; `me`: the caller's user id, read when the
 * filter is `created_by: "me"` (until it is known, no new job is taken in). */
function matches(job: Job, filter: ListJobsQuery, me: number | null): boolean {
  return (
    (!filter.status || filter.status.includes(job.status)) &&
    (!filter.type || job.type === filter.type) &&
    (!filter.created_by || (me !== null && job.created_by === me))
  );
}

/**
 * The first page of the tenant's jobs matching `filter` (newest first), kept current by
 * the tenant stream: a changed job is updated in place, a new matching one is added at the
 * top, one that no longer matches is removed. While streams are unavailable the page is
 * re-read every `relistInterval` seconds.
 */
export function useJobs(filter: ListJobsQuery = {}, options: UseJobsOptions = {}): JobsState {
  const client = useClient(options.client);
  const optionsRef = useRef(options);
  optionsRef.current = options;
  const key = JSON.stringify(filter);
  const [state, setState] = useState<JobsState>({ jobs: [], loading: true, error: null });

  useEffect(() => {
    const query = JSON.parse(key) as ListJobsQuery;
    const { client: _ignored, relistInterval = 5, ...watchOptions } = optionsRef.current;
    let active = true;
    let relist: ReturnType<typeof setTimeout> | undefined;
    let me: number | null = null;
    if (query.created_by) {
      client.getMe().then(
        (found) => {
          me = found.user.id;
        },
        (error: unknown) => active && setState((last) => ({ ...last, error })),
      );
    }

    const load = () =>
      client.listJobs(query).then(
        (page) => active && setState({ jobs: page.results, loading: false, error: null }),
        (error: unknown) => active && setState((last) => ({ ...last, loading: false, error })),
      );

    void load();
    const watch = watchJobs(
      client,
      (job) =>
        setState((last) => {
          const others = last.jobs.filter((listed) => listed.id !== job.id);
          const known = others.length !== last.jobs.length;
          if (!matches(job, query, me)) return known ? { ...last, jobs: others } : last;
          const jobs = known
            ? last.jobs.map((listed) => (listed.id === job.id ? job : listed))
            : [job, ...last.jobs];
          return { ...last, jobs };
        }),
      {
        ...watchOptions,
        onError: (error) => active && setState((last) => ({ ...last, error })),
        onUnavailable: () => {
          if (relist === undefined) {
            relist = setTimeout(() => {
              relist = undefined;
              if (active) void load();
            }, relistInterval * 1000);
          }
        },
      },
    );
    return () => {
      active = false;
      clearTimeout(relist);
      watch.stop();
    };
  }, [client, key]);

  return state;
}
