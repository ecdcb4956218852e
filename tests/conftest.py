import os

# The settings refuse to start without a secret key when DEBUG is off; the suite runs the
# development configuration (plain static storage, console e-mail) like `make test` does.
os.environ.setdefault("DJANGO_DEBUG", "1")
