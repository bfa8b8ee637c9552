"""Public Api methods for the Cache Profile tab: presets, a profile job, snapshots, the hardware, a scenario at scale."""
from ..envelope import public
from ..errors import UserError
from ..profile import hardware, kv_bytes, presets, scenario, service
from ..validate import integer, params_dict


def _check_quest_k(k: int, context_length: int) -> None:
    """Quest fetches finished pages: a text within the model's context has at most context/16 of them, and a
    larger k would only size the page arrays (k = 65,536 took 6.7 GB on the demo model) for nothing."""
    from ..evaluate.quest import PAGE

    pages = -(-context_length // PAGE)
    if k > pages:
        raise UserError("bad_input", f"k = {k:,} is more than the {pages:,} pages of {PAGE} tokens that the model's "
                        f"context ({context_length:,} tokens) holds, so Quest could never fetch that many: use k "
                        f"up to {pages:,}.", "k")


class ProfileMethods:
    @public
    def profile_presets(self, params=None):
        """Both presets for this machine, sized for {length, block_size} (defaults 100,000 and 16) and kv_format."""
        p = params_dict(params)
        length = integer(p, "length", 100_000, 1, service.MAX_LENGTH)
        block_size = integer(p, "block_size", 16, 1, service.MAX_BLOCK_SIZE)
        fmt = _kv_format(p, self._state.model)  # the Constrained tiers are sized for the format's blocks
        bpt, source = kv_bytes.for_loaded(self._state.model) if fmt is None else kv_bytes.for_format(self._state.model, fmt)
        n_blocks = -(-length // block_size)
        weights = kv_bytes.weights_bytes(self._state.model)
        return {"presets": [presets.detected(weights, hardware.cached()), presets.constrained(n_blocks, block_size * bpt)],
                "bytes_per_token": bpt, "bytes_per_token_source": source, "l2_note": presets.L2_NOTE,
                "gpu_modelled": presets.gpu()["modelled"], "gpu_note": presets.gpu_note(),
                "policies": service.POLICIES}

    @public
    def profile_hardware(self, params=None):
        """{measure: false} → the cached measurements (or none yet); {measure: true} measures now (a few seconds)."""
        p = params_dict(params)
        measure = p.get("measure", False)
        if not isinstance(measure, bool):
            raise UserError("bad_input", "measure must be true or false.", "measure")
        got = hardware.measure() if measure else hardware.cached()
        g = presets.gpu()
        modelled = {"hbm_bandwidth_bps": g["bandwidth"], "pcie_bps": presets.PCIE5_X16, "disk_bps": presets.NVME_GEN4}
        return {"measured": got, "modelled": modelled, "gpu_note": presets.gpu_note(), "gpu_modelled": g["modelled"],
                "cache_path": str(hardware.cache_path())}

    @public
    def profile(self, params=None):
        """Start a profile job → {job_id}; its result is the summary, per-block arrays, timeline and snapshot steps."""
        state = self._state
        loaded = state.model
        fmt = _kv_format(params, loaded)
        per_token = kv_bytes.for_loaded(loaded) if fmt is None else kv_bytes.for_format(loaded, fmt)
        req = service.parse(params, *per_token, kv_bytes.weights_bytes(loaded))
        service.precheck(req)
        if req.trace == "model" and loaded is None:
            raise UserError("no_model", "A model trace needs a loaded model; load one or pick the synthetic trace.", "trace")
        if req.fetch_rule == "quest_bound":
            _check_quest_k(req.k, loaded.context_length)

        def work(progress):
            blocks = fetch = None
            if req.trace == "model":
                from ..attention.extract import view_rows
                from ..profile.block_trace import from_rows

                progress(0.0, "Running the model")
                ids, rows = view_rows(loaded, req.text, req.layer, req.head, req.aggregate)
                progress(0.005, "Pooling the model's attention per block")
                blocks = from_rows(rows, req.block_size)  # per block of B tokens, never n × n: up to the context
                one = req.aggregate != "all_layers"
                layer, head = (rows.layers[0], rows.head) if one else (None, None)
                del rows  # the kept queries and keys: not needed past here
                if req.fetch_rule == "quest_bound":
                    from ..profile.quest_fetch import fetch_sets

                    stage = "Quest's page choice (the model's keys and queries)"
                    progress(0.01, stage)
                    fetch = fetch_sets(loaded, ids, req.k, req.block_size, layer, head, req.aggregate,
                                       check=lambda: progress(0.01, stage))  # Cancel stops it here
            result, kept = service.run(req, progress, fetch=fetch, blocks=blocks)
            if blocks is not None and blocks.learned_sink is not None:  # gpt-oss: part of every row goes to a learned sink
                result["learned_sink_share"] = float(blocks.learned_sink.mean())
            state._last_profile = kept  # only a finished run replaces the layout the scrubber shows
            return result

        job = state.jobs.start("profile", work, exclusive=True)
        return {"job_id": job.id}

    @public
    def profile_snapshot(self, params=None):
        """{index} or {step} → the tier of every block at that snapshot of the last finished profile, and its cost."""
        return service.snapshot(getattr(self._state, "_last_profile", None), params)

    @public
    def profile_scenario(self, params=None):
        """"What would it cost at scale?" → {job_id}; the result: sizes, the HBM-exhaustion length and a replay
        (its summary, timeline and per-block arrays, as a profile has; the scrubber then walks the replay)."""
        state = self._state
        loaded = state.model
        p = params_dict(params)
        sp = scenario.parse(p)
        arch = scenario.architecture(p, loaded)
        req = service.parse({k: p[k] for k in ("policy", "reuse", "margin", "patience", "window", "k",
                                                  "access_threshold", "half_life") if k in p},
                            1, "scenario")
        text = p.get("text")

        def work(progress):
            if loaded is not None:
                from ..attention.extract import attention_view
                from ..validate import text as check_text

                progress(0.0, "Measuring the model's attention")
                words = check_text({"text": text}, "text") if text is not None else scenario.default_text(loaded)
                matrix = attention_view(loaded, words, aggregate="all_layers")["matrix"]
                shape = scenario.measure_shape(matrix)
                source = f"measured from {loaded.source}'s attention (mean over layers) on {matrix.shape[0]} tokens"
            else:
                shape = {k: v for k, v in service.SYNTHETIC.items() if k != "seed"}
                source = "the default synthetic shape (no model loaded: load one to measure its attention)"
            plan = scenario.plan(sp, arch, shape, source)
            replay = service.Request(trace="synthetic", length=sp["context"], block_size=sp["block_size"],
                                     preset="constrained", bytes_per_token=plan["bytes_per_token"],
                                     bytes_source=f"{arch['name']} ({arch['source']}), {sp['dtype']}",
                                     access_threshold=req.access_threshold, half_life=req.half_life,
                                     policy=req.policy, reuse=req.reuse, margin=req.margin, patience=req.patience,
                                     window=req.window, k=req.k, overrides=plan["tiers"])
            replay.synthetic.update({k: shape[k] for k in replay.synthetic if k in shape})
            if replay.synthetic["local_mass"] <= 0:
                replay.synthetic["local_mass"] = 1e-6
            result, kept = service.run(replay, lambda f, stage: progress(0.05 + 0.95 * f, stage))
            for tier, note in zip(result["summary"]["tiers"], scenario.tier_notes(plan)):
                tier["note"] = note
            # The tab draws the replay in its block map and charts like a profile, scrubber included.
            state._last_profile = kept
            out = {"scenario": plan, "replay": result["summary"], "timeline": result["timeline"],
                   **{k: result[k] for k in service.BLOCK_FIELDS}}
            if p.get("policy") == "topk" and p.get("fetch_rule") == "quest_bound":
                # Quest's pages come from the model's own keys and queries at this length; the replay has none
                out["note"] = ("The scenario replays a synthetic trace shaped like the model's attention, with no keys "
                               "or queries to rank pages by, so its top-k fetch uses the attention rule, not Quest's "
                               "page choice; run the profile itself on a model trace for Quest's.")
            return out

        job = state.jobs.start("profile", work, exclusive=True)
        return {"job_id": job.id}



def _kv_format(params, loaded):
    """The profile's `kv_format` (a quantized cache's bytes per token, backend/quantize), or None."""
    from ..quantize.params import kv_format_params

    return kv_format_params(params_dict(params), loaded)[0]
