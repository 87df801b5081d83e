import pytest

from shoplens.common.errors import QueryError
from shoplens.engine.query import check_image_file


@pytest.mark.parametrize("name", ["x" * 5000 + ".jpg", "a/" * 3000 + "x.jpg"])
def test_a_photo_path_too_long_to_look_up_is_a_query_error(name):
    """pathlib's exists() raises ENAMETOOLONG rather than answering False: a 5,000-character photo path ended
    `search --image` and the shell with an OSError traceback, and a queries-file line with one too. It is
    now a QueryError (the shell and a queries file go on with the next line), the path shown cut short."""
    with pytest.raises(QueryError, match=r"cannot be looked up \(File name too long\); give a shorter path") as caught:
        check_image_file(name)
    assert len(str(caught.value)) < 200
