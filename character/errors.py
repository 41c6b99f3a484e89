"""The one exception type the launchers turn into a short message instead of a traceback."""


class CharacterError(Exception):
    """A problem the user can fix (bad config, missing weights, gated persona, ...).

    The message is a single paragraph naming the file/key/value at fault and what was expected;
    launchers print it and exit non-zero, so users never have to read a stack trace to learn that
    they misspelled a persona name.
    """
