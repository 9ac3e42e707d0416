"""NOTIFY 'job_changed' with the job id whenever a job's API representation changes.

Long polls (``GET /api/jobs/{id}?wait=N``, jobs/api/realtime/longpoll.py) listen on this channel.
A trigger rather than calls in the services: every writer (worker, reaper, admin, staff
actions, a manual UPDATE) is covered, and the notification is delivered only on commit.
Heartbeats (lease renewals) change no represented column, so they send nothing. The
column list matches ``jobs.models.REPRESENTED_COLUMNS`` (the ETag's inputs).
"""

from django.db import migrations

CREATE = """
CREATE FUNCTION job_queue_notify_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('job_changed', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER job_queue_changed
AFTER UPDATE ON job_queue
FOR EACH ROW
WHEN (
    OLD.type IS DISTINCT FROM NEW.type
    OR OLD.status IS DISTINCT FROM NEW.status
    OR OLD.attempts IS DISTINCT FROM NEW.attempts
    OR OLD.progress IS DISTINCT FROM NEW.progress
    OR OLD.progress_message IS DISTINCT FROM NEW.progress_message
    OR OLD.result IS DISTINCT FROM NEW.result
    OR OLD.error IS DISTINCT FROM NEW.error
    OR OLD.started_at IS DISTINCT FROM NEW.started_at
    OR OLD.completed_at IS DISTINCT FROM NEW.completed_at
)
EXECUTE FUNCTION job_queue_notify_changed();
"""

DROP = """
DROP TRIGGER IF EXISTS job_queue_changed ON job_queue;
DROP FUNCTION IF EXISTS job_queue_notify_changed();
"""


class Migration(migrations.Migration):
    dependencies = [("jobs", "0002_fair_claim_index")]

    operations = [migrations.RunSQL(CREATE, DROP)]
