"""Revealed preferences (paper §3.1, App. I): the ``eval`` stage and the preference evaluation of
any models (``launchers.evaluate``): comparisons, the judge's known-answer check, ratings, report."""
