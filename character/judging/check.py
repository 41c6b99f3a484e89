"""Known-answer checks of the judges: how good is the judge behind each judge-based number?

A judge constrained to its allowed answers always gives one; a weak judge (a 135M model judging
itself) then gives confident noise that reads like a result. So each judge-based stage builds, from
its own job, cases whose right verdict is known, has them judged with the same prompt, engine and
sampling as its real comparisons, and reports the judge's accuracy on them beside its numbers:

- **revealed preferences** (``eval``; ``character.preferences.judge_check``): for a drawn prompt
  and ordered trait pair (X, Y), the base model answers under a system prompt that names X alone
  (ours: ``character.preferences.prompts.JUDGE_CHECK_SYSTEM``); the judge then chooses between X
  and Y with the normal judge prompt, the two listed in a seeded random order. Known answer: X;
  chance 0.5.
- **coherence** (``character.coherence.judge_check``): a robustness response against a degraded
  copy of itself (``degrade``: its words shuffled), judged in both orders as the stage judges.
  Known answer: the intact response, in both orders; a judge answering 1 or 2 at random gets a
  case right once in four.

Accuracy is the share of all cases judged right (an invalid or order-inconsistent verdict counts as
wrong, so ``n`` is the number of cases), with its 95 % Wilson interval. A judge near chance, or
whose interval reaches chance, cannot be trusted with the stage's numbers. Both checks write
``RESULT_FILE`` into their stage's folder, where the report stage reads it.
"""

CHECK = "judge_check"
RESULT_FILE = f"{CHECK}.json"
