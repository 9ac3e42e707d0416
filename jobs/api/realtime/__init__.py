"""Answers that wait for a job to change: long polls, event streams, the fan-out of one
listening connection per process to their waiters, the thread budget of waits, and the
grants they hold while they wait."""
