"""Masked-language-model corruption of packed batches (BERT's 80/10/10 rule).

Usage in the pretraining loop, with sparse prediction (the MLM head runs on masked positions only,
as in Cramming)::

    masker = MLMMasker(corpus.tokenizer, mlm_probability=0.25)
    generator = torch.Generator().manual_seed(seed)
    inputs, labels = masker(batch_input_ids, generator)      # both LongTensor[B, L]
    hidden = model.bert(input_ids=inputs).last_hidden_state   # [B, L, H]
    predicted = labels != -100                                # the masked positions
    logits = model.cls(hidden[predicted])                     # [n_masked, vocab]
    loss = F.cross_entropy(logits, labels[predicted])

``labels`` is -100 wherever nothing is predicted, so the dense form
``BertForMaskedLM(input_ids=inputs, labels=labels)`` computes the same loss.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100


class MLMMasker:
    """Choose each non-special token with ``mlm_probability``; of the chosen, replace 80% with
    ``[MASK]``, 10% with a random non-special token, and keep 10% unchanged.

    All randomness comes from the ``generator`` passed per call, so a batch is reproducible from
    the generator's state (save ``generator.get_state()`` in checkpoints to resume exactly).
    """

    def __init__(
        self,
        tokenizer,
        mlm_probability: float = 0.15,
        mask_fraction: float = 0.8,
        random_fraction: float = 0.1,
    ):
        if not 0.0 < mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability}")
        if mask_fraction < 0 or random_fraction < 0 or mask_fraction + random_fraction > 1:
            raise ValueError("mask_fraction and random_fraction must be >= 0 and sum to at most 1")
        if tokenizer.mask_token_id is None:
            raise ValueError("the tokenizer has no [MASK] token")
        self.mlm_probability = mlm_probability
        self.mask_fraction = mask_fraction
        self.random_fraction = random_fraction
        self.mask_token_id = tokenizer.mask_token_id
        vocab_size = len(tokenizer)
        # [UNK] is special too: predicting it teaches nothing, and a random [CLS] would confuse.
        special = sorted({i for i in tokenizer.all_special_ids if i is not None and i < vocab_size})
        self.special_ids = torch.tensor(special, dtype=torch.long)
        is_special = torch.zeros(vocab_size, dtype=torch.bool)
        is_special[self.special_ids] = True
        self.random_token_ids = torch.arange(vocab_size)[~is_special]

    def __call__(
        self, input_ids: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(masked_input_ids, labels)``, LongTensors shaped as input; labels -100 = not predicted."""
        input_ids = input_ids.long()
        shape, device = input_ids.shape, generator.device
        chosen = torch.rand(shape, generator=generator, device=device)
        action = torch.rand(shape, generator=generator, device=device)
        pick = torch.randint(len(self.random_token_ids), shape, generator=generator, device=device)
        return self._corrupt(input_ids, chosen, action, pick)

    def per_row(
        self, input_ids: torch.Tensor, generators: list[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Row ``i`` masked with ``generators[i]``: exactly ``self(input_ids[i:i+1], generators[i])``
        for every row, but only the random draws are made per row (3 calls), the rest at once."""
        input_ids = input_ids.long()
        length, vocab = input_ids.shape[1], len(self.random_token_ids)
        draws = [
            (
                torch.rand((1, length), generator=g, device=g.device),
                torch.rand((1, length), generator=g, device=g.device),
                torch.randint(vocab, (1, length), generator=g, device=g.device),
            )
            for g in generators
        ]
        chosen, action, pick = (torch.cat(parts) for parts in zip(*draws, strict=True))
        return self._corrupt(input_ids, chosen, action, pick)

    def _corrupt(self, input_ids, chosen, action, pick) -> tuple[torch.Tensor, torch.Tensor]:
        """BERT's rule from the draws: ``chosen`` and ``action`` uniform in [0, 1), ``pick`` an index
        into the random-token table, all shaped as ``input_ids``."""
        device = input_ids.device
        chosen, action, pick = chosen.to(device), action.to(device), pick.to(device)
        maskable = ~torch.isin(input_ids, self.special_ids.to(device))
        predicted = (chosen < self.mlm_probability) & maskable
        labels = torch.where(predicted, input_ids, torch.full_like(input_ids, IGNORE_INDEX))

        to_mask = predicted & (action < self.mask_fraction)
        to_random = (
            predicted & (action >= self.mask_fraction) & (action < self.mask_fraction + self.random_fraction)
        )
        random_tokens = self.random_token_ids.to(device)[pick]

        masked = input_ids.clone()
        masked[to_mask] = self.mask_token_id
        masked[to_random] = random_tokens[to_random]
        return masked, labels
