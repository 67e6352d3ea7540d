"""Pusher that takes a unique version per serving folder and makes a push appear at once and whole."""
from components.atomic_pusher.component import Pusher  # noqa: F401
