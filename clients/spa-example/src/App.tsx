/**
 * The example SPA: log in, submit a job, follow it with useJob and list the tenant's jobs
 * with useJobs. The API's origin is `?api=` (default: this page's origin; another origin
 * must be among the tenant's allowed origins). Every state useJob reports is appended to
 * the "Seen" list, which the browser tests (tests/spa) read.
 */
import { type FormEvent, useEffect, useMemo, useState } from "react";
import { ApiProblem, type Client, createClient, type Job, type JobSubmit } from "@tenant-jobs/client";
import { JobsClientContext, useJob, useJobs } from "@tenant-jobs/client/react";

const apiOrigin = new URLSearchParams(location.search).get("api") ?? location.origin;

const progressOf = (job: Job): number | undefined => ("progress" in job ? job.progress : undefined);

/** One line per state: its status, and its progress while processing. */
const describe = (job: Job): string => {
  const progress = progressOf(job);
  return progress === undefined ? job.status : `${job.status} ${Math.floor(progress)}`;
};

export function App() {
  const client = useMemo(() => createClient({ baseUrl: apiOrigin }), []);
  const [user, setUser] = useState<string | null>(null);
  return (
    <JobsClientContext.Provider value={client}>
      <main>
        <h1>Jobs</h1>
        {user ? <Jobs user={user} client={client} /> : <Login client={client} onLogin={setUser} />}
      </main>
    </JobsClientContext.Provider>
  );
}

function Login({ client, onLogin }: { client: Client; onLogin: (user: string) => void }) {
  const [error, setError] = useState("");
  async function logIn(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const username = String(form.get("username"));
    try {
      await client.login(username, String(form.get("password")));
      onLogin(username);
    } catch (problem) {
      setError(problem instanceof ApiProblem ? problem.detail : "Cannot reach the server.");
    }
  }
  return (
    <form onSubmit={logIn}>
      <label>
        Username <input name="username" autoComplete="username" required />
      </label>
      <label>
        Password <input name="password" type="password" autoComplete="current-password" required />
      </label>
      <button type="submit">Log in</button>
      {error && <p role="alert">{error}</p>}
    </form>
  );
}

function Jobs({ user, client }: { user: string; client: Client }) {
  const [jobId, setJobId] = useState<string | null>(null);
  const [error, setError] = useState("");
  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    try {
      const payload = JSON.parse(String(form.get("payload"))) as Record<string, unknown>;
      // Whatever the form holds: the server checks the type and its payload (400 otherwise).
      const job = await client.submitJob({ type: String(form.get("type")), payload } as JobSubmit);
      setJobId(job.id);
      setError("");
    } catch (problem) {
      setError(problem instanceof Error ? problem.message : String(problem));
    }
  }
  return (
    <>
      <p>Signed in as {user}</p>
      <form onSubmit={submit}>
        <label>
          Job type <input name="type" defaultValue="demo.sleep" />
        </label>
        <label>
          Payload <textarea name="payload" defaultValue='{"seconds": 3}' />
        </label>
        <button type="submit">Submit job</button>
        {error && <p role="alert">{error}</p>}
      </form>
      {jobId && <JobStatus key={jobId} id={jobId} />}
      <JobList />
    </>
  );
}

function JobStatus({ id }: { id: string }) {
  const { job, error, mode } = useJob(id);
  const [seen, setSeen] = useState<string[]>([]);
  useEffect(() => {
    if (job) setSeen((lines) => [...lines, describe(job)]);
  }, [job]);
  if (error) return <p role="alert">Cannot follow job {id}.</p>;
  if (!job) return <p>Loading…</p>;
  const progress = progressOf(job);
  return (
    <section aria-label="Submitted job">
      <p>
        Job <code>{job.id}</code>: <output data-testid="status">{job.status}</output>
        {progress !== undefined && <progress max={100} value={progress} />}
      </p>
      <p>
        Read by <output data-testid="mode">{mode}</output>
      </p>
      <h2>Seen</h2>
      <ol data-testid="seen">
        {seen.map((line, index) => (
          <li key={index}>{line}</li>
        ))}
      </ol>
    </section>
  );
}

function JobList() {
  const { jobs, loading, error } = useJobs({});
  if (loading) return <p>Loading jobs…</p>;
  if (error) return <p role="alert">Cannot list jobs.</p>;
  return (
    <table aria-label="Jobs">
      <tbody>
        {jobs.map((job) => (
          <tr key={job.id} data-job-id={job.id}>
            <td>{job.type}</td>
            <td data-testid="list-status">{job.status}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
