"""Distribution properties of the generated data, checked on the profiles themselves (no load)."""

import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from seed.generate import Generator
from seed.profiles import get_profile


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
