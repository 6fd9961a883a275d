"""Exact evaluation of Hamming retrieval: mAP, mAP@K, P@K, Recall@K, MedR, NDCG@K, ACG@K and PR
curves under explicit tie rules.

Every function runs on the packed engine (:mod:`mmhash.evaluation.engine`): codes packed into
64-bit words, Hamming distances by XOR + popcount in numba kernels that directly produce, per
query, the counts of items and of relevant items at each distance -- from which every metric
below is exact -- multi-threaded over queries, with O(n_bits) state per query, so memory does not
grow with Q x N. The first implementation (numpy, float matrix products) is kept unchanged in
:mod:`mmhash.evaluation.reference` as the test oracle: both give the same counts exactly and the
same metrics to 1e-12. :class:`HammingIndex` offers the same kernels as an exact search index.
The conventions, exactly:

Inputs
    Codes are 2-D integer arrays with values in {-1, +1} only (``(Q, n_bits)`` queries,
    ``(N, n_bits)`` retrieval items, same ``n_bits``); {0, 1} bits are refused, not guessed.
    Labels are 2-D multi-hot 0/1 arrays ``(n, C)`` (any int/bool dtype; floats holding 0/1 are
    accepted too), or -- for both sides together -- 1-D integer class-id vectors ``(n,)``, which
    are turned into one-hot over the union of the ids (so "share a label" means "same id").

Relevance and ranking
    Item ``x`` is relevant to query ``q`` iff they share at least one label
    (``Lq @ Lr.T > 0``). Items are ranked by Hamming distance, ascending. Distances take only
    ``n_bits + 1`` values, so ties are the rule.

Tie policies (``TIE_POLICIES``)
    ``expected`` (default)
        The exact expectation of the metric when each group of equal distance is put in a
        uniformly random order (McSherry & Najork, ECIR 2008). Computed in closed form from the
        per-query counts of items and relevant items at each distance; it does not depend on the
        order of the retrieval set. See :mod:`mmhash.evaluation.ties` for the formulas.
    ``optimistic`` / ``pessimistic``
        Relevant items first / last inside every tie group. For mAP and P@K these bound
        ``expected`` from above / below. For mAP@K they are just these two orders: with the
        "normalise by relevant items in the top K" convention, pulling one more relevant item
        into the top K at a low precision can *lower* AP@K, so there they need not bound it.
    ``index``
        Ties broken by position in the retrieval set (a stable sort by distance), which is what
        most published evaluation scripts do implicitly; use it only to compare with papers.

Metrics (each token defined once, in :mod:`mmhash.evaluation.measures`)
    ``map``: mean over *all* queries of average precision, AP = (1/R) * sum over relevant items
    of the precision at their rank, R the number of relevant items; a query with R = 0 has AP 0
    and still counts in the mean.
    ``map@K``: the ranking is truncated at K positions (K > N means N) and AP is normalised by
    the number of relevant items within the top K (the DJSRH-family convention); 0 if there are
    none. Under ``expected`` the tie group straddling position K makes that number random; the
    exact expectation conditions on it (hypergeometric).
    ``p@K``: relevant items among the first K positions divided by K, with K clipped to N.
    ``recall@K`` and ``medr`` (instance-level retrieval, for paired data): the single relevant
    item of query q is its own pair -- the same row seen through the retrieval view, ranked
    among the paired items of all Q queries (``pair_codes``, (Q, n_bits)); labels play no
    part. ``recall@K``: the fraction of queries whose pair is in the first K positions (under
    ``expected``, the probability, averaged); ``medr``: the median over queries of the pair's
    rank, 1-based -- under ``expected`` the pair's expected rank within its tie group,
    ``before + (m + 1) / 2`` with ``m`` items in that group (so MedR is the median of expected
    ranks, not the expectation of the median). Lower MedR is better.
    ``ndcg@K`` and ``acg@K`` (graded relevance): the gain of an item is the number of labels it
    shares with the query (1 or 0 for class ids); see :mod:`mmhash.evaluation.graded`.
    PR curve: for radius r = 0..n_bits the items at distance <= r are retrieved (whole tie
    groups, so no policy is needed); precision is averaged over the queries that retrieve at
    least one item at that radius (it is undefined for the others), recall over the queries with
    at least one relevant item.

Real-valued rankings
    :func:`evaluate_ranking` evaluates a ranking by real-valued distances (a quantiser's
    asymmetric distance, a reference row's cosine) with the same metrics and the same four tie
    policies: equal distances are ties, grouped per query and fed to the same formulas
    (:mod:`mmhash.evaluation.ranking`). It has no PR curve by radius.

Memory and threads
    No Q x N matrix is built except by :func:`hamming_distance` and :func:`relevance`, whose
    result is that matrix: the kernels stream the retrieval set in tiles and keep per-query
    histograms (queries go to the kernels in blocks of ``engine.QUERY_BLOCK``). Threads are
    numba's (``NUMBA_NUM_THREADS``, default: all cores).
"""

from mmhash.evaluation.hamming import hamming_distance, relevance
from mmhash.evaluation.index import HammingIndex
from mmhash.evaluation.measures import (
    METRIC_FORMS,
    Metric,
    metric_title,
    parse_metric,
    parse_metrics,
)
from mmhash.evaluation.metrics import (
    PRCurve,
    TaskEvaluation,
    average_precision,
    evaluate,
    evaluate_task,
    mean_average_precision,
    pr_curve,
    precision_at_k,
)
from mmhash.evaluation.packing import pack_codes, unpack_codes
from mmhash.evaluation.ranking import evaluate_ranking
from mmhash.evaluation.ties import TIE_POLICIES

__all__ = [
    "METRIC_FORMS",
    "TIE_POLICIES",
    "Metric",
    "TaskEvaluation",
    "evaluate_ranking",
    "evaluate_task",
    "metric_title",
    "parse_metric",
    "parse_metrics",
    "HammingIndex",
    "PRCurve",
    "average_precision",
    "evaluate",
    "hamming_distance",
    "mean_average_precision",
    "pack_codes",
    "pr_curve",
    "precision_at_k",
    "relevance",
    "unpack_codes",
]
