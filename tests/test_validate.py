import pyarrow as pa
import pytest

from seed.generate import Generator
from seed.profiles import get_profile
from seed.validate import validate_batch


@pytest.fixture(scope="module")
def batch() -> pa.RecordBatch:
    return next(Generator(get_profile("ci")).tasks()).slice(0, 50)


def _with(batch: pa.RecordBatch, name: str, column: pa.Array) -> pa.RecordBatch:
    return batch.set_column(batch.schema.get_field_index(name), name, column)


def test_generated_batch_is_valid(batch):
    validate_batch("tasks", batch)


@pytest.mark.parametrize(
    "name, values, problem",
    [
        ("title", ["   "] * 50, "title must not be blank"),  # the model's own field_validator
        ("title", ["x" * 201] * 50, "at most 200"),  # max_length from the field
        ("category", ["fun"] * 50, "category must be one of"),
        ("priority", ["urgent"] * 50, "high"),  # enum members
        ("tags", ["[1, 2]"] * 50, "string"),  # list[str] carried as JSON
        ("title", [None] * 50, "null value"),  # required field
    ],
)
def test_invalid_values_stop_the_load(batch, name, values, problem):
    with pytest.raises(AssertionError, match=problem) as info:
        validate_batch("tasks", _with(batch, name, pa.array(values, pa.string())))
    assert f"tasks.{name}" in str(info.value)


def test_wrong_arrow_type_is_rejected(batch):
    with pytest.raises(AssertionError, match="does not carry"):
        validate_batch("tasks", _with(batch, "is_completed", pa.array(["yes"] * 50).cast(pa.large_binary())))
