"""Merge helper for issue 11 (delete after the merge): resolves the conflicts that arise when one
branch annotated the `def` lines (types) and the other expanded the docstrings below them
(h-docs). Git reports those as conflicts because a one-line docstring shares the line its
closing quotes are on with the start of the expanded docstring, right under the changed def.

Usage, in a conflicted merge: python scripts/resolve_docstring_conflicts.py FILE... [--docs-side
ours|theirs]. For every conflict hunk whose two sides are "def/class lines + docstring", the
result takes the def/class lines from the annotating side and the docstring (and everything
after it in the hunk) from the docs side; the annotating side's lines after its docstring must
be unchanged in the docs side, else the hunk is left for a person. Prints what it did.
"""

import argparse
import re
import sys

START, MID, END = re.compile(r"^<<<<<<< "), re.compile(r"^=======$"), re.compile(r"^>>>>>>> ")


def _doc_index(lines):
    for i, line in enumerate(lines):
        if line.lstrip().startswith(('"""', 'r"""', 'f"""')):
            return i
    return None


def _resolve(docs, typed):
    """The resolved lines, or None when the hunk is not the def + docstring shape."""
    i, j = _doc_index(docs), _doc_index(typed)
    if i is None or j is None or i == 0 or j == 0:
        return None
    if not all(re.match(r"\s*(def |class |@|\S.*[,(]$|\s)", line) for line in typed[:j]):
        return None
    # The docs side's first docstring line is the typed side's one without its closing quotes.
    one_line = typed[j].rstrip().removesuffix('"""').rstrip()
    if one_line != docs[i].rstrip().removesuffix('"""').rstrip():
        return None
    rest = typed[j + 1:]
    if rest and docs[-len(rest):] != rest:
        return None
    return typed[:j] + docs[i:]


def _segments(lines):
    """The hunk split before each def / class (with its decorators)."""
    out = [[]]
    for line in lines:
        starts = re.match(r"\s*(@|def |class )", line)
        if starts and not (out[-1] and out[-1][-1].lstrip().startswith("@")):
            out.append([])
        out[-1].append(line)
    return out


def _resolve_hunk(docs, typed):
    """A hunk of one or more consecutive definitions, resolved definition by definition."""
    whole = _resolve(docs, typed)
    if whole is not None:
        return whole
    a, b = _segments(docs), _segments(typed)
    if len(a) != len(b) or a[0] != b[0]:
        return None
    out = list(a[0])
    for x, y in zip(a[1:], b[1:]):
        part = x if x == y else _resolve(x, y)
        if part is None:
            return None
        out.extend(part)
    return out


def resolve_file(path, docs_side):
    text = open(path).read().split("\n")
    out, n_done, n_left, k = [], 0, 0, 0
    while k < len(text):
        if not START.match(text[k]):
            out.append(text[k])
            k += 1
            continue
        mid = next(m for m in range(k + 1, len(text)) if MID.match(text[m]))
        end = next(m for m in range(mid + 1, len(text)) if END.match(text[m]))
        ours, theirs = text[k + 1:mid], text[mid + 1:end]
        docs, typed = (ours, theirs) if docs_side == "ours" else (theirs, ours)
        resolved = _resolve_hunk(docs, typed)
        if resolved is None:
            out.extend(text[k:end + 1])
            n_left += 1
        else:
            out.extend(resolved)
            n_done += 1
        k = end + 1
    open(path, "w").write("\n".join(out))
    print(f"{path}: {n_done} resolved, {n_left} left")
    return n_left


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--docs-side", choices=("ours", "theirs"), default="ours",
                        help="which side of the merge is h-docs (ours when h-docs is checked out)")
    args = parser.parse_args()
    left = sum(resolve_file(f, args.docs_side) for f in args.files)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
