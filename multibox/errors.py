"""The errors a user can cause, and the exit code the command line gives each.

Every layer raises these for a user's mistake or a bad file; ``multibox.cli`` turns them into one line on
stderr (no traceback unless ``--debug`` or ``MULTIBOX_DEBUG=1``). Both subclass ``ValueError`` so code that
catches ``ValueError`` keeps working.
"""

from __future__ import annotations


class MultiboxError(ValueError):
    """A problem the user can fix; the message names the file or setting and says what to do."""

    exit_code = 1


class ConfigError(MultiboxError):
    """A bad command-line argument or setting (exit code 2)."""

    exit_code = 2


class DataError(MultiboxError):
    """A bad or unreadable input file: image, annotation, checkpoint, exported model (exit code 1)."""

    exit_code = 1


class MissingSplitError(DataError, FileNotFoundError):
    """A dataset source without the split asked for; the message lists the splits it has. A
    ``FileNotFoundError`` too, so training from a source without a ``val`` split goes on without evaluation."""
