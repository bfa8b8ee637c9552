"""Evaluate's caches (backend/evaluate/cache.py): eviction keeps, for every policy row, layer and KV head, exactly
the entries its mask keeps, in order, with the K/V they were computed with."""
import numpy as np
import torch

from backend.evaluate.cache import PolicyCaches


def test_keep_takes_each_rows_own_entries_in_order_from_every_layer():
    layers, kv, k, d, batch, keep_n = 3, 2, 9, 4, 3, 6
    gen = torch.Generator().manual_seed(0)
    prefix = [(torch.randn(1, kv, k, d, generator=gen), torch.randn(1, kv, k, d, generator=gen)) for _ in range(layers)]
    caches = PolicyCaches(prefix, batch)
    for layer in range(layers):  # every row starts from the prefix; make the rows differ, so a mix-up shows
        caches.cache.layers[layer].keys += torch.arange(batch, dtype=torch.float32)[:, None, None, None] * 100
    before = [(c.keys.clone(), c.values.clone()) for c in caches.cache.layers]
    rng = np.random.default_rng(1)
    mask = np.zeros((batch, layers * kv, k), bool)
    for row in mask.reshape(-1, k):  # each (policy, layer, KV head) keeps its own keep_n entries
        row[rng.choice(k, keep_n, replace=False)] = True
    caches.keep(mask)
    assert caches.length == keep_n
    for b in range(batch):
        for layer in range(layers):
            for h in range(kv):
                kept = np.flatnonzero(mask[b, layer * kv + h])  # ascending: the order is kept
                assert caches.pos[b, layer * kv + h].tolist() == kept.tolist()
                keys, values = caches.cache.layers[layer].keys, caches.cache.layers[layer].values
                assert keys.shape == values.shape == (batch, kv, keep_n, d)
                assert torch.equal(keys[b, h], before[layer][0][b, h, kept])
                assert torch.equal(values[b, h], before[layer][1][b, h, kept])
