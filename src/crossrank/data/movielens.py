"""MovieLens 100K as the TensorFlow Recommenders DCN tutorial uses it (rating regression).

One row per rating in ``u.data`` (file order kept), joined with the rater's ``u.user`` line:

    user_id, movie_id, user_zip_code, user_occupation_text, user_gender ("M"/"F"):  string
    bucketized_user_age: int64, the raw age mapped like TensorFlow Datasets'
        ``movielens/100k-ratings`` to the lower bound of its MovieLens-1M age group:
        1 (under 18), 18, 25, 35, 45, 50, 56 (56 and over)
    user_rating: float64 label, 1..5

Every feature is categorical (:func:`movielens_schema`, task ``"regression"``). ``u.user`` is
latin-1 per the dataset README, so it is decoded as latin-1 (it is ASCII in practice).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from crossrank.data.multi_valued import MultiValuedSpec
from crossrank.data.schema import TableSchema

AGE_GROUPS: tuple[int, ...] = (1, 18, 25, 35, 45, 50, 56)


def movielens_schema(*, genres: str | None = None) -> TableSchema:
    """Label ``user_rating``; six categorical features; task regression; with ``genres`` (a
    pooling: sum, mean or max) the movie's genres as one multi-valued field (:func:`add_genres`).

    Example:
        >>> movielens_schema().categorical[:2], movielens_schema().task
        (('user_id', 'movie_id'), 'regression')
        >>> movielens_schema(genres="mean").multi_valued_names
        ('genres',)
    """
    lists = () if genres is None else (MultiValuedSpec("genres", "|", pooling=genres,
                                                       max_length=19),)
    return TableSchema(
        label="user_rating",
        dense=(),
        categorical=(
            "user_id",
            "movie_id",
            "user_gender",
            "user_zip_code",
            "user_occupation_text",
            "bucketized_user_age",
        ),
        task="regression",
        multi_valued=lists,
    )


def bucketize_age(age: np.ndarray) -> np.ndarray:
    """Lower bound of the age group of each age.

    Example:
        >>> bucketize_age(np.array([7, 18, 24, 25, 49, 50, 73])).tolist()
        [1, 18, 18, 25, 45, 50, 56]
    """
    groups = np.asarray(AGE_GROUPS)
    return groups[np.searchsorted(groups, np.asarray(age), side="right") - 1]


def _read(path: Path, names: list[str], types: dict[str, pa.DataType], sep: str) -> pa.Table:
    if not path.is_file():
        raise FileNotFoundError(f"MovieLens file not found: {str(path)!r}")
    return pa_csv.read_csv(
        str(path),
        read_options=pa_csv.ReadOptions(column_names=names, encoding="latin-1"),
        parse_options=pa_csv.ParseOptions(delimiter=sep, quote_char=False),
        convert_options=pa_csv.ConvertOptions(column_types=types, strings_can_be_null=False),
    )


def load_movielens_100k(root: str | Path) -> pa.Table:
    """Read ``root/u.data`` and ``root/u.user`` into the tutorial's features.

    Returns:
        100,000 rows with the columns of :func:`movielens_schema` (see the module docstring).
    """
    root = Path(root)
    ratings = _read(
        root / "u.data",
        ["user_id", "movie_id", "rating", "timestamp"],
        {"user_id": pa.int64(), "movie_id": pa.int64(), "rating": pa.float64(),
         "timestamp": pa.int64()},
        "\t",
    )
    users = _read(
        root / "u.user",
        ["user_id", "age", "gender", "occupation", "zip_code"],
        {"user_id": pa.int64(), "age": pa.int64(), "gender": pa.string(),
         "occupation": pa.string(), "zip_code": pa.string()},
        "|",
    )
    user_ids = users["user_id"].to_numpy()
    if len(np.unique(user_ids)) != len(user_ids):
        raise ValueError(f"{root / 'u.user'} lists a user twice")
    # row of each rating's user in u.user, vectorised: position of user_id in the sorted ids
    order = np.argsort(user_ids)
    rated = ratings["user_id"].to_numpy()
    at = np.searchsorted(user_ids[order], rated)
    at = np.minimum(at, len(order) - 1)
    if not np.array_equal(user_ids[order][at], rated):
        unknown = rated[user_ids[order][at] != rated][0]
        raise ValueError(f"{root / 'u.data'} rates for user {unknown}, who is not in u.user")
    rows = pa.array(order[at])
    return pa.table({
        "user_id": ratings["user_id"].cast(pa.string()),
        "movie_id": ratings["movie_id"].cast(pa.string()),
        "user_gender": users["gender"].take(rows),
        "user_zip_code": users["zip_code"].take(rows),
        "user_occupation_text": users["occupation"].take(rows),
        "bucketized_user_age": pa.array(bucketize_age(users["age"].to_numpy())[order[at]]),
        "user_rating": ratings["rating"],
    })


def add_genres(table: pa.Table, root: str | Path) -> pa.Table:
    """``table`` (from :func:`load_movielens_100k`) with a ``genres`` column: each movie's
    genres from ``root/u.item``'s 19 flags, '|'-joined in ``u.genre``'s order (``unknown``
    where that is the flag set)."""
    root = Path(root)
    names = ["movie_id", "title", "release", "video_release", "url"] + [f"g{i}" for i in range(19)]
    items = _read(root / "u.item", names, {"movie_id": pa.int64()} |
                  {f"g{i}": pa.int8() for i in range(19)}, "|")
    genre_names = np.array(["unknown", "Action", "Adventure", "Animation", "Children's",
                            "Comedy", "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir",
                            "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                            "War", "Western"])
    flags = np.stack([items[f"g{i}"].to_numpy() for i in range(19)], axis=1)  # (movies, 19)
    movie, genre = np.nonzero(flags)  # row-major: each movie's genres in order
    offsets = np.concatenate([[0], np.cumsum(np.bincount(movie, minlength=len(flags)))])
    lists = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)),
                                     pa.array(genre_names[genre]))
    joined = pc.binary_join(lists, "|")
    ids = items["movie_id"].to_numpy()
    order = np.argsort(ids)
    rated = np.asarray(table["movie_id"].to_numpy(zero_copy_only=False), dtype=np.int64)
    at = np.minimum(np.searchsorted(ids[order], rated), len(order) - 1)
    if not np.array_equal(ids[order][at], rated):
        raise ValueError(f"{root / 'u.data'} rates a movie that is not in {root / 'u.item'}")
    return table.append_column("genres", joined.take(pa.array(order[at])))
