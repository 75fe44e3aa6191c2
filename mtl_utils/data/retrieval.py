"""A retrieval set: queries, passages and which answer each query, checked when built. The series' benchmark:
:mod:`series.headline_passages`; :mod:`mtl_utils.evaluation.retrieval` scores encoders on any such set."""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetrievalSet:
    """Queries, passages and which passages answer each query (string ids), checked by :func:`check_retrieval`."""

    query_ids: tuple[str, ...]
    queries: tuple[str, ...]
    corpus_ids: tuple[str, ...]
    passages: tuple[str, ...]
    relevant: Mapping[str, frozenset[str]] = field(repr=False)

    def __post_init__(self) -> None:
        check_retrieval(self.query_ids, self.queries, self.corpus_ids, self.passages, self.relevant)

    def __len__(self) -> int:
        return len(self.query_ids)


def _repeated(ids: Sequence[str]) -> list[str]:
    return sorted(i for i, n in Counter(ids).items() if n > 1)


def check_retrieval(query_ids: Sequence[str], queries: Sequence[str], corpus_ids: Sequence[str],
                    passages: Sequence[str], relevant: Mapping[str, frozenset[str]]) -> None:
    """``ValueError`` naming the problem: no queries, ids and texts of different lengths, repeated ids, a passage text
    under two ids (scores would depend on how ids sort), a query with no relevant passage, an unknown relevant id."""
    if len(query_ids) == 0:
        raise ValueError("a retrieval set needs at least one query; the query list is empty")
    if len(query_ids) != len(queries) or len(corpus_ids) != len(passages):
        raise ValueError(f"{len(query_ids)} query ids for {len(queries)} queries and {len(corpus_ids)} passage "
                         f"ids for {len(passages)} passages: give one id per text")
    for what, ids in (("query", query_ids), ("passage", corpus_ids)):
        repeated = _repeated(ids)
        if repeated:
            raise ValueError(f"duplicate {what} ids {repeated[:5]}{' …' if len(repeated) > 5 else ''}: "
                             f"each {what} needs its own id")
    first_id: dict[str, str] = {}
    for passage_id, text in zip(corpus_ids, passages):
        if text in first_id:
            raise ValueError(f"passages {first_id[text]!r} and {passage_id!r} have the same text ({text!r:.60}): "
                             "keep one copy of each passage (give it every relevant query)")
        first_id[text] = passage_id
    lonely = [q for q in query_ids if not relevant.get(q)]
    if lonely:
        raise ValueError(f"queries {lonely[:5]}{' …' if len(lonely) > 5 else ''} have no relevant passage: "
                         "every query needs at least one")
    known = set(corpus_ids)
    missing = sorted({(q, c) for q in query_ids for c in relevant[q] if c not in known})
    if missing:
        raise ValueError(f"relevant passages not in the corpus (query, passage): {missing[:5]}")
