"""Load, faults and benchmarks against real servers: `python -m loadtest chaos|bench`.

Everything runs against a throwaway database (`<name>_loadtest` beside the app's own, on the
embedded PostgreSQL or the server DATABASE_URL names) and gunicorn instances started here on
127.0.0.1, configured like `make serve`: DEBUG off, a generated secret key, collected static.
"""
