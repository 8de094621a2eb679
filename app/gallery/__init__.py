"""The gallery: the on-disk store, matching, enrolment and its checks, transfer, undo."""
