"""The split protocols of the field's paper families, named and fixed.

Numbers from different papers on "MIRFlickr-25K" are only comparable under the same split, and
each family splits its files its own way. A protocol turns the rows a reader returned
(:class:`~mmhash.data.formats.RawData`, with the collection it recognised in
``notes["collection"]``) into the four parts of a :class:`~mmhash.data.dataset.Split`;
validation is always a fixed 10% of the training rows (:func:`~mmhash.data.splits.
validation_subset`), never a query.

==========  ========================================================================================
``dcmh``    queries = the first 2,000 rows (MIRFlickr) / 2,100 (NUS-WIDE), retrieval = the rest,
            training = 5,000 / 10,500 rows drawn from the retrieval set with ``default_rng(0)``
            (MIRFlickr's 20,015-row draw is the stored ``mirflickr25k.npz``). The DCMH repository's
            own code (jiangqy/DCMH-CVPR2017@67d0e84, ``DCMH_demo.py:19-22, 76-92``) trains on the
            10,000 rows after the queries; the 5,000-row draw is the unsupervised papers' size.
``djsrh``   DJSRH's per-label sampling (zs-zhong/DJSRH@6041c2d ``datasets.py:108-134`` MIRFlickr,
            ``206-222`` NUS-WIDE): for each label column in order, its rows in a random order,
            minus rows already taken; MIRFlickr takes 160 test + 400 train rows of the first
            label and 80 + 200 of each later one, then tops training up to 5,000 from the
            remaining database rows; NUS-WIDE takes 200 + 500 of every label, no top-up. Queries
            = the test rows, retrieval = every other row, training a subset of it. The original
            draws from NumPy's unseeded global generator at import time; here the same rule
            draws from ``default_rng(0)``, so the split is fixed (JDSH's loader is a copy).
``ucch``    UCCH's feature files (penghu-cs/UCCH@0c20e62 ``src/cmdataset.py:162-170, 187-193,
            200-205, 213-223``): the last 2,000 (MIRFlickr, IAPR TC-12) / 2,100 (NUS-WIDE) /
            5,000 (MS-COCO) rows are the queries and every other row is both the training and
            the retrieval set (UCCH issue #5 discusses the choice; its tables use it).
``ucmfh``   UCMFH's three pickles as given (XinyuXia97/UCMFH@116f015 ``load_dataset.py:27-53``):
            ``train.pkl`` trains, ``query.pkl`` queries, ``retrieval.pkl`` is the retrieval set.
            UCMFH itself trains on the first 4,992 training rows only and drops the last partial
            batch of 128 of the query and retrieval sets (``drop_last=True``, line 57); mmhash
            trains on all rows and scores every query against every item.
``file``    whatever split the file carries (train/test, train/query/database, ``*_idx``), else a
            generated one: mmhash's rule for every other format.
==========  ========================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mmhash.data.dataset import Split
from mmhash.data.formats._common import RawData
from mmhash.data.splits import (
    GENERATED_SEED,
    QUERY_FRACTION,
    generated_split,
    split_from_parts,
    validation_subset,
)
from mmhash.errors import DataError, UnknownNameError

#: The field's benchmark collections a reader can recognise (``RawData.notes["collection"]``).
COLLECTIONS = {
    "mirflickr25k": "MIRFlickr-25K (20,015 pairs, 24 labels)",
    "nuswide10": "NUS-WIDE, the 10 most frequent concepts (186,557 / 186,577 pairs)",
    "mscoco": "MS-COCO (122,218 pairs, 80 labels)",
    "iapr12": "IAPR TC-12 (20,000 pairs, 255 labels)",
}

#: Seed of every draw a protocol makes (DCMH's training draw, DJSRH's per-label sampling).
PROTOCOL_SEED = 0

_DCMH_SIZES = {"mirflickr25k": (2000, 5000), "nuswide10": (2100, 10500)}
_UCCH_QUERIES = {"mirflickr25k": 2000, "nuswide10": 2100, "mscoco": 5000, "iapr12": 2000}
# DJSRH: (test rows of the first label, train rows of the first label, test of each later
# label, train of each later label, training size topped up to or None).
_DJSRH_COUNTS = {"mirflickr25k": (160, 400, 80, 200, 5000), "nuswide10": (200, 500, 200, 500,
                                                                            None)}


@dataclass(frozen=True)
class Protocol:
    """One family's split rule.

    ``parts(raw)`` returns the query, retrieval and train rows (sorted int64; ``validation``
    too when the file carries it) and a one-line
    definition of what was done; ``metric`` says what the family's own code reports, for
    captions that put its published numbers beside mmhash's.
    """

    name: str
    summary: str
    metric: str
    parts: Callable[[RawData], tuple[dict[str, np.ndarray], str]]


def _collection(raw: RawData, protocol: str, known: dict) -> str:
    collection = raw.notes.get("collection")
    if collection not in known:
        which = COLLECTIONS.get(collection, "a file of no known collection")
        raise DataError(f"protocol {protocol!r} is defined for {', '.join(known)} only, and "
                        f"this data is {which}; choose another --protocol (e.g. file)")
    return collection


def _dcmh(raw: RawData) -> tuple[dict[str, np.ndarray], str]:
    from mmhash.data.formats.dcmh import family_parts

    collection = _collection(raw, "dcmh", _DCMH_SIZES)
    queries, train = _DCMH_SIZES[collection]
    if raw.n <= queries + train:
        raise DataError(f"protocol 'dcmh' needs more than {queries} queries + {train} training "
                        f"rows; the data has {raw.n}")
    parts, note = family_parts(raw.n, queries, train)
    return parts, (f"dcmh: queries = rows 0..{queries - 1}, retrieval = the other "
                   f"{raw.n - queries:,} rows, training = {note}")


def djsrh_rows(labels: np.ndarray, counts: tuple[int, int, int, int, int | None],
               seed: int = PROTOCOL_SEED) -> tuple[np.ndarray, np.ndarray]:
    """DJSRH's per-label sampling of test and training rows (sorted int64), seeded.

    ``counts`` = (test, train) rows of the first label, (test, train) of each later label, and
    the training size to top up to from the database rows (None: no top-up). The order of the
    draws follows DJSRH's ``datasets.py`` (one permutation per label column, rows already taken
    skipped, then one permutation of the database rows outside training for the top-up).
    """
    first_test, first_train, test_each, train_each, top_up = counts
    rng = np.random.default_rng(seed)
    taken = np.zeros(len(labels), dtype=bool)
    test, train = [], []
    for column in range(labels.shape[1]):
        rows = np.flatnonzero(labels[:, column])
        rows = rows[rng.permutation(len(rows))]
        rows = rows[~taken[rows]]
        n_test, n_train = (first_test, first_train) if column == 0 else (test_each, train_each)
        test.append(rows[:n_test])
        train.append(rows[n_test:n_test + n_train])
        taken[rows[:n_test + n_train]] = True
    test_rows = np.concatenate(test).astype(np.int64)
    train_rows = np.concatenate(train).astype(np.int64)
    if top_up is not None and len(train_rows) < top_up:
        is_test = np.zeros(len(labels), dtype=bool)
        is_test[test_rows] = True
        pick = np.flatnonzero(~is_test & ~taken)
        pick = pick[rng.permutation(len(pick))]
        train_rows = np.concatenate([train_rows, pick[:top_up - len(train_rows)]])
    return np.sort(test_rows), np.sort(train_rows)


def _djsrh(raw: RawData) -> tuple[dict[str, np.ndarray], str]:
    collection = _collection(raw, "djsrh", _DJSRH_COUNTS)
    counts = _DJSRH_COUNTS[collection]
    test, train = djsrh_rows(raw.labels, counts)
    retrieval = np.setdiff1d(np.arange(raw.n, dtype=np.int64), test)
    first_test, first_train, test_each, train_each, top_up = counts
    rule = (f"{first_test} test + {first_train} training rows of the first label, "
            f"{test_each} + {train_each} of each later one")
    rule += f", training topped up to {top_up:,}" if top_up else ", no top-up"
    return ({"query": test, "retrieval": retrieval, "train": train},
            f"djsrh: per-label sampling ({rule}; default_rng({PROTOCOL_SEED})): "
            f"{len(test):,} queries, {len(train):,} training rows, retrieval = the other "
            f"{len(retrieval):,} rows")


def _ucch(raw: RawData) -> tuple[dict[str, np.ndarray], str]:
    collection = _collection(raw, "ucch", _UCCH_QUERIES)
    queries = _UCCH_QUERIES[collection]
    if raw.n <= queries:
        raise DataError(f"protocol 'ucch' takes the last {queries} rows as queries; the data "
                        f"has {raw.n}")
    rest = np.arange(raw.n - queries, dtype=np.int64)
    return ({"query": np.arange(raw.n - queries, raw.n, dtype=np.int64), "retrieval": rest,
             "train": rest},
            f"ucch: queries = the last {queries:,} rows, training = retrieval = the other "
            f"{raw.n - queries:,} rows")


def _ucmfh(raw: RawData) -> tuple[dict[str, np.ndarray], str]:
    if not {"train", "query", "retrieval"} <= set(raw.parts) or raw.reader != "ucmfh":
        raise DataError("protocol 'ucmfh' is the split of UCMFH's train.pkl, query.pkl and "
                        "retrieval.pkl; this data is not read from them (choose dcmh, djsrh, "
                        "ucch or file)")
    parts = {p: np.asarray(raw.parts[p], dtype=np.int64) for p in ("query", "retrieval", "train")}
    return parts, (f"ucmfh: the files' own parts: {len(parts['train']):,} training rows "
                   f"(train.pkl, all of them; UCMFH uses the first 4,992), {len(parts['query']):,} "
                   f"queries (query.pkl), {len(parts['retrieval']):,} retrieval items "
                   f"(retrieval.pkl)")


def _file(raw: RawData) -> tuple[dict[str, np.ndarray], str]:
    carried = split_from_parts(raw.parts)
    if carried is not None:
        split, definition = carried
        return {p: getattr(split, p) for p in ("query", "retrieval", "train", "validation")}, (
            f"file: {definition}")
    split = generated_split(raw.n)
    return {p: getattr(split, p) for p in ("query", "retrieval", "train")}, (
        f"file: none carried; generated: {QUERY_FRACTION:.0%} of the rows drawn as queries with "
        f"default_rng({GENERATED_SEED}), the rest train = retrieval")


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("dcmh", "first 2,000/2,100 rows query, 5,000/10,500 drawn training rows",
             "mAP over the whole ranking (DCMH's code)", _dcmh),
    Protocol("djsrh", "per-label sampling of queries and training rows",
             "mAP@50 (DJSRH's code: calculate_top_map(topk=50))", _djsrh),
    Protocol("ucch", "last 2,000/2,100/5,000 rows query, training = retrieval = the rest",
             "mAP over the whole ranking (UCCH's code; it drops queries without a relevant "
             "item from the mean, mmhash counts them as 0)", _ucch),
    Protocol("ucmfh", "UCMFH's train/query/retrieval pickles as given",
             "mAP@50 (UCMFH's code)", _ucmfh),
    Protocol("file", "the split the file carries, else a generated one",
             "mAP over the whole ranking", _file),
)}

#: The protocol each reader's files get when none is named.
DEFAULT_PROTOCOL = {"dcmh": "dcmh", "extracted": "dcmh", "ucch-vgg": "ucch", "xyl": "ucch",
                    "dbtest": "ucch", "ucmfh": "ucmfh"}


def get_protocol(name: str) -> Protocol:
    """The protocol registered as ``name``; :class:`UnknownNameError` naming the valid ones."""
    if name not in PROTOCOLS:
        raise UnknownNameError("protocol", name, PROTOCOLS)
    return PROTOCOLS[name]


def default_protocol(raw: RawData) -> str:
    """The protocol a reader's files are split by when the user names none."""
    return DEFAULT_PROTOCOL.get(raw.reader, "file")


def apply_protocol(raw: RawData, name: str | None = None) -> tuple[Split, str, str]:
    """The split of ``raw`` under protocol ``name`` (default: the reader's family's own).

    Returns ``(split, protocol name, definition)``; the split's validation part is a fixed 10%
    of its training rows. :class:`DataError` when the data cannot be split that way (a
    collection the protocol is not defined for, too few rows).
    """
    name = default_protocol(raw) if name is None else name
    protocol = get_protocol(name)
    parts, definition = protocol.parts(raw)
    validation = parts.get("validation")  # only the file's own split may carry one
    split = Split(query=parts["query"], retrieval=parts["retrieval"], train=parts["train"],
                  validation=validation_subset(parts["train"]) if validation is None
                  else validation)
    return split, name, definition
