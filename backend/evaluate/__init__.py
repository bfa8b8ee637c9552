"""Perplexity under eviction: the model run over a long text with each policy's cache applied."""
