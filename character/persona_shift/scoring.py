"""Per-token log-probabilities of assistant answers under a model (transformers, no generation).

The held-out preference accuracy compares how much training raised the likelihood of the teacher's
answer against the student's, and the quality check asks how surprising an answer is to the base
model; both need the log-probability of each answer token given the conversation before it,
rendered with the same chat template the engines and OpenRLHF use (``character.engines.chat``).
"""

from __future__ import annotations

from collections.abc import Sequence

from character.engines.base import Conversation
from character.engines.chat import prepare_messages


def answer_token_ids(
    tokenizer, conversation: Conversation, supports_system_role: bool
) -> tuple[list[int], int]:
    """(ids of the whole conversation, index of the answer's first token); the conversation ends
    with the assistant answer to score."""
    messages = prepare_messages(conversation, None, supports_system_role)
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
    full_ids = tokenizer(full, add_special_tokens=False).input_ids
    start = 0
    while start < min(len(prompt_ids), len(full_ids)) and prompt_ids[start] == full_ids[start]:
        start += 1
    return full_ids, start


class AnswerScorer:
    """A causal LM in inference mode that scores answers in batches."""

    def __init__(
        self,
        model_path: str,
        *,
        supports_system_role: bool = True,
        dtype: str = "float32",
        batch_size: int = 8,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype)).to(
            self.device
        )
        self.model.eval()
        self.supports_system_role = supports_system_role
        self.batch_size = batch_size

    def token_logprobs(self, conversations: Sequence[Conversation]) -> list[list[float]]:
        """For each conversation, the log-probability of every token of its final (assistant) turn."""
        encoded = [
            answer_token_ids(self.tokenizer, conv, self.supports_system_role) for conv in conversations
        ]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))  # little padding per batch
        results: list[list[float]] = [[] for _ in encoded]
        for begin in range(0, len(order), self.batch_size):
            batch = order[begin : begin + self.batch_size]
            for index, scores in zip(batch, self._score_batch([encoded[i] for i in batch]), strict=True):
                results[index] = scores
        return results

    def _score_batch(self, encoded: list[tuple[list[int], int]]) -> list[list[float]]:
        """One forward for the batch; the output layer runs on answer positions only
        (``openrlhf_ext.token_logps``: no full-vocabulary logits for prompts or padding)."""
        from openrlhf_ext.pair_scoring import decoder_hidden_states, logit_softcap
        from openrlhf_ext.token_logps import token_logps

        torch = self.torch
        width = max(len(ids) for ids, _ in encoded)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        attention = torch.zeros((len(encoded), width), dtype=torch.long)
        rows, positions, targets, lengths = [], [], [], []
        for row, (ids, start) in enumerate(encoded):  # right padding: positions stay 0..len-1
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
            answer = range(start, len(ids)) if start < len(ids) else range(0)
            rows += [row] * len(answer)
            positions += [k - 1 for k in answer]  # the position that predicts answer token k
            targets += [ids[k] for k in answer]
            lengths.append(len(answer))
        with torch.inference_mode():
            hidden = decoder_hidden_states(
                self.model,
                input_ids.to(self.device),
                attention.to(self.device),
                (torch.arange(width)[None, :].expand(len(encoded), -1)).to(self.device),
            )
            selected = hidden[torch.tensor(rows), torch.tensor(positions)]
            logps = token_logps(
                selected,
                self.model.get_output_embeddings(),
                torch.tensor(targets, device=self.device),
                softcap=logit_softcap(self.model),
            ).tolist()
        out, begin = [], 0
        for length in lengths:
            out.append(logps[begin : begin + length])
            begin += length
        return out

    def close(self) -> None:
        self.model = None
        import gc

        gc.collect()
