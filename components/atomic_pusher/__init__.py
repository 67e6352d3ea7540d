"""Pusher that takes a unique version per serving folder and makes a push appear at once and whole,
on local paths and on object stores (`README.md`)."""
from components.atomic_pusher.component import Pusher  # noqa: F401
