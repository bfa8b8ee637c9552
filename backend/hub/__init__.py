"""The Model Hub service: search, model info, download, the local list and the HF token.

Everything goes through huggingface_hub (HfApi, snapshot_download, scan_cache_dir,
get_token); nothing here writes HTTP or walks the cache by hand. No network is a
normal state: search says so, downloads fall back to the local cache.
"""
