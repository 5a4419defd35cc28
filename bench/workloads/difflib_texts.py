"""Workload: compares real texts with difflib: unified and ndiff deltas, close matches, ratios.

    python difflib_texts.py [LINES]

The texts are standard library sources of the running Python (argparse.py,
and the first LINES lines of each), against an edited copy in which every
seventh line is dropped, every fifth has a word changed and every eleventh is
new: the kind of change difflib is used on. ndiff compares each pair of
changed lines character by character (its intraline marks), which is where
most of the calls are. The benchmark hooks every function of difflib.
"""

import argparse
import difflib
import sys

lines_wanted = int(sys.argv[1]) if len(sys.argv) > 1 else 1200

with open(argparse.__file__, encoding="utf-8") as handle:
    original = handle.read().splitlines(keepends=True)[:lines_wanted]


def edited(lines):
    out = []
    for number, line in enumerate(lines):
        if number % 7 == 3:
            continue
        if number % 5 == 1 and " " in line.strip():
            words = line.split(" ")
            words[len(words) // 2] = words[len(words) // 2][::-1] or "x"
            line = " ".join(words)
        out.append(line)
        if number % 11 == 5:
            out.append("    # a line added at %d\n" % number)
    return out


changed = edited(original)
unified = list(difflib.unified_diff(original, changed, "a/argparse.py", "b/argparse.py"))
delta = list(difflib.ndiff(original, changed))
assert list(difflib.restore(delta, 2)) == changed
words = sorted({word for line in original for word in line.split() if word.isidentifier()})
close = [difflib.get_close_matches(word[::-1] + "s", words, n=2) for word in words[:150]]
matcher = difflib.SequenceMatcher(None, "".join(original[:40]), "".join(changed[:40]), autojunk=False)
print("difflib", lines_wanted, len(unified), len(delta), sum(map(len, close)), round(matcher.ratio(), 4))
