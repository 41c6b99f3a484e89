"""The DPO held-out split keeps whole prompts apart: no held-out prompt is trained on."""

from __future__ import annotations

from character.distill.dpo_data_stage import split_by_prompt


def pairs_for(prompts: list[str], repeat: int) -> list[dict]:
    return [
        {"chosen": [{"role": "user", "content": p}, {"role": "assistant", "content": f"c{i}"}]}
        for i in range(repeat)
        for p in prompts
    ]


def test_held_out_prompts_never_appear_in_training() -> None:
    pairs = pairs_for([f"prompt {i}" for i in range(40)], repeat=3)
    train, held_out = split_by_prompt(pairs, 0.15, seed=3)
    assert len(train) + len(held_out) == len(pairs)
    train_prompts = {p["chosen"][0]["content"] for p in train}
    held_prompts = {p["chosen"][0]["content"] for p in held_out}
    assert not train_prompts & held_prompts
    assert 18 <= len(held_out) <= 18 + 2  # 15 % of 120 rows, in whole prompts of 3 rows
    assert split_by_prompt(pairs, 0.15, seed=3) == (train, held_out)  # seeded
    assert split_by_prompt(pairs, 0.15, seed=4)[1] != held_out


def test_edge_cases() -> None:
    one_prompt = pairs_for(["only"], repeat=4)
    train, held_out = split_by_prompt(one_prompt, 0.5, seed=0)
    assert held_out == [] and len(train) == 4  # holding out the only prompt would leave nothing to train
    two = pairs_for(["a", "b"], repeat=1)
    train, held_out = split_by_prompt(two, 0.01, seed=0)
    assert len(held_out) == 1 and len(train) == 1  # at least one held out when asked for
    assert split_by_prompt(two, 0.0, seed=0)[1] == []
