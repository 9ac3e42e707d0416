"""A peer for the poll benchmark: ``GET /api/jobs/{id}`` as a Django developer writes it by
hand in DRF, in its best configuration for speed: simplejwt's ``JWTAuthentication`` (the
user read by id), a ``RetrieveAPIView`` whose queryset is the user's tenant's jobs, a
``ModelSerializer`` of the poll's fields, JSON only, two middlewares, persistent
connections. Same database, row and token as the project's poll; no row security, ETag,
rate limit, log line or metric (what the project adds). Served by gunicorn:
``bench.peers.drf_poll.wsgi:application``."""
