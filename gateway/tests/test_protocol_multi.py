"""v1 extensions: answers, options, candidates and verdicts that name several products."""
import pytest

from cart_gateway import protocol as P
from cart_gateway.reconcile import answer_of, verdict_of


def test_answer_with_several_skus_decodes_and_maps_to_the_engine():
    a = P.decode_answer(b'{"v":1,"prompt_id":"p1","answer_id":"a1","choice":{"skus":["S1","S1","S2"]}}')
    assert a.choice.skus == ["S1", "S1", "S2"]
    e = answer_of(a, 5)
    assert e.skus == ("S1", "S1", "S2") and e.sku is None and e.mono_ms == 5


def test_v1_answer_and_verdict_still_decode_unchanged():
    a = answer_of(P.decode_answer(b'{"v":1,"prompt_id":"p1","answer_id":"a1","choice":{"sku":"S1"}}'), 0)
    assert a.sku == "S1" and a.skus is None
    v = verdict_of(P.decode_verdict(b'{"v":1,"review_id":"r","verdict_id":"x","sku":"S1","qty":2}'), 0)
    assert (v.sku, v.qty, v.adds, v.removes) == ("S1", 2, None, None)


@pytest.mark.parametrize("choice, msg", [
    (b'{"sku":"S1","skus":["S2"]}', "exactly one of sku, skus"),
    (b'{"skus":[]}', "'choice.skus'"),
    (b'{"skus":["S1",""]}', "'choice.skus.1'"),
    (b'{"skus":["a","b","c","d","e","f","g","h","i"]}', "'choice.skus'"),
])
def test_bad_multi_answers_are_rejected_naming_the_field(choice, msg):
    with pytest.raises(P.ProtocolError, match=msg):
        P.decode_answer(b'{"v":1,"prompt_id":"p1","answer_id":"a1","choice":' + choice + b'}')


def test_verdict_with_item_lists():
    v = P.decode_verdict(b'{"v":1,"review_id":"r","verdict_id":"x","sku":"S2","qty":1,'
                         b'"adds":[{"sku":"S2","qty":1}],"removes":[{"sku":"S1","qty":1},{"sku":null,"qty":1}]}')
    e = verdict_of(v, 7)
    assert e.adds == (("S2", 1),) and e.removes == (("S1", 1), (None, 1))


@pytest.mark.parametrize("extra, msg", [
    (b'"adds":[{"sku":"S1","qty":0}]', "'adds.0.qty'"),
    (b'"removes":[{"sku":"S1"}]', "'removes.0.qty'"),
    (b'"adds":[{"sku":"S1","qty":1,"price":3}]', "'adds.0.price'"),
    (b'"adds":[{"sku":"","qty":1}]', "'adds.0.sku'"),
    (b'"removes":[{"sku":"' + b"S" * 65 + b'","qty":1}]', "'removes.0.sku'"),
    (b'"adds":[]', "adds/removes: present but both empty"),
    (b'"adds":[],"removes":[]', "adds/removes: present but both empty"),
])
def test_bad_verdict_items_are_rejected_naming_the_field(extra, msg):
    with pytest.raises(P.ProtocolError, match=msg):
        P.decode_verdict(b'{"v":1,"review_id":"r","verdict_id":"x","sku":null,"qty":0,' + extra + b'}')
    with pytest.raises(P.ProtocolError, match=msg):    # a summary sku/qty does not rescue it
        P.decode_verdict(b'{"v":1,"review_id":"r","verdict_id":"x","sku":"S1","qty":1,' + extra + b'}')


def test_verdict_with_an_empty_sku_is_rejected():
    with pytest.raises(P.ProtocolError, match="field 'sku'"):
        P.decode_verdict(b'{"v":1,"review_id":"r","verdict_id":"x","sku":"","qty":1}')


def test_verdict_with_one_empty_list_beside_a_full_one_is_accepted():
    v = P.decode_verdict(b'{"v":1,"review_id":"r","verdict_id":"x","sku":"S1","qty":1,'
                         b'"adds":[{"sku":"S1","qty":1}],"removes":[]}')
    assert verdict_of(v, 7).adds == (("S1", 1),) and verdict_of(v, 7).removes == ()


def test_prompt_option_and_review_candidate_may_name_several_skus():
    p = P.decode_output("prompt", b'{"v":1,"prompt_id":"p","kind":"pick","text":"t","created_ms":0,'
                                  b'"options":[{"sku":"S1","name":"A + B","skus":["S1","S2"]},{"sku":"S3","name":"C"}]}')
    assert p.options[0].skus == ["S1", "S2"] and p.options[1].skus is None
    r = P.decode_output("review request", b'{"v":1,"review_id":"r","cart":"c","created_ms":0,"frames":[],'
                                          b'"reason":"x","candidates":[{"sku":"S1","score":0.5,"skus":["S1","S2"]}]}')
    assert r.candidates[0].skus == ["S1", "S2"]
