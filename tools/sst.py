"""Reading Stanford Sentiment Treebank (SST) tree files.

Format: one PTB-style tree per line, every node ``(label child ...)`` with an
integer label 0..4 (0 very negative .. 4 very positive); a leaf is
``(label token)``.  The root label is the sentence label; every subtree is a
labelled phrase.

Token normalisation (``normalize_token``), applied to every leaf, in order:

1. PTB escapes: ``-LRB-`` -> ``(``, ``-RRB-`` -> ``)``, ``-LSB-`` -> ``[``,
   ``-RSB-`` -> ``]``, ``-LCB-`` -> ``{``, ``-RCB-`` -> ``}`` (whole token
   only, case-sensitive; the SST files only contain -LRB-/-RRB-);
   then every ``\\/`` -> ``/`` and every ``\\*`` -> ``*`` (substring
   replacement; e.g. ``\\/director`` -> ``/director``).
2. Lowercase the whole token (Python ``str.lower``, i.e. Unicode simple
   lowercasing; Rust ``str::to_lowercase`` gives the same result on the SST
   vocabulary, which is ASCII plus a few Latin-1 letters like é, ü).

Nothing else is changed: the tree's tokenization is kept as is.  It is the
Penn Treebank style: clitics are split off (``it 's``, ``does n't``,
``ca n't``, ``I 'm``, ``they 're``), punctuation is its own token (``,``
``.`` ``...`` ``--`` ``:`` ``;`` ``?`` ``!``), double quotes appear as
`````` (open) and ``''`` (close), hyphenated words stay one token
(``well-drawn``), and tokens are separated by single ASCII spaces.  Only
ASCII whitespace separates tokens: three train leaves contain a no-break
space U+00A0 (``8<U+00A0>1\\/2`` -> ``8<U+00A0>1/2``) and stay one token
(Python ``str.split()`` would split them; Rust ``split_ascii_whitespace``
does not).  A Rust tokenizer that sees raw text therefore has to: split on
ASCII whitespace, split
the PTB clitics / punctuation the same way (or be fed pre-tokenized,
space-separated text, which is how the test fixtures and the example
sentences are given), map the escapes above, and lowercase.  For
space-separated input the rule is simply: split on ASCII whitespace, apply
steps 1-2 to each piece.
"""

import re

PTB_ESCAPES = {
    "-LRB-": "(",
    "-RRB-": ")",
    "-LSB-": "[",
    "-RSB-": "]",
    "-LCB-": "{",
    "-RCB-": "}",
}

LABELS = ["very negative", "negative", "neutral", "positive", "very positive"]

_TOKEN_RE = re.compile(r"\(|\)|[^ \t\r\n()]+")  # ASCII whitespace only, see docstring


def normalize_token(tok):
    """Map one raw tree leaf (or raw whitespace-separated word) to a model token."""
    tok = PTB_ESCAPES.get(tok, tok)
    tok = tok.replace("\\/", "/").replace("\\*", "*")
    return tok.lower()


def tokenize_text(text):
    """Tokens of a pre-tokenized (space-separated) raw sentence, normalised."""
    return [normalize_token(t) for t in re.split(r"[ \t\r\n]+", text.strip(" \t\r\n")) if t]


class Tree:
    __slots__ = ("label", "children", "word")

    def __init__(self, label, children=None, word=None):
        self.label = label
        self.children = children or []
        self.word = word

    def leaves(self):
        if self.word is not None:
            return [self.word]
        out = []
        for c in self.children:
            out.extend(c.leaves())
        return out

    def subtrees(self):
        """All nodes, root first (pre-order)."""
        stack = [self]
        while stack:
            t = stack.pop()
            yield t
            stack.extend(reversed(t.children))


def parse_tree(line):
    """Parse one PTB tree line into a Tree (leaf words already normalised)."""
    toks = _TOKEN_RE.findall(line)
    pos = 0

    def node():
        nonlocal pos
        assert toks[pos] == "(", (pos, toks[pos : pos + 5])
        pos += 1
        label = int(toks[pos])
        pos += 1
        if toks[pos] != "(":  # leaf: (label word)
            word = normalize_token(toks[pos])
            pos += 1
            assert toks[pos] == ")"
            pos += 1
            return Tree(label, word=word)
        children = []
        while toks[pos] == "(":
            children.append(node())
        assert toks[pos] == ")"
        pos += 1
        return Tree(label, children)

    t = node()
    assert pos == len(toks), "trailing tokens in tree line"
    return t


def read_trees(path):
    with open(path, encoding="utf8") as f:
        for line in f:
            line = line.strip()
            if line:
                yield parse_tree(line)


def sentences(path):
    """Yield (root label, tokens) for every sentence of a tree file."""
    for t in read_trees(path):
        yield t.label, t.leaves()


def phrases(path):
    """Yield (label, tokens) for every labelled node (the root sentence and
    every subtree, including single-word leaves) of every tree."""
    for t in read_trees(path):
        for s in t.subtrees():
            yield s.label, s.leaves()


if __name__ == "__main__":
    import sys

    for lab, toks in sentences(sys.argv[1]):
        print(lab, " ".join(toks))
