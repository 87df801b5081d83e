import pytest

from shoplens.common.errors import QueryError
from shoplens.engine.query import SearchRequest, check_image_file


@pytest.mark.parametrize("name", ["x" * 5000 + ".jpg", "a/" * 3000 + "x.jpg"])
def test_a_photo_path_too_long_to_look_up_is_a_query_error(name):
    """pathlib's exists() raises ENAMETOOLONG rather than answering False: a 5,000-character photo path ended
    `search --image` and the shell with an OSError traceback, and a queries-file line with one too. It is
    now a QueryError (the shell and a queries file go on with the next line), the path shown cut short."""
    with pytest.raises(QueryError, match=r"cannot be looked up \(File name too long\); give a shorter path") as caught:
        check_image_file(name)
    assert len(str(caught.value)) < 200


def test_an_option_of_the_other_fusion_method_is_refused():
    """--norm zscore on an index that fuses with rrf (the default plan), or --rrf-k under wsum, changed nothing
    and said nothing: a QueryError now names the option and the method it belongs to."""
    from shoplens.engine.fusion import FusionPlan

    rrf, wsum = FusionPlan(method="rrf"), FusionPlan(method="wsum")
    with pytest.raises(QueryError, match=r"normalization 'zscore' \(--norm\) applies to wsum fusion only and this "
                                         r"search fuses with rrf; add fusion wsum"):
        SearchRequest(text="shirt", normalization="zscore").check_plan(rrf)
    with pytest.raises(QueryError, match=r"rrf_k \(--rrf-k\) applies to rrf fusion only and this search fuses with wsum"):
        SearchRequest(text="shirt", rrf_k=30).check_plan(wsum)
    request = SearchRequest(text="shirt", fusion="wsum", normalization="zscore")
    request.check_plan(request.plan(rrf))  # asked for wsum: the index's rrf plan is replaced
    SearchRequest(text="shirt", rrf_k=30).check_plan(rrf)
