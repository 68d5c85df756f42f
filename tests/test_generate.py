"""Distribution properties of the generated data, checked on the profiles themselves (no load)."""

import hashlib
import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from seed.generate import _BUCKETS, _WORD_CUM, ByWeight, Generator
from seed.load import TABLE_ORDER, _Encoded
from seed.profiles import GENERATOR_VERSION, get_profile


@pytest.fixture(scope="module")
def default_tasks():
    gen = Generator(get_profile("default"))
    return gen, pa.Table.from_batches(list(gen.tasks()))


def test_default_profile_shape(default_tasks):
    _, tasks = default_tasks
    per_user = Counter(tasks["user_id"].to_pylist())
    assert len(per_user) == 20 and min(per_user.values()) >= 10_000
    assert max(per_user.values()) == 5 * min(per_user.values())  # power users
    completed = pc.mean(tasks["is_completed"].cast(pa.int8())).as_py()
    assert abs(completed - 0.70) <= 0.02
    deleted = tasks["deleted_at"].null_count / len(tasks)
    assert 0.01 <= 1 - deleted <= 0.05
    due = 1 - tasks["due_date"].null_count / len(tasks)
    assert abs(due - 0.60) <= 0.02
    span_days = (pc.max(tasks["created_at"]).as_py() - pc.min(tasks["created_at"]).as_py()).days
    assert 700 <= span_days <= 730


def test_tags_are_skewed_and_some_are_rare(default_tasks):
    _, tasks = default_tasks
    counts = Counter(t for tags in tasks["tags"].to_pylist() for t in json.loads(tags))
    ranked = [n for _, n in counts.most_common()]
    assert ranked[0] > 10 * ranked[-1]  # Zipf-like: the head dwarfs the tail
    assert len(ranked) == 24


def test_conversations_and_messages_within_their_ranges():
    gen = Generator(get_profile("default"))
    conversations = pa.Table.from_batches(list(gen.conversations()))
    per_user = Counter(conversations["user_id"].to_pylist())
    assert all(10 <= n <= 30 for n in per_user.values())
    messages = pa.Table.from_batches(list(gen.messages()))
    per_conv = Counter(messages["conversation_id"].to_pylist())
    assert all(20 <= n <= 500 for n in per_conv.values()) and len(per_conv) == len(conversations)
    assert gen.row_counts()["messages"] == len(messages)


def test_same_seed_same_batches_different_seed_different():
    a = list(Generator(get_profile("ci")).tasks())
    b = list(Generator(get_profile("ci")).tasks())
    c = list(Generator(get_profile("ci", seed=7)).tasks())
    assert all(x.equals(y) for x, y in zip(a, b, strict=True))
    assert not a[0].equals(c[0])


def test_words_are_real_and_searchable():
    gen = Generator(get_profile("ci"))
    titles = next(gen.tasks())["title"].to_pylist()
    words = Counter(w.lower() for t in titles for w in t.split())
    assert len(words) > 500 and words.most_common(1)[0][1] > 20 * np.median(list(words.values()))


# The `ci` profile's rows as the server receives them (the binary COPY stream of every table), at
# generator version 3. Data that changes must bump GENERATOR_VERSION, so a database seeded by the
# old generator is seeded again instead of reused: change both, never the digest alone.
CI_DIGEST = (3, "dd7f18e1bf080bbb94f72fdd7304d6c86469b9b21b20dfe4cb569e2d4e25183c")


def test_the_generated_rows_change_only_with_the_generators_version():
    gen, digest = Generator(get_profile("ci")), hashlib.sha256()
    for table in TABLE_ORDER:
        encoded = _Encoded(table, getattr(gen, table)())
        for data, rows in iter(encoded.next_chunk, None):
            digest.update(data)
            if not rows:  # the trailer
                break
    assert (GENERATOR_VERSION, digest.hexdigest()) == CI_DIGEST


TAG_WEIGHTS = np.cumsum(1.0 / np.arange(1, 25) ** 1.1)
QUARTERS = np.cumsum(np.full(4, 0.25))  # steps that end exactly on bucket edges


@pytest.mark.parametrize("cumulative", [_WORD_CUM, TAG_WEIGHTS, QUARTERS], ids=["words", "tags", "quarters"])
def test_drawing_by_weight_is_exactly_the_search_it_replaces(cumulative):
    rng = np.random.default_rng(1)
    edges = np.arange(_BUCKETS) / _BUCKETS  # every bucket's first value, and its neighbours below and above
    u = np.concatenate([rng.random(1_000_000), edges, np.nextafter(edges, 0)[1:], np.nextafter(edges, 1)])
    by_weight = ByWeight(cumulative)
    drawn = by_weight(u)
    assert np.array_equal(drawn, np.searchsorted(cumulative, u * cumulative[-1], side="right"))
    assert (~by_weight.whole).any() and by_weight.whole.any()  # both ways of answering were taken
    square = u[: 3 * 100_000].reshape(-1, 3)  # as the tags draw them, three a task
    assert np.array_equal(by_weight(square), np.searchsorted(cumulative, square * cumulative[-1], side="right"))
