from bert_helu.runtime.rules import above, at_least, broken_rule, is_int, is_number

RULES = {
    "train.lr": (lambda v: v > 0, "> 0"),
    "train.epochs": (lambda v: is_int(v) and v >= 1, "a positive integer"),
    "seed": (lambda v: v >= 0, ">= 0"),
}


def test_the_first_broken_rule_in_table_order_names_its_dotted_key_and_value():
    values = {"seed": -1, "train": {"lr": 0.1, "epochs": True}}
    assert broken_rule(values, RULES) == ("train.epochs", True, "a positive integer")
    assert broken_rule({"seed": 0, "train": {"lr": 0.1, "epochs": 2}}, RULES) is None


def test_keys_absent_from_the_values_are_not_checked():
    assert broken_rule({"train": {"lr": 0.1}}, RULES) is None
    assert broken_rule({"train": 3, "seed": -2}, RULES) == ("seed", -2, ">= 0")


def test_booleans_are_no_numbers():
    assert [is_int(v) for v in (3, True, 3.0)] == [True, False, False]
    assert [is_number(v) for v in (3, 2.5, False, "1")] == [True, True, False, False]


def test_bounds_say_what_the_value_must_be():
    rules = {"a": at_least(1), "b": at_least(0, "0: never"), "c": above(0)}
    assert broken_rule({"a": 0}, rules) == ("a", 0, ">= 1")
    assert broken_rule({"a": 1, "b": -1}, rules) == ("b", -1, ">= 0 (0: never)")
    assert broken_rule({"b": 0, "c": 0.0}, rules) == ("c", 0.0, "> 0")
